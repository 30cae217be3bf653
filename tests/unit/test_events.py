"""Typed flow events and the pure progress reducer every display renders from."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from scripted import MemoryExecutor, ScriptedProvider

from codeflow_magic import events as ev
from codeflow_magic.events import ErrorBrief, ProgressState, StepProgress, initial_state, reduce
from codeflow_magic.flow import Flow, FlowOptions
from codeflow_magic.models import FlowEvent


def reduce_all(
    events: list[FlowEvent | dict[str, Any]], state: ProgressState | None = None
) -> ProgressState:
    """The state after all `events`, in order."""
    result = state if state is not None else initial_state()
    for event in events:
        result = reduce(result, event)
    return result


def attempt_record(number: int, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"number": number, "success": error is None, "error": error, "code": "x = 1"}


# -- typed events ------------------------------------------------------------------------------


def test_a_typed_event_is_a_flow_event_with_the_same_kind_attempt_and_data() -> None:
    event = ev.GeneratingEvent(2, phase="fix", retry="overloaded")
    assert isinstance(event, FlowEvent)
    assert (event.kind, event.attempt, event.data) == (
        "generating",
        2,
        {"phase": "fix", "retry": "overloaded"},
    )
    # An optional key that is not set stays out of `data`, as before.
    assert ev.GeneratingEvent(1, phase="generate").data == {"phase": "generate"}
    # The data key may differ from the field name (`attempt` is the event's number).
    record = attempt_record(1)
    assert ev.AttemptEvent(1, record=record).data == {"attempt": record}
    # Sequences are tuples on the event, lists in `data` (JSON-shaped, as before).
    assert ev.SanityEvent(1, evidence=("nan",), mode="fix").data == {
        "evidence": ["nan"],
        "mode": "fix",
    }


def test_make_event_types_known_kinds_and_keeps_the_rest_plain() -> None:
    event = ev.make_event("delta", 3, {"text": "abc"})
    assert isinstance(event, ev.DeltaEvent) and event.text == "abc" and event.attempt == 3
    # An unknown kind, a missing key or an unknown key: plain, with `data` untouched.
    for kind, data in [("new_kind", {"a": 1}), ("delta", {}), ("delta", {"text": "", "x": 1})]:
        plain = ev.make_event(kind, 1, data)
        assert type(plain) is FlowEvent and plain.data == data
    assert ev.typed({"kind": "interrupted", "data": {}}) == ev.InterruptedEvent(0)


def test_a_step_tag_is_a_field_and_a_data_key() -> None:
    tagged = ev.in_step(ev.ExecutingEvent(1, language="python"), 2)
    assert isinstance(tagged, ev.ExecutingEvent) and tagged.step == 2
    assert tagged.data == {"language": "python", "step": 2}
    assert ev.make_event("executing", 1, {"language": "python", "step": 2}) == tagged
    # An untyped event is tagged in its data, as the plan always did.
    plain = ev.in_step(FlowEvent("custom", 1, {"a": 1}), 2)
    assert plain.data == {"a": 1, "step": 2}


async def test_the_flow_emits_typed_events_with_the_data_it_always_sent() -> None:
    flow = Flow(ScriptedProvider(["```python\nprint(42)\n```"]), MemoryExecutor())
    seen: list[FlowEvent] = []
    await flow.run("print 42", FlowOptions(max_attempts=2), on_event=seen.append)
    kinds = [e.kind for e in seen]
    assert kinds[0] == "start" and kinds[-1] == "finished"
    assert {"generating", "code", "executing", "executed", "attempt"} <= set(kinds)
    for event in seen:
        assert isinstance(event, ev.TypedEvent), event.kind
        # Parsing the wire form gives the same event back: `data` says all the fields do.
        assert ev.make_event(event.kind, event.attempt, event.data) == event
    start = seen[0]
    assert isinstance(start, ev.StartEvent)
    assert set(start.data) == {"request", "max_attempts", "run_id"}
    assert start.max_attempts == 2


# -- the reducer -------------------------------------------------------------------------------


def test_the_initial_state_is_starting() -> None:
    state = initial_state(3)
    assert (state.activity, state.attempt, state.max_attempts) == ("starting", 0, 3)
    assert state.last_error is None and not state.finished


def test_a_failed_attempt_sets_the_last_error_and_a_start_clears_it() -> None:
    error = {"category": "runtime", "ename": "ZeroDivisionError", "evalue": "division by zero"}
    state = reduce_all(
        [
            ev.StartEvent(0, request="r", max_attempts=3, run_id="id"),
            ev.GeneratingEvent(1, phase="generate"),
            ev.ExecutingEvent(1, language="python"),
            ev.ExecutedEvent(1, status="error", duration_s=0.1),
            ev.AttemptEvent(1, record=attempt_record(1, error)),
        ]
    )
    assert state.last_error == ErrorBrief("runtime", "ZeroDivisionError", "division by zero")
    assert state.last_attempt_ok is False
    assert (state.activity, state.attempt, state.last_kind) == ("executing", 1, "attempt")
    # A successful attempt says so, but the error stays for "last error" displays.
    after = reduce(state, ev.AttemptEvent(2, record=attempt_record(2)))
    assert after.last_attempt_ok is True and after.last_error == state.last_error
    restarted = reduce(after, ev.StartEvent(0, request="r", max_attempts=5, run_id="id2"))
    assert restarted.last_error is None and restarted.max_attempts == 5


def test_generating_with_a_retry_then_a_fix() -> None:
    state = reduce_all(
        [
            ev.GeneratingEvent(1, phase="generate"),
            ev.DeltaEvent(1, text="Here "),
            ev.DeltaEvent(1, text="you go"),
        ],
        initial_state(3),
    )
    assert (state.activity, state.purpose, state.retry) == ("generating", "generate", "")
    assert (state.streamed_chars, state.tail) == (11, "Here you go")
    # The stream broke off: asked again, and the answer so far is dropped.
    state = reduce(state, ev.GeneratingEvent(1, phase="generate", retry="stream cut"))
    assert (state.retry, state.streamed_chars, state.tail) == ("stream cut", 0, "")
    state = reduce(state, ev.CodeEvent(1, code="print(1)", language="python"))
    assert state.tail == "print(1)" and state.retry == "stream cut"
    state = reduce(state, ev.GeneratingEvent(2, phase="fix"))
    assert (state.attempt, state.purpose, state.retry) == (2, "fix", "")


def test_the_tail_keeps_only_the_end_of_a_long_answer() -> None:
    state = reduce(initial_state(), ev.DeltaEvent(1, text="x" * 1000 + "end"))
    assert len(state.tail) == ev.TAIL_CHARS and state.tail.endswith("end")
    assert state.streamed_chars == 1003


def test_scan_install_and_execute_set_the_activity() -> None:
    state = reduce(initial_state(), ev.ScanEvent(1, findings=()))
    assert state.activity == "scanning"
    state = reduce(state, ev.InstallEvent(1, package="pandas"))
    assert (state.activity, state.package) == ("installing", "pandas")
    state = reduce(state, ev.ExecutingEvent(1, language="python"))
    assert state.activity == "executing"
    # Events that start nothing new leave the activity alone.
    state = reduce(state, ev.OutputEvent(1, output={"output_type": "stream"}))
    assert (state.activity, state.last_kind) == ("executing", "output")


def test_step_events_in_a_plan() -> None:
    steps = ({"number": 1, "title": "load"}, {"number": 2, "title": "plot"})
    state = reduce_all(
        [
            ev.PlanStartEvent(0, request="r", max_steps=8, run_id="p"),
            ev.PlanEvent(0, steps=steps),
        ]
    )
    assert state.activity == "planning"
    assert state.steps == (StepProgress(1, "load"), StepProgress(2, "plot"))
    state = reduce(state, ev.StepEvent(1, state="running", title="load"))
    assert state.step == 1 and state.current_step == StepProgress(1, "load", "running")
    # A step number is not an attempt number; the step's own run's events are.
    assert state.attempt == 0
    state = reduce(state, ev.in_step(ev.GeneratingEvent(1, phase="generate"), 1))
    assert (state.attempt, state.in_step, state.activity) == (1, 1, "generating")
    state = reduce_all(
        [
            ev.in_step(ev.FinishedEvent(0, record={"success": True}), 1),
            ev.StepEvent(1, state="ok", title="load"),
            ev.StepEvent(2, state="running", title="plot"),
        ],
        state,
    )
    assert not state.finished  # a step's run finishing is not the plan finishing
    assert state.success is True  # but its outcome is known
    assert [s.state for s in state.steps] == ["ok", "running"] and state.step == 2
    state = reduce(state, ev.StepEvent(2, state="failed", title="plot"))
    assert state.step == 2 and state.steps[1].state == "failed"


def test_a_step_the_plan_did_not_name_is_learnt() -> None:
    state = reduce(initial_state(), ev.StepEvent(3, state="running", title="late"))
    assert state.steps == (StepProgress(3, "late", "running"),)


@pytest.mark.parametrize(
    ("event", "success"),
    [
        (ev.FinishedEvent(0, record={"success": True}), True),
        (ev.FinishedEvent(0, record={"success": False}), False),
        (ev.PlanFinishedEvent(0, plan={"success": False}), False),
    ],
)
def test_finished(event: FlowEvent, success: bool) -> None:
    state = reduce(initial_state(), event)
    assert state.finished and state.success is success


def test_warnings_and_interruption() -> None:
    state = reduce(initial_state(), ev.WarningEvent(0, message="deprecated model"))
    assert state.warnings == ("deprecated model",)
    assert reduce(state, {"kind": "interrupted", "data": {}}).interrupted


def test_untyped_and_unknown_events_reduce_too() -> None:
    state = reduce(initial_state(), FlowEvent("generating", 1, {"phase": "fix"}))
    assert (state.activity, state.purpose) == ("generating", "fix")
    after = reduce(state, FlowEvent("something_new", 4, {"x": 1}))
    assert after == dataclasses.replace(state, last_kind="something_new", attempt=4)


def test_reduce_is_pure() -> None:
    state = initial_state(3)
    event = ev.GeneratingEvent(1, phase="generate")
    assert reduce(state, event) == reduce(state, event)
    assert state == initial_state(3)  # the old state is unchanged (and frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.attempt = 2  # type: ignore[misc]


def test_the_state_travels_as_json() -> None:
    import json

    state = reduce_all(
        [
            ev.PlanEvent(0, steps=({"number": 1, "title": "a"},)),
            ev.AttemptEvent(1, record=attempt_record(1, {"category": "syntax", "ename": "E"})),
        ]
    )
    data = json.loads(json.dumps(state.to_dict()))
    assert data["steps"] == [{"number": 1, "title": "a", "state": "waiting"}]
    assert data["last_error"] == {"category": "syntax", "ename": "E", "evalue": ""}
    assert set(data) == {f.name for f in dataclasses.fields(ProgressState)}


def test_the_activity_line_words_a_failed_attempt_the_fix_and_the_outcome() -> None:
    state = initial_state(3)
    lines = []
    for event in (
        ev.make_event("start", 0, {"request": "x", "max_attempts": 3}),
        ev.make_event("generating", 1, {"phase": "generate"}),
        ev.make_event("executing", 1, {}),
        ev.make_event(
            "attempt",
            1,
            {"attempt": attempt_record(1, {"category": "runtime", "ename": "KeyError"})},
        ),
        ev.make_event("generating", 2, {"phase": "fix", "retry": "overloaded"}),
        ev.make_event("attempt", 2, {"attempt": attempt_record(2)}),
        ev.make_event("output", 2, {"output": {"output_type": "stream", "text": "1"}}),
    ):
        state = reduce(state, event)
        lines.append(ev.activity_line(state, event.attempt, 3))
    assert lines == [
        None,
        "attempt 1/3: generating",
        "attempt 1/3: running",
        "attempt 1/3: runtime error: KeyError",
        "attempt 2/3: asking for a fix again: overloaded (last error: runtime)",
        "attempt 2/3: succeeded",
        None,
    ]
