"""Stand-ins for the flow's two ports, shipped so that code built on codeflow can be tested
without a model or a kernel (as httpx ships `MockTransport`).

`ScriptedProvider` answers from a list of replies and records every request it was asked, so a
test states what the model says and then checks what the flow sent (the fix prompt carrying
the error, the purpose of each call). `MemoryExecutor` really runs Python with `exec` in one
namespace, so state persists between cells as in a kernel, and failures come back as results
the way a kernel reports them; it starts instantly and needs no Jupyter.

Both satisfy the `Provider` and `Executor` protocols, so they plug into `Flow` and `CodeFlow`:

    from codeflow_magic.flow import Flow
    from codeflow_magic.testing import MemoryExecutor, ScriptedProvider

    flow = Flow(ScriptedProvider(["```python\\nx = 1\\n```"]), MemoryExecutor())
    record = await flow.run("set x to 1")

They are for tests only: the executor runs code in the calling process with no isolation.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .executors.base import OutputCallback
from .models import ExecutionResult, Output
from .providers.base import DeltaCallback, DispatchCallback, LLMRequest, LLMResponse

if TYPE_CHECKING:
    from .executors.base import Executor
    from .providers.base import Provider

__all__ = ["MemoryExecutor", "ScriptedProvider"]


class ScriptedProvider:
    """A model that gives the scripted replies in order and remembers what it was asked.

    Replies are streamed to `on_delta` in pieces of `chunk` characters, so code that renders
    progress sees several deltas as with a real model. Asking for more replies than were
    scripted raises `AssertionError`: a flow that calls the model more often than the test
    expects is a failure of the test, not an answer to make up.
    """

    name = "scripted"
    """Provider prefix, as in `scripted:<model>`."""

    def __init__(
        self, replies: Sequence[str], chunk: int = 7, *, model: str = "scripted-model"
    ) -> None:
        self.replies: list[str] = list(replies)
        """The replies not given yet (the next one first)."""
        self.requests: list[LLMRequest] = []
        """Every request received, in order: check prompts and purposes against it."""
        self.chunk = chunk
        self.model = model

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
        """Record the request and answer with the next scripted reply.

        Token counts are fixed (10 in, a quarter of the characters out), so budgets and
        metrics in tests are predictable.
        """
        self.requests.append(request)
        if on_dispatch is not None:
            on_dispatch()
        if not self.replies:
            raise AssertionError("the flow asked the model more often than the test scripted")
        text = self.replies.pop(0)
        if on_delta:
            for i in range(0, len(text), self.chunk):
                on_delta(text[i : i + self.chunk])
        return LLMResponse(
            text=text, model=self.model, input_tokens=10, output_tokens=len(text) // 4
        )

    async def aclose(self) -> None:
        """Nothing to release: there is no connection."""


def _stdout(text: str) -> tuple[Output, ...]:
    """Captured stdout as the outputs a kernel would send (none when nothing was printed)."""
    return ({"output_type": "stream", "name": "stdout", "text": text},) if text else ()


class MemoryExecutor:
    """An executor that runs Python in this process, in one namespace that persists.

    `ns` is the user namespace (seed it to give the code variables, read it to check what the
    code left); `executed` lists every cell run through `execute`, in order. Only stdout is
    captured. Installing is refused (`supports_install` is False), so a test never reaches pip.
    """

    name = "memory"
    supports_install = False
    started = True
    """Always started: there is no kernel to wait for."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.executed: list[str] = []

    async def start(self) -> None:
        """Nothing to start."""

    async def execute(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run `code` in `ns`; an exception comes back as an `error` result with its traceback,
        as a kernel reports it. `language` and `timeout` are accepted for the protocol and not
        enforced: the code runs as Python, to completion."""
        self.executed.append(code)
        out = io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<cell>", "exec"), self.ns)
        except Exception as exc:
            return ExecutionResult(
                outputs=_stdout(out.getvalue()),
                status="error",
                ename=type(exc).__name__,
                evalue=str(exc),
                traceback=tuple(traceback.format_exception(exc)),
                duration_s=time.perf_counter() - started,
            )
        outputs = _stdout(out.getvalue())
        for output in outputs:
            if on_output:
                on_output(output)
        return ExecutionResult(outputs=outputs, duration_s=time.perf_counter() - started)

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        """Run codeflow's own probes in `ns`, silently: not recorded in `executed`."""
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<snippet>", "exec"), self.ns)
        except Exception as exc:
            return ExecutionResult(status="error", ename=type(exc).__name__, evalue=str(exc))
        return ExecutionResult(outputs=_stdout(out.getvalue()))

    async def describe_state(self, max_chars: int = 2000) -> str:
        """One `name: type` line per public variable of `ns`."""
        names = [k for k in self.ns if not k.startswith("_")]
        return "\n".join(f"{k}: {type(self.ns[k]).__name__}" for k in names)[:max_chars]

    async def install(self, package: str, timeout: float | None = None) -> ExecutionResult:
        """Refused: a test must never install packages into the running interpreter."""
        raise AssertionError("install is not allowed here")

    async def shutdown(self) -> None:
        """Nothing to stop."""


if TYPE_CHECKING:  # mypy proves both satisfy the ports' protocols
    _provider: Provider = ScriptedProvider([])
    _executor: Executor = MemoryExecutor()
