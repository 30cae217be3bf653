"""The state of one request while the flow works on it, and the options it may vary.

Shared by the loop (`flow`), step plans (`planning`) and snapshots (`rollback`); pure.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import context, prompts
from .models import Attempt, Finding, FlowEvent, Output

if TYPE_CHECKING:
    from .flow import Flow

EventCallback = Callable[[FlowEvent], None]
Scanner = Callable[[str, str], Sequence[Finding]]
BlockingRule = Callable[[Sequence[Finding], str], Sequence[Finding]]
OutputRedactor = Callable[[Output], Output]
InstallConfirm = Callable[[str], bool]


@dataclass(frozen=True)
class FlowOptions:
    """Everything one request may vary; front doors fill it from settings and options."""

    language: str = "python"
    check: str | None = None
    focus: str = "fix_errors"
    verify: bool = False
    quality_threshold: float = 7.0
    max_attempts: int = 3
    improve: bool = True
    timeout: float | None = None
    token_budget: int = 0
    max_cost_usd: float = 0.0
    """US dollars one request may spend (0: no limit), by `prices` and codeflow's table."""
    prices: tuple[str, ...] = ()
    """`MODEL=INPUT/OUTPUT[/CACHE_WRITE/CACHE_READ]` entries ahead of the price table."""
    scan_policy: str = "block"
    install_missing: str = "off"
    prompt_output_chars: int = 4000
    state_chars: int = 2000
    max_tokens: int = 4096
    temperature: float | None = None
    early_execute: bool = True
    preview_files: bool = True
    preview_bytes: int = 65_536
    preview_seconds: float = 0.2
    preview_chars: int = 3000
    preview_max_files: int = 5
    environment: bool = True
    notebook_chars: int = 1500
    notebook: tuple[context.NotebookCell, ...] = ()
    """The cells above the request (nearest first), when it comes from a notebook."""
    sanity: str = "fix"
    rollback: bool = True
    """Undo a failed attempt's changes to the user's variables (see `transaction`)."""
    snapshot_max_bytes: int = 256 * 1024**2
    review: str = "off"
    """`always`: stop before running the first generated code; `risky`: only when the
    scanner found something at medium or above; `off`: run it."""
    approved_code: str | None = None
    """Code the user approved after a review (or a plan's step): attempt 1 runs it instead of
    asking the model."""
    given_kind: str = "approved"
    """The kind attempt 1 gets when it runs `approved_code` (`approved`, or `plan`)."""


def norm_code(code: str) -> str:
    """Code compared as the model means it (no blank lines, no trailing spaces)."""
    return "\n".join(line.rstrip() for line in code.strip().split("\n") if line.strip())


def check_code(check: str) -> str:
    """A bare expression must be truthy; statements (asserts) run as they are."""
    try:
        ast.parse(check, mode="eval")
    except SyntaxError:
        return check
    message = f"check is false: {check.strip()}"
    return f"assert ({check.strip()}), {message!r}\n"


class RunState:
    """The state of one request; lives only while `Flow.run` works on it."""

    def __init__(
        self, flow: Flow, request: str, options: FlowOptions, on_event: EventCallback | None
    ):
        self.flow = flow
        self.request = request
        self.opts = options
        self.on_event = on_event
        self.attempts: list[Attempt] = []
        self.tokens = 0
        self.cost = 0.0
        self.start: prompts.Start | None = None
        """What the run knew when it began: the stable prefix of all its requests."""
        self.llm_calls = 0
        self.cache_hits = 0
        self.generation_s = 0.0
        self.improvement_s = 0.0
        self.execution_s = 0.0
        self.start_task: asyncio.Task[None] | None = None
        self.dispatched = False
        self.answered_by = ""
        """The model that gave the last answer (a replay's is the recorded one)."""
        self.warnings: list[str] = []
        self.files = (
            context.file_candidates(request, options.preview_max_files)
            if options.preview_files and options.preview_chars > 0
            else ()
        )
        """Names in the request that may be files, previewed (once) inside the kernel."""
        self.previews: str | None = None
        self.txn: str | None = None
        """The token of the snapshot taken before the run's first execution (None: none)."""
        self.txn_n = 0
        self.run_id = ""

    def start_executor(self) -> None:
        """Start the executor in the background (once), and warm what the reply will need.

        Called when the first model request is on its way: starting earlier would compete
        with preparing that request for the CPU (and the interpreter lock); starting then
        hides the kernel start behind the model's latency.
        """
        if self.dispatched:
            return
        self.dispatched = True
        executor = self.flow.executor
        if not executor.started:
            self.start_task = asyncio.ensure_future(executor.start())
        if self.flow.on_dispatch is not None:
            try:
                self.flow.on_dispatch()
            except Exception:  # warming is an optimisation; it must never fail a run
                pass

    async def executor_ready(self) -> None:
        """Wait for a background start (a failed start raises here, as the executor's error)."""
        self.start_executor()
        if self.start_task is not None and not self.start_task.done():
            await self.start_task

    def emit(self, event: FlowEvent) -> None:
        """Report progress with a typed event (`events.GeneratingEvent(...)`)."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken display must never break the run
            pass
