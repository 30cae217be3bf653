"""Plain records shared by every layer.

Records are frozen dataclasses so that a run, once recorded, cannot be changed behind the
back of the report, the notebook write-back or the cache. Outputs are nbformat v4 output
dicts, so anything that can show a notebook can show a codeflow result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# `FlowEvent` lives in `events` (a leaf, with the typed events); it is still imported from here.
from .events import FlowEvent as FlowEvent

Output = dict[str, Any]
"""One nbformat v4 output (stream, execute_result, display_data or error)."""

ErrorCategory = Literal["syntax", "runtime", "logical", "environment", "import", "security"]
CATEGORIES: tuple[str, ...] = ("syntax", "runtime", "logical", "environment", "import", "security")

Language = Literal["python", "bash"]
LANGUAGES: tuple[str, ...] = ("python", "bash")

Focus = Literal["fix_errors", "optimize", "robustness"]
FOCUSES: tuple[str, ...] = ("fix_errors", "optimize", "robustness")

Severity = Literal["critical", "high", "medium", "low"]
SCAN_LANGUAGES: tuple[str, ...] = ("python", "ipython", "bash")
"""The languages the scanner reads."""
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
"""Ordered from least to most harmful; index comparison ranks severities."""

RECORD_MIME = "application/vnd.codeflow.run+json"
"""The mime type a run record travels under in notebook outputs."""

ExecStatus = Literal["ok", "error", "timeout", "died"]


def severity_rank(severity: str) -> int:
    """Rank of a severity (`none` and unknown words rank below `low`)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return -1


@dataclass(frozen=True)
class Finding:
    """One scanner finding about a piece of code."""

    rule: str
    severity: str
    category: str
    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "category": self.category,
            "line": self.line,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            rule=str(data["rule"]),
            severity=str(data["severity"]),
            category=str(data["category"]),
            line=data.get("line"),
            message=str(data["message"]),
        )


@dataclass(frozen=True)
class ExecutionResult:
    """What a backend reports for one execution.

    `status` separates a raised exception (`error`) from the failures the backend itself
    observed (`timeout`, `died`): those never produce an error message on iopub, so only the
    backend knows about them.
    """

    outputs: tuple[Output, ...] = ()
    status: ExecStatus = "ok"
    ename: str = ""
    evalue: str = ""
    traceback: tuple[str, ...] = ()
    duration_s: float = 0.0
    dropped_chars: int = 0
    restarted: bool = False
    state_kept: bool = True
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class AttemptError:
    """A classified failure of one attempt."""

    category: str
    ename: str
    evalue: str
    traceback: str = ""
    line: int | None = None
    source_line: str | None = None
    root_cause: str = ""
    findings: tuple[Finding, ...] = ()

    def summary(self) -> str:
        return f"{self.ename}: {self.evalue}" if self.evalue else self.ename

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "category": self.category,
            "ename": self.ename,
            "evalue": self.evalue,
            "traceback": self.traceback,
            "line": self.line,
            "source_line": self.source_line,
            "root_cause": self.root_cause,
        }
        if self.findings:
            data["findings"] = [f.to_dict() for f in self.findings]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptError:
        return cls(
            category=str(data["category"]),
            ename=str(data.get("ename", "")),
            evalue=str(data.get("evalue", "")),
            traceback=str(data.get("traceback", "")),
            line=data.get("line"),
            source_line=data.get("source_line"),
            root_cause=str(data.get("root_cause", "")),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", ())),
        )


AttemptKind = Literal["generate", "fix", "improve", "install"]


@dataclass(frozen=True)
class Attempt:
    """One generated (or repaired) piece of code and what running it did."""

    number: int
    code: str
    success: bool
    language: str = "python"
    kind: str = "generate"
    outputs: tuple[Output, ...] = ()
    error: AttemptError | None = None
    explanation: str = ""
    generation_s: float = 0.0
    execution_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    """Of `input_tokens`, those written to the model's prompt cache."""
    cache_read_tokens: int = 0
    """Of `input_tokens`, those read from the model's prompt cache."""
    cost_usd: float = 0.0
    """What the model calls of this attempt cost, by the price table (a replay costs 0)."""
    cached: bool = False
    cache_key: str | None = None
    score: float | None = None
    findings: tuple[Finding, ...] = ()
    kept: bool = True
    sanity: tuple[str, ...] = ()
    """What the sanity gate saw in a result that ran (NaN, an empty table, warnings)."""
    rolled_back: bool = False
    """The failed attempt's changes to the user's variables were undone afterwards."""
    kept_changes: tuple[str, ...] = ()
    """What the failed attempt changed that no snapshot covers (files, programs, objects)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "language": self.language,
            "code": self.code,
            "success": self.success,
            "outputs": [dict(o) for o in self.outputs],
            "error": self.error.to_dict() if self.error else None,
            "explanation": self.explanation,
            "generation_s": round(self.generation_s, 4),
            "execution_s": round(self.execution_s, 4),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "cached": self.cached,
            "cache_key": self.cache_key,
            "score": self.score,
            "findings": [f.to_dict() for f in self.findings],
            "kept": self.kept,
            "sanity": list(self.sanity),
            "rolled_back": self.rolled_back,
            "kept_changes": list(self.kept_changes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        err = data.get("error")
        return cls(
            number=int(data["number"]),
            code=str(data.get("code", "")),
            success=bool(data.get("success")),
            language=str(data.get("language", "python")),
            kind=str(data.get("kind", "generate")),
            outputs=tuple(data.get("outputs", ())),
            error=AttemptError.from_dict(err) if err else None,
            explanation=str(data.get("explanation", "")),
            generation_s=float(data.get("generation_s", 0.0)),
            execution_s=float(data.get("execution_s", 0.0)),
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
            cache_read_tokens=int(data.get("cache_read_tokens", 0)),
            cost_usd=float(data.get("cost_usd", 0.0)),
            cached=bool(data.get("cached", False)),
            cache_key=data.get("cache_key"),
            score=data.get("score"),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", ())),
            kept=bool(data.get("kept", True)),
            sanity=tuple(str(s) for s in data.get("sanity", ())),
            rolled_back=bool(data.get("rolled_back", False)),
            kept_changes=tuple(str(s) for s in data.get("kept_changes", ())),
        )


@dataclass(frozen=True)
class Metrics:
    generation_s: float = 0.0
    execution_s: float = 0.0
    improvement_s: float = 0.0
    total_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    cache_hits: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation_s": round(self.generation_s, 4),
            "execution_s": round(self.execution_s, 4),
            "improvement_s": round(self.improvement_s, 4),
            "total_s": round(self.total_s, 4),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "llm_calls": self.llm_calls,
            "cache_hits": self.cache_hits,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


StopReason = Literal[
    "success",
    "max_attempts",
    "repeated_code",
    "repeated_error",
    "token_budget",
    "cost_budget",
    "no_improve",
    "cancelled",
    "provider_unavailable",
    "provider_error",
    "awaiting_review",
]


@dataclass(frozen=True)
class RunRecord:
    """The outcome of one request: the JSON contract other tools read."""

    request: str
    language: str
    model: str
    success: bool
    final_code: str
    outputs: tuple[Output, ...]
    attempts: tuple[Attempt, ...]
    metrics: Metrics
    run_id: str = ""
    stop_reason: str = "success"
    backend: str = ""
    check: str | None = None
    focus: str = "fix_errors"
    error: str | None = None
    """Why the run ended without a result when the model could not be asked (the provider's
    message); the attempts made before it are kept."""
    warnings: tuple[str, ...] = ()
    """What the user should know although the run went on (e.g. a deprecated model)."""
    undo_key: str = ""
    """Names the kernel's record of what this run changed, for `undo` (empty: nothing kept)."""

    @property
    def cache_keys(self) -> tuple[str, ...]:
        return tuple(a.cache_key for a in self.attempts if a.cache_key)

    @property
    def last_error(self) -> AttemptError | None:
        for attempt in reversed(self.attempts):
            if attempt.error is not None:
                return attempt.error
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "language": self.language,
            "model": self.model,
            "success": self.success,
            "final_code": self.final_code,
            "outputs": [dict(o) for o in self.outputs],
            "attempts": [a.to_dict() for a in self.attempts],
            "metrics": self.metrics.to_dict(),
            "run_id": self.run_id,
            "stop_reason": self.stop_reason,
            "backend": self.backend,
            "check": self.check,
            "focus": self.focus,
            "error": self.error,
            "warnings": list(self.warnings),
            "undo_key": self.undo_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            request=str(data["request"]),
            language=str(data.get("language", "python")),
            model=str(data.get("model", "")),
            success=bool(data["success"]),
            final_code=str(data.get("final_code", "")),
            outputs=tuple(data.get("outputs", ())),
            attempts=tuple(Attempt.from_dict(a) for a in data.get("attempts", ())),
            metrics=Metrics.from_dict(data.get("metrics", {})),
            run_id=str(data.get("run_id", "")),
            stop_reason=str(data.get("stop_reason", "")),
            backend=str(data.get("backend", "")),
            check=data.get("check"),
            focus=str(data.get("focus", "fix_errors")),
            error=data.get("error"),
            warnings=tuple(str(w) for w in data.get("warnings", ())),
            undo_key=str(data.get("undo_key", "")),
        )


DEFAULT_MAX_STEPS = 8
MAX_STEPS_LIMIT = 30
"""How many steps a plan may have by default, and at most (`--max-steps`)."""


def steps_count(text: str) -> int:
    """`--max-steps` (magic and CLI): a whole number within the allowed range."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_STEPS_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not 1 to {MAX_STEPS_LIMIT}")
    return value


MAX_PARALLEL = 64
"""The most kernels a batch may run at once: each is a process of 50-100 MB, and more would
only queue for the same cores."""

PLAN_MIME = "application/vnd.codeflow.plan+json"
"""The output of a `--steps` request: the plan and each step's run."""

StepState = Literal["ok", "failed", "not_run"]


@dataclass(frozen=True)
class StepRecord:
    """One step of a plan: what the model wrote for it, and what came of running it."""

    number: int
    title: str
    prose: str
    code: str
    language: str
    state: str = "not_run"
    """`ok`, `failed` (after its attempts) or `not_run` (an earlier step failed)."""
    record: RunRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "prose": self.prose,
            "code": self.code,
            "language": self.language,
            "state": self.state,
            "record": self.record.to_dict() if self.record else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        rec = data.get("record")
        return cls(
            number=int(data["number"]),
            title=str(data.get("title", "")),
            prose=str(data.get("prose", "")),
            code=str(data.get("code", "")),
            language=str(data.get("language", "python")),
            state=str(data.get("state", "not_run")),
            record=RunRecord.from_dict(rec) if isinstance(rec, dict) else None,
        )


@dataclass(frozen=True)
class PlanRecord:
    """The outcome of a step-plan request: the JSON contract the notebook and reports read."""

    request: str
    model: str
    success: bool
    steps: tuple[StepRecord, ...]
    metrics: Metrics
    run_id: str = ""
    stop_reason: str = "success"
    """`success`, `step_failed`, `bad_plan`, `token_budget`, `cost_budget`, provider stops."""
    error: str | None = None
    """Why there is no (usable) plan: the model's answer was not one, or it was too long."""
    plan_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "model": self.model,
            "success": self.success,
            "steps": [s.to_dict() for s in self.steps],
            "metrics": self.metrics.to_dict(),
            "run_id": self.run_id,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "plan_text": self.plan_text,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanRecord:
        return cls(
            request=str(data.get("request", "")),
            model=str(data.get("model", "")),
            success=bool(data.get("success")),
            steps=tuple(StepRecord.from_dict(s) for s in data.get("steps", ())),
            metrics=Metrics.from_dict(data.get("metrics", {})),
            run_id=str(data.get("run_id", "")),
            stop_reason=str(data.get("stop_reason", "")),
            error=data.get("error"),
            plan_text=str(data.get("plan_text", "")),
        )
