"""What every backend that speaks the Jupyter messaging protocol does the same way.

The local kernel (and the sandbox and docker backends built on it) and the gateway differ in
how a message reaches the kernel; how Bash, the state summary and installs are expressed as
Python sent to that kernel does not differ. Each backend provides `_run` (one execution on
a connected kernel); this mixin builds the rest of the `Executor` protocol on it.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..models import LANGUAGES, ExecutionResult
from .base import OutputCallback
from .snippets import bash_snippet, describe_state_snippet, pip_install_snippet

# A plain requirement: a project name, optional extras, optional single version clause.
REQUIREMENT = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
    r"(?:\[[A-Za-z0-9](?:[A-Za-z0-9._,-]*[A-Za-z0-9])?\])?"
    r"(?:(?:==|>=|<=|~=|!=|>|<)[A-Za-z0-9.*+!-]+)?$"
)


class SnippetExecutorMixin:
    """`execute`, `describe_state` and `install` in terms of one `_run`."""

    name: str
    supports_install: bool
    timeout: float

    _exec_lock: asyncio.Lock

    if TYPE_CHECKING:  # each backend defines these; declared here for the type checker

        @property
        def _connected(self) -> bool: ...

        async def start(self) -> None: ...

        async def _run(
            self,
            code: str,
            limit: float,
            on_output: OutputCallback | None,
            silent: bool,
            store_history: bool,
        ) -> ExecutionResult: ...

    async def _execute(
        self,
        code: str,
        *,
        timeout: float | None,
        on_output: OutputCallback | None = None,
        silent: bool = False,
        store_history: bool = True,
    ) -> ExecutionResult:
        """One execution at a time, on a started kernel, within a positive time limit."""
        await self.start()
        limit = self.timeout if timeout is None else float(timeout)
        if limit <= 0:
            raise UsageError(f"timeout must be positive, got {limit:g}")
        async with self._exec_lock:
            if not self._connected:  # shut down or restarted without success meanwhile
                await self.start()
            return await self._run(code, limit, on_output, silent, store_history)

    async def execute(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run code (Python, or Bash through a Python snippet); failures are in the result."""
        if language not in LANGUAGES:
            raise UsageError(
                f"unknown language {language!r}; choose one of " + ", ".join(LANGUAGES)
            )
        source = bash_snippet(code) if language == "bash" else code
        return await self._execute(
            source, timeout=timeout, on_output=on_output, store_history=language == "python"
        )

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        """codeflow's own Python: silent, outside the history (no execution count used)."""
        return await self._execute(code, timeout=timeout, silent=True, store_history=False)

    async def describe_state(self, max_chars: int = 2000) -> str:
        """A bounded summary of user variables, from a snippet that leaves no trace."""
        if max_chars <= 0:
            return ""
        result = await self._execute(
            describe_state_snippet(max_chars),
            timeout=max(self.timeout, 10.0),
            silent=True,
            store_history=False,
        )
        if not result.ok:
            return ""
        text = "".join(
            str(o.get("text", ""))
            for o in result.outputs
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        return text[:max_chars]

    async def install(self, package: str, timeout: float | None = None) -> ExecutionResult:
        """`pip install <package>` with the kernel's own interpreter."""
        package = package.strip()
        if not REQUIREMENT.match(package):
            raise UsageError(
                f"{package!r} is not a plain package requirement (expected a name such as "
                "'requests', 'pandas[excel]' or 'numpy>=1.26')"
            )
        if not self.supports_install:
            raise UsageError(f"the {self.name} backend does not allow installing packages")
        return await self._execute(
            pip_install_snippet(package),
            timeout=timeout if timeout is not None else max(self.timeout, 300.0),
            store_history=False,
        )
