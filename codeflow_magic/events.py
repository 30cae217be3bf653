"""Typed flow events, and the one pure reducer every progress display renders from.

The flow reports its progress as events (`FlowEvent`: `kind`, `attempt`, `data`). Each kind
has a small frozen class here whose fields say what its `data` holds, so the flow cannot emit
a misspelt key and readers get attributes instead of `data.get(...)` guesses. Every typed
event *is* a `FlowEvent` with the same `kind`, `attempt` and `data` as before, so callbacks
written against the untyped form keep working.

`reduce(state, event)` folds events into a `ProgressState`: what a run is doing now. The
magic's live display, the CLI's progress line and the JupyterLab sidebar all render that
state (each in its own words) instead of each interpreting the kinds again. It is pure (no
I/O, no clock), so its rules are unit tested on plain events.

This module is a leaf: it imports only the standard library (`models` imports from it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

TAIL_CHARS = 600
"""How much of the streamed answer (or the code) the state keeps for a live display."""


@dataclass(frozen=True)
class FlowEvent:
    """Progress the flow reports while it works (for live displays, never for results).

    Kinds: `start`, `generating` (data: phase), `delta` (data: text), `code` (data: code),
    `scan` (data: findings), `executing`, `output` (data: output), `executed` (data:
    status, duration_s), `attempt` (data: the attempt dict), `install` (data: package), `finished` (data: the record dict).
    `generating` carries `retry` (the cause) when a broken answer is asked for again, and
    `improve_skipped` (data: error) says the model could not be asked for an improvement;
    `warning` (data: message) is something to show although the run goes on; `sanity` (data:
    evidence, mode) says the sanity gate saw signs of a wrong result.

    The flow emits the typed subclasses below (`GeneratingEvent`...); this plain form remains
    for kinds nobody typed and for callers that build events themselves.
    """

    kind: str
    attempt: int = 0
    data: dict[str, Any] = field(default_factory=dict)


_BASE_FIELDS = frozenset({"kind", "attempt", "data", "step"})


@dataclass(frozen=True, kw_only=True)
class TypedEvent(FlowEvent):
    """A `FlowEvent` whose `data` is built from typed fields (so it always matches them).

    `attempt` stays the first positional argument; the payload fields are keywords. `step`
    is the number of the plan step whose run emitted the event (0: not inside a step); it
    appears in `data` as `step` only when set, as the plan has always tagged its steps.
    """

    KIND: ClassVar[str] = ""
    kind: str = field(init=False, default="")
    data: dict[str, Any] = field(init=False, default_factory=dict)
    step: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.KIND)
        payload: dict[str, Any] = {}
        for f in _payload_fields(type(self)):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue  # an optional key is absent from `data`, as it always was
            payload[f.metadata.get("key", f.name)] = (
                list(value) if isinstance(value, tuple) else value
            )
        if self.step:
            payload["step"] = self.step
        object.__setattr__(self, "data", payload)


def _payload_fields(cls: type[TypedEvent]) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name not in _BASE_FIELDS)


def _optional() -> Any:
    """A payload field left out of `data` when None."""
    return field(default=None, metadata={"optional": True})


@dataclass(frozen=True, kw_only=True)
class StartEvent(TypedEvent):
    """A run began (a plan step's run too, then with `step`)."""

    KIND: ClassVar[str] = "start"
    request: str
    max_attempts: int
    run_id: str


@dataclass(frozen=True, kw_only=True)
class GeneratingEvent(TypedEvent):
    """The model is being asked; `phase` is the purpose (`generate`, `fix`, `improve`)."""

    KIND: ClassVar[str] = "generating"
    phase: str
    retry: str | None = _optional()
    """Why the request went out again (an outage or a broken answer); absent otherwise."""


@dataclass(frozen=True, kw_only=True)
class DeltaEvent(TypedEvent):
    """A piece of the model's streamed answer."""

    KIND: ClassVar[str] = "delta"
    text: str


@dataclass(frozen=True, kw_only=True)
class CodeEvent(TypedEvent):
    """The code taken from the answer, about to be checked and run."""

    KIND: ClassVar[str] = "code"
    code: str
    language: str


@dataclass(frozen=True, kw_only=True)
class ScanEvent(TypedEvent):
    """The scanner's findings about the code (finding dicts)."""

    KIND: ClassVar[str] = "scan"
    findings: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class ExecutingEvent(TypedEvent):
    """The code started running."""

    KIND: ClassVar[str] = "executing"
    language: str


@dataclass(frozen=True, kw_only=True)
class OutputEvent(TypedEvent):
    """One live output of the running code (an nbformat output dict)."""

    KIND: ClassVar[str] = "output"
    output: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ExecutedEvent(TypedEvent):
    """The code stopped running (`status`: ok, error, timeout, died)."""

    KIND: ClassVar[str] = "executed"
    status: str
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class AttemptEvent(TypedEvent):
    """An attempt is complete; `record` is its `Attempt.to_dict()` (data key `attempt`)."""

    KIND: ClassVar[str] = "attempt"
    record: dict[str, Any] = field(metadata={"key": "attempt"})


@dataclass(frozen=True, kw_only=True)
class InstallEvent(TypedEvent):
    """A missing package is being installed."""

    KIND: ClassVar[str] = "install"
    package: str


@dataclass(frozen=True, kw_only=True)
class WarningEvent(TypedEvent):
    """Something the user should know although the run goes on."""

    KIND: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True, kw_only=True)
class SanityEvent(TypedEvent):
    """The sanity gate saw signs of a wrong result (`mode`: what it does about them)."""

    KIND: ClassVar[str] = "sanity"
    evidence: tuple[str, ...]
    mode: str


@dataclass(frozen=True, kw_only=True)
class ImproveSkippedEvent(TypedEvent):
    """The model could not be asked for an improvement; the good result stands."""

    KIND: ClassVar[str] = "improve_skipped"
    error: str


@dataclass(frozen=True, kw_only=True)
class RollbackEvent(TypedEvent):
    """A failed attempt's changes to the user's variables were undone."""

    KIND: ClassVar[str] = "rollback"
    restored: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FinishedEvent(TypedEvent):
    """The run ended; `record` is its `RunRecord.to_dict()`."""

    KIND: ClassVar[str] = "finished"
    record: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class PlanStartEvent(TypedEvent):
    """A `--steps` request began: the model is asked for a plan."""

    KIND: ClassVar[str] = "plan_start"
    request: str
    max_steps: int
    run_id: str


@dataclass(frozen=True, kw_only=True)
class PlanEvent(TypedEvent):
    """The plan's steps (`{"number", "title"}` dicts), before any of them runs."""

    KIND: ClassVar[str] = "plan"
    steps: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class StepEvent(TypedEvent):
    """A step's state changed; its number is in `attempt` (as the plan always sent it)."""

    KIND: ClassVar[str] = "step"
    state: str
    """`running`, `ok`, `failed` or `not_run`."""
    title: str


@dataclass(frozen=True, kw_only=True)
class PlanFinishedEvent(TypedEvent):
    """The plan ended; `plan` is its `PlanRecord.to_dict()`."""

    KIND: ClassVar[str] = "plan_finished"
    plan: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class InterruptedEvent(TypedEvent):
    """The user interrupted the run (the magic says so; the flow itself never does)."""

    KIND: ClassVar[str] = "interrupted"


EVENT_TYPES: Mapping[str, type[TypedEvent]] = {
    cls.KIND: cls
    for cls in (
        StartEvent,
        GeneratingEvent,
        DeltaEvent,
        CodeEvent,
        ScanEvent,
        ExecutingEvent,
        OutputEvent,
        ExecutedEvent,
        AttemptEvent,
        InstallEvent,
        WarningEvent,
        SanityEvent,
        ImproveSkippedEvent,
        RollbackEvent,
        FinishedEvent,
        PlanStartEvent,
        PlanEvent,
        StepEvent,
        PlanFinishedEvent,
        InterruptedEvent,
    )
}
"""The typed class of each known kind."""


def make_event(kind: str, attempt: int = 0, data: Mapping[str, Any] | None = None) -> FlowEvent:
    """The typed event for `kind` and `data`, or a plain `FlowEvent` when they do not fit one.

    Parses what arrives untyped (a `FlowEvent` built by hand, an event dict): an unknown
    kind, a missing key or an unknown key keeps the plain form, so `data` is never changed.
    """
    data = dict(data or {})
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return FlowEvent(kind=kind, attempt=attempt, data=data)
    fields = _payload_fields(cls)
    keys = {f.metadata.get("key", f.name): f for f in fields}
    step = data.get("step", 0)
    if set(data) - set(keys) - {"step"} or not isinstance(step, int):
        return FlowEvent(kind=kind, attempt=attempt, data=data)
    values: dict[str, Any] = {}
    for key, f in keys.items():
        if key in data:
            value = data[key]
            values[f.name] = tuple(value) if isinstance(value, list) else value
        elif f.default is dataclasses.MISSING:
            return FlowEvent(kind=kind, attempt=attempt, data=data)
    return cls(attempt, step=step, **values)


def typed(event: FlowEvent | Mapping[str, Any]) -> FlowEvent:
    """`event` as its typed class when it has one (a typed event is returned as it is)."""
    if isinstance(event, TypedEvent):
        return event
    if isinstance(event, Mapping):
        attempt = event.get("attempt", 0)
        data = event.get("data")
        return make_event(
            str(event.get("kind", "")),
            attempt if isinstance(attempt, int) else 0,
            data if isinstance(data, Mapping) else {},
        )
    return make_event(event.kind, event.attempt, event.data)


def in_step(event: FlowEvent, step: int) -> FlowEvent:
    """`event` as emitted by the run of plan step `step` (tagged for progress displays)."""
    if isinstance(event, TypedEvent):
        return dataclasses.replace(event, step=step)
    return dataclasses.replace(event, data={**event.data, "step": step})


# -- the progress state -----------------------------------------------------------------------

Activity = Literal["starting", "planning", "generating", "scanning", "executing", "installing"]
"""What the run is busy with, as the progress displays name it; only the events that start
something new change it (a streamed piece or a finished attempt does not)."""


@dataclass(frozen=True)
class ErrorBrief:
    """The last failed attempt's error, as much as a progress line shows."""

    category: str
    ename: str
    evalue: str = ""


@dataclass(frozen=True)
class StepProgress:
    """One step of a running plan (`waiting` until the run reaches it)."""

    number: int
    title: str
    state: str = "waiting"


@dataclass(frozen=True)
class ProgressState:
    """What a run is doing now: everything the live displays show, and nothing else.

    Built only by `reduce`; each display turns it into its own words.
    """

    activity: Activity = "starting"
    last_kind: str = ""
    """The kind of the last event (the sidebar names the phase after it)."""
    purpose: str = ""
    """What the model was last asked for: `generate`, `fix` or `improve`."""
    retry: str = ""
    """Why the current request to the model went out again (empty: it did not)."""
    package: str = ""
    """The package being installed (last `install`)."""
    attempt: int = 0
    max_attempts: int = 0
    last_error: ErrorBrief | None = None
    """The error of the last failed attempt (cleared when a run starts)."""
    last_attempt_ok: bool | None = None
    """Whether the last finished attempt succeeded (None: none finished yet)."""
    streamed_chars: int = 0
    """Characters of the model's answer received since it was last asked."""
    tail: str = ""
    """The end of the streamed answer, or of the code once it was taken from the answer."""
    in_step: int = 0
    """The plan step whose run sent the last event (0: the request's own run)."""
    steps: tuple[StepProgress, ...] = ()
    """A plan's steps, once the model gave them."""
    step: int = 0
    """The step that last started running (0: none yet)."""
    warnings: tuple[str, ...] = ()
    finished: bool = False
    """The request is done (its run, or its plan; a plan step's run does not count)."""
    success: bool | None = None
    """The outcome of the last run that finished (a plan step's too), or of the plan."""
    interrupted: bool = False

    @property
    def current_step(self) -> StepProgress | None:
        """The step that last started running, if the plan names it."""
        return next((s for s in self.steps if s.number == self.step), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON for the comm (the sidebar renders it)."""
        return dataclasses.asdict(self)


def initial_state(max_attempts: int = 0) -> ProgressState:
    """The state before any event (the magic and the CLI know `max_attempts` up front)."""
    return ProgressState(max_attempts=max_attempts)


def _step_with(
    steps: tuple[StepProgress, ...], number: int, state: str, title: str
) -> tuple[StepProgress, ...]:
    """`steps` with step `number` in `state` (learnt here when the plan event was missed)."""
    if not any(s.number == number for s in steps):
        steps = tuple(sorted((*steps, StepProgress(number, "")), key=lambda s: s.number))
    return tuple(
        StepProgress(s.number, title or s.title, state) if s.number == number else s for s in steps
    )


def _error_brief(record: Mapping[str, Any]) -> ErrorBrief | None:
    error = record.get("error")
    if not isinstance(error, Mapping) or not error:
        return None
    return ErrorBrief(
        category=str(error.get("category")),
        ename=str(error.get("ename")),
        evalue=str(error.get("evalue", "")),
    )


def reduce(state: ProgressState, event: FlowEvent | Mapping[str, Any]) -> ProgressState:
    """The state after `event`. Pure: the same state and event always give the same result.

    Untyped events (a hand-built `FlowEvent`, an event dict) are parsed first; a kind this
    module does not know changes only `last_kind` (and the attempt number).
    """
    ev = typed(event)
    changes: dict[str, Any] = {"last_kind": ev.kind}
    if ev.attempt and not isinstance(ev, StepEvent):  # a step event's number is the step's
        changes["attempt"] = ev.attempt
    if isinstance(ev, TypedEvent):
        changes["in_step"] = ev.step
    match ev:
        case StartEvent():
            changes.update(max_attempts=int(ev.max_attempts), last_error=None)
        case PlanStartEvent():
            changes["activity"] = "planning"
        case PlanEvent():
            planned = tuple(
                StepProgress(int(s.get("number") or i + 1), str(s.get("title", "")))
                for i, s in enumerate(ev.steps)
            )
            changes["steps"] = planned
        case StepEvent():
            changes["steps"] = _step_with(state.steps, ev.attempt, state=ev.state, title=ev.title)
            if ev.state == "running":
                changes["step"] = ev.attempt
        case GeneratingEvent():
            changes.update(
                activity="generating",
                purpose=ev.phase,
                retry=ev.retry or "",
                streamed_chars=0,
                tail="",
            )
        case DeltaEvent():
            changes.update(
                streamed_chars=state.streamed_chars + len(ev.text),
                tail=(state.tail + ev.text)[-TAIL_CHARS:],
            )
        case CodeEvent():
            changes["tail"] = ev.code[-TAIL_CHARS:]
        case ScanEvent():
            changes["activity"] = "scanning"
        case ExecutingEvent():
            changes["activity"] = "executing"
        case InstallEvent():
            changes.update(activity="installing", package=ev.package)
        case AttemptEvent():
            error = _error_brief(ev.record)
            changes["last_attempt_ok"] = error is None
            if error is not None:
                changes["last_error"] = error
        case WarningEvent():
            changes["warnings"] = (*state.warnings, ev.message)
        case FinishedEvent():
            # A plan step's run finishing is not the request finishing, but has an outcome.
            changes.update(finished=state.finished or not ev.step)
            changes["success"] = bool(ev.record.get("success"))
        case PlanFinishedEvent():
            changes.update(finished=True, success=bool(ev.plan.get("success")))
        case InterruptedEvent():
            changes["interrupted"] = True
        case _:
            pass
    return dataclasses.replace(state, **changes)


def activity_line(state: ProgressState, attempt: int, max_attempts: int) -> str | None:
    """One line saying what the run does now, after the event `state` was reduced with
    (None: that event changes nothing worth a line). The command line and the MCP server's
    progress notifications word a run this way."""
    at = f"attempt {attempt}/{max_attempts}"
    kind = state.last_kind
    if kind == "generating":
        verb = {
            "generate": "generating",
            "fix": "asking for a fix",
            "improve": "improving",
        }.get(state.purpose, state.purpose)
        again = f" again: {state.retry}" if state.retry else ""
        last = f" (last error: {state.last_error.category})" if state.last_error else ""
        return f"{at}: {verb}{again}{last}"
    if kind == "delta":
        return f"{at}: receiving ({state.streamed_chars} chars)"
    if kind == "executing":
        return f"{at}: running"
    if kind == "install":
        return f"installing {state.package}"
    if kind == "attempt":
        err = state.last_error
        if not state.last_attempt_ok and err is not None:
            return f"{at}: {err.category} error: {err.ename}"
        return f"{at}: succeeded"
    if kind == "finished":
        return "done: success" if state.success else "done: failed"
    return None
