"""In-process stand-ins for the flow's ports, for unit tests of the pure loop.

`MemoryExecutor` really runs Python with `exec` in one namespace (state persists); the
`ScriptedProvider` answers from a list and records what it was asked.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from collections.abc import Sequence

from codeflow_magic.models import ExecutionResult
from codeflow_magic.providers.base import DeltaCallback, DispatchCallback, LLMRequest, LLMResponse


class ScriptedProvider:
    name = "scripted"
    model = "scripted-model"

    def __init__(self, replies: Sequence[str], chunk: int = 7) -> None:
        self.replies = list(replies)
        self.requests: list[LLMRequest] = []
        self.chunk = chunk

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
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
        pass


class MemoryExecutor:
    name = "memory"
    supports_install = False
    started = True

    def __init__(self) -> None:
        self.ns: dict[str, object] = {}
        self.executed: list[str] = []

    async def start(self) -> None:
        pass

    async def execute(self, code, *, language="python", timeout=None, on_output=None):  # type: ignore[no-untyped-def]
        self.executed.append(code)
        out = io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<cell>", "exec"), self.ns)
        except Exception as exc:
            tb = traceback.format_exception(exc)
            outputs = (
                ({"output_type": "stream", "name": "stdout", "text": out.getvalue()},)
                if out.getvalue()
                else ()
            )
            return ExecutionResult(
                outputs=outputs,
                status="error",
                ename=type(exc).__name__,
                evalue=str(exc),
                traceback=tuple(tb),
                duration_s=time.perf_counter() - started,
            )
        outputs = (
            ({"output_type": "stream", "name": "stdout", "text": out.getvalue()},)
            if out.getvalue()
            else ()
        )
        for o in outputs:
            if on_output:
                on_output(o)
        return ExecutionResult(outputs=outputs, duration_s=time.perf_counter() - started)

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<snippet>", "exec"), self.ns)
        except Exception as exc:
            return ExecutionResult(status="error", ename=type(exc).__name__, evalue=str(exc))
        text = out.getvalue()
        return ExecutionResult(
            outputs=({"output_type": "stream", "name": "stdout", "text": text},) if text else ()
        )

    async def describe_state(self, max_chars: int = 2000) -> str:
        names = [k for k in self.ns if not k.startswith("_")]
        return "\n".join(f"{k}: {type(self.ns[k]).__name__}" for k in names)[:max_chars]

    async def install(self, package, timeout=None):  # type: ignore[no-untyped-def]
        raise AssertionError("install is not allowed here")

    async def shutdown(self) -> None:
        pass
