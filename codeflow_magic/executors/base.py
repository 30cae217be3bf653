"""The execution port: every backend (local kernel, sandbox, docker, gateway, the notebook's
own shell) implements this one protocol, so the flow never knows where code runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..models import ExecutionResult, Output

OutputCallback = Callable[[Output], None]


@runtime_checkable
class Executor(Protocol):
    """A persistent place to run code: state lives on between `execute` calls."""

    name: str
    """Backend name as the user types it (`kernel`, `sandbox`, `docker`, `gateway`, `inline`)."""

    supports_install: bool
    """True when installing a missing package into this backend is allowed (not sandboxed)."""

    @property
    def started(self) -> bool:
        """True while the backend is up (after `start`, before `shutdown`): the flow neither
        describes nor probes the state of a kernel that has not started."""

    async def start(self) -> None:
        """Start (idempotent). Called early to overlap kernel start with generation."""

    async def execute(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run code; never raises for failures of the code itself (they are in the result)."""

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        """Run codeflow's own Python (snapshots, probes) in the user namespace: silently, with
        no history entry, no execution count and no display; stdout comes back as outputs."""

    async def describe_state(self, max_chars: int = 2000) -> str:
        """A bounded summary of user variables (names, types, shapes, columns) for prompts."""

    async def install(self, package: str, timeout: float | None = None) -> ExecutionResult:
        """pip-install a package into the environment the kernel imports from."""

    async def shutdown(self) -> None:
        """Stop and clean up everything the backend started (idempotent)."""
