"""The `inline` backend: run generated code in the notebook's own IPython shell.

Generated code sees the user's variables and leaves its own behind, like a cell the user typed.
Every attempt runs with its outputs captured (streams, displays incl. matplotlib figures,
execute results, tracebacks) instead of shown, so a failed attempt never appears in the cell;
the front door re-emits the final attempt's outputs.

Threading: inside ipykernel the flow cannot run on the kernel's own event loop (the cell that
started it is still executing on it). The magic runs the flow on a private loop in a worker
thread, and the main thread pumps a `MainThreadPump` of jobs. `execute` puts "run this in the
shell" on that pump and awaits it, so user code (and every display call) happens on the main
thread, in the cell's context, where `_thread.interrupt_main()` can stop it on timeout.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import io
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher

from ..models import ExecutionResult, Output
from .base import OutputCallback
from .fdpump import FdPump
from .outputs import BytesToText, OutputCollector

if TYPE_CHECKING:
    from ..config import Settings

R = TypeVar("R")
T = TypeVar("T")

_CELL_NUMBER = re.compile(r"(In\s*\[)\d+(\])|(ipython-input-)\d+(-)")


def _stable_traceback(stb: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Drop execution counts from a traceback (`Cell In[7]` -> `Cell In[]`).

    The count depends on how many cells ran before, which differs between a headless run and
    a full re-run of the same notebook; the traceback goes into fix prompts, and recorded
    answers only replay when the prompt is identical.
    """
    return tuple(
        _CELL_NUMBER.sub(lambda m: (m.group(1) or m.group(3)) + (m.group(2) or m.group(4)), line)
        for line in stb
    )


Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


def _noop() -> None:
    return None


def _wake_future() -> concurrent.futures.Future[None]:
    return concurrent.futures.Future()


class MainThreadPump:
    """A queue of jobs that must run on the thread that owns the shell.

    `submit` may be called from any thread; `run_until` runs on the owning thread and works
    through jobs until a future completes, calling `idle` in between (the progress display).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._owner = threading.get_ident()

    @property
    def on_owner_thread(self) -> bool:
        return threading.get_ident() == self._owner

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self.on_owner_thread:
            self._run_job(fn, future)
        else:
            self._jobs.put((fn, future))
        return future

    @staticmethod
    def _run_job(fn: Callable[[], Any], future: concurrent.futures.Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the awaiting side, which re-raises it
            future.set_exception(exc)

    def run_until(
        self,
        done: concurrent.futures.Future[Any],
        idle: Callable[[], None] | None = None,
        interval: float = 0.05,
    ) -> None:
        """Work through jobs until `done` completes; then drain what is still queued."""
        # Wake the blocking `get` the moment the flow finishes, instead of at the next tick.
        done.add_done_callback(lambda _: self._jobs.put((_noop, _wake_future())))
        while not done.done():
            try:
                fn, future = self._jobs.get(timeout=interval)
            except queue.Empty:
                if idle is not None:
                    idle()
                continue
            self._run_job(fn, future)
            if idle is not None:
                idle()
        self.drain()

    def drain(self) -> None:
        while True:
            try:
                fn, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            self._run_job(fn, future)


class _StreamCapture(io.TextIOBase):
    """A `sys.stdout`/`sys.stderr` stand-in that feeds a collector.

    With a pump (what children and C code write to the matching fd), each write first delivers
    what is already in the pipe, so a child's output lands before the next `print`.
    """

    def __init__(
        self, name: str, sink: Callable[[dict[str, Any]], None], pump: FdPump | None = None
    ) -> None:
        super().__init__()
        self.name_ = name
        self._sink = sink
        self.pump = pump
        self.buffer = BytesToText(self.write)  # code that writes bytes works as in a terminal

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        pump = self.pump
        if pump is None or pump.busy:
            self._emit(text)
            return len(text)
        with pump.lock:
            pump.drain()
            self._emit(text)
        return len(text)

    def _emit(self, text: str) -> None:
        self._sink({"msg_type": "stream", "content": {"name": self.name_, "text": text}})

    def flush(self) -> None:
        if self.pump is not None:
            self.pump.drain()

    def fileno(self) -> int:
        """The redirected fd: `subprocess.run(..., stdout=sys.stdout)` is captured too."""
        if self.pump is None:
            raise io.UnsupportedOperation("fileno")
        return self.pump.fd


class _FdCapture:
    """Pumps from fds 1 and 2 into the capturing streams of the run in progress.

    The pipes and their threads are made at the first run and kept: between runs the fds
    point where they did before, and each run only moves them (two `dup2` calls), which
    costs far less than making pumps. A run inside a run gets pumps of its own.
    """

    def __init__(self) -> None:
        self._pumps: dict[int, FdPump] = {}

    def start(self, out: _StreamCapture, err: _StreamCapture) -> list[FdPump]:
        """Point fds 1 and 2 at the streams; return the pumps to `finish` (none where fds
        cannot be moved, as in a service without stdio)."""
        nested = any(p.attached for p in self._pumps.values())
        pumps: list[FdPump] = []
        for fd, stream in ((1, out), (2, err)):
            kept = None if nested else self._pumps.get(fd)
            try:
                if kept is not None:
                    kept.attach(stream._emit)
                    pump = kept
                else:
                    pump = FdPump(fd, stream._emit, stream.name_)
                    if not nested:
                        self._pumps[fd] = pump
            except OSError:
                continue  # no such fd: nothing to capture
            stream.pump = pump
            pumps.append(pump)
        return pumps

    def finish(self, pumps: list[FdPump]) -> None:
        """The fds back first; what is left in the pipes is this run's."""
        for pump in pumps:
            with contextlib.suppress(OSError):
                if self._pumps.get(pump.fd) is pump:
                    pump.detach()
                else:
                    pump.close()

    def close(self) -> None:
        for pump in self._pumps.values():
            with contextlib.suppress(OSError):
                pump.close()
        self._pumps.clear()


class _CapturePublisher(DisplayPublisher):
    """Receives `display()`/`update_display()`/`clear_output()` of captured code."""

    sink: Callable[[dict[str, Any]], None] | None = None

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        if self.sink is None:
            return
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        kind = "update_display_data" if update else "display_data"
        self.sink({"msg_type": kind, "content": content})

    def clear_output(self, wait: bool = False) -> None:
        if self.sink is not None:
            self.sink({"msg_type": "clear_output", "content": {"wait": wait}})


class _CaptureHook(DisplayHook):
    """The displayhook while captured code runs: the last expression becomes execute_result."""

    source: str = ""
    sink: Callable[[dict[str, Any]], None] | None = None

    def quiet(self) -> bool:
        return bool(self.semicolon_at_end_of_expression(self.source))  # type: ignore[no-untyped-call]

    def write_output_prompt(self) -> None:
        return None

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        if self.sink is not None:
            content = {
                "data": format_dict,
                "metadata": md_dict or {},
                "execution_count": self.shell.execution_count if self.shell else None,
            }
            self.sink({"msg_type": "execute_result", "content": content})

    def log_output(self, format_dict: dict[str, Any]) -> None:
        return None


class InlineExecutor:
    """Runs code in the notebook's shell (the `Executor` protocol), outputs captured."""

    name = "inline"
    supports_install = True
    started = True
    """The notebook's shell is always running."""

    def __init__(
        self,
        shell: Any,
        *,
        work_dir: Path | None = None,
        timeout: float = 60.0,
        max_output_chars: int = 200_000,
        pump: MainThreadPump | None = None,
    ) -> None:
        self.shell = shell
        self.work_dir = work_dir
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self.pump = pump
        self._lock = threading.Lock()
        self._publisher: _CapturePublisher | None = None
        self._hook: _CaptureHook | None = None
        self._fds = _FdCapture()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, shell: Any, work_dir: Path | None = None
    ) -> InlineExecutor:
        return cls(
            shell,
            work_dir=work_dir,
            timeout=float(settings.execution.timeout),
            max_output_chars=int(settings.execution.max_output_chars),
        )

    # -- protocol --------------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to start: the shell is already running."""

    async def shutdown(self) -> None:
        """The shell belongs to the user: only codeflow's own fd pumps are stopped."""
        self._fds.close()

    async def execute(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        source = code if language == "python" else self._wrap(code, language)
        limit = self.timeout if timeout is None else timeout
        return await self._on_main(lambda: self.run_captured(source, limit, on_output))

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        """Our own snippet as plain Python in the user namespace, as a kernel runs it, but with
        no cell machinery: no history, no display hooks (the snippets leave no names)."""
        shell = self.shell

        def run() -> ExecutionResult:
            out = io.StringIO()
            started = time.monotonic()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, "<codeflow-snippet>", "exec"), shell.user_ns)
            except Exception as exc:
                return ExecutionResult(
                    status="error",
                    ename=type(exc).__name__,
                    evalue=str(exc),
                    duration_s=time.monotonic() - started,
                )
            text = out.getvalue()
            outputs: tuple[Output, ...] = (
                ({"output_type": "stream", "name": "stdout", "text": text},) if text else ()
            )
            return ExecutionResult(outputs=outputs, duration_s=time.monotonic() - started)

        return await self._on_main(run)

    async def describe_state(self, max_chars: int = 2000) -> str:
        from . import snippets

        code = snippets.describe_state_snippet(max_chars)
        shell = self.shell

        def describe() -> str:
            # Our own snippet, so it runs as plain Python in a private namespace: no cell
            # machinery, no history, no trace in the user's namespace.
            out = io.StringIO()
            scope: dict[str, Any] = {"get_ipython": lambda: shell, "__name__": "_codeflow"}
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, "<codeflow-state>", "exec"), scope)
            except Exception:
                return ""
            return out.getvalue()

        text = await self._on_main(describe)
        return text.strip()[:max_chars]

    async def install(self, package: str, timeout: float | None = None) -> ExecutionResult:
        """pip-install into the interpreter the shell runs on (same snippet as the kernel)."""
        from . import snippets

        code = snippets.pip_install_snippet(package)
        limit = timeout if timeout is not None else max(self.timeout, 300.0)
        return await self._on_main(lambda: self.run_captured(code, limit, None))

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _wrap(code: str, language: str) -> str:
        from . import snippets

        if language == "bash":
            return snippets.bash_snippet(code)
        raise ValueError(f"the inline backend runs python and bash, not {language!r}")

    async def _on_main(self, job: Callable[[], R]) -> R:
        pump = self.pump
        if pump is None or pump.on_owner_thread:
            return job()
        return await asyncio.wrap_future(pump.submit(job))

    @contextmanager
    def _captured(
        self, source: str, sink: Callable[[dict[str, Any]], None]
    ) -> Iterator[list[dict[str, Any]]]:
        """Swap the shell's output channels for capturing ones; restore them whatever happens."""
        shell = self.shell
        errors: list[dict[str, Any]] = []
        if self._publisher is None:
            self._publisher = _CapturePublisher(shell=shell)  # type: ignore[no-untyped-call]
            self._hook = _CaptureHook(shell=shell, cache_size=0)  # type: ignore[no-untyped-call]
        publisher, hook = self._publisher, self._hook
        assert hook is not None
        out = _StreamCapture("stdout", sink)
        err = _StreamCapture("stderr", sink)

        def ordered(msg: dict[str, Any]) -> None:
            """Displays and tracebacks come after what children wrote before them."""
            out.flush()
            err.flush()
            sink(msg)

        publisher.sink = ordered
        hook.sink = ordered
        hook.source = source

        def show_traceback(etype: Any, evalue: Any, stb: list[str]) -> None:
            content = {
                "ename": getattr(etype, "__name__", str(etype)),
                "evalue": str(evalue),
                "traceback": list(stb),
            }
            errors.append(content)
            ordered({"msg_type": "error", "content": content})

        saved = (
            sys.stdout,
            sys.stderr,
            shell.display_pub,
            shell.displayhook,
            shell.display_trap.hook,
            sys.displayhook,
        )
        had_own_tb = "_showtraceback" in vars(shell)
        own_tb = vars(shell).get("_showtraceback")
        # What children and C code write to fds 1 and 2 is output of this run too; otherwise
        # it would go to the notebook cell directly (or the terminal), outside the attempt.
        pumps = self._fds.start(out, err)
        sys.stdout, sys.stderr = out, err
        shell.display_pub = publisher
        shell.displayhook = hook
        shell.display_trap.hook = hook
        sys.displayhook = hook  # a nested run_cell keeps the outer trap's hook otherwise
        shell._showtraceback = show_traceback
        try:
            yield errors
        finally:
            self._fds.finish(pumps)
            out.pump = err.pump = None
            (sys.stdout, sys.stderr, shell.display_pub, shell.displayhook) = saved[:4]
            shell.display_trap.hook = saved[4]
            sys.displayhook = saved[5]
            if had_own_tb:
                shell._showtraceback = own_tb
            else:
                del shell._showtraceback
            publisher.sink = None
            hook.sink = None

    def run_captured(
        self,
        source: str,
        timeout: float | None,
        on_output: OutputCallback | None,
        *,
        quiet: bool = False,
    ) -> ExecutionResult:
        """Run `source` in the shell now (on the shell's thread), outputs captured.

        The time limit is handled here, not by `supervisor.py`: the code runs in this process on
        the main thread (stopped by `interrupt_main`, no kernel to restart or poll for death).
        """
        lock = threading.Lock()
        collector = OutputCollector(self.max_output_chars, on_output)
        state = {"running": True, "fired": False}

        def sink(msg: dict[str, Any]) -> None:
            with lock:
                collector.feed(msg)

        def fire() -> None:
            with lock:
                if state["running"]:
                    state["fired"] = True
                    _thread.interrupt_main()

        timer = threading.Timer(timeout, fire) if timeout else None
        started = time.monotonic()
        interrupted = False
        with self._lock, self._captured(source, sink) as errors:
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                result = self.shell.run_cell(source, store_history=False, silent=quiet)
            except KeyboardInterrupt:
                result = None
                interrupted = True
            finally:
                with lock:
                    state["running"] = False
                if timer is not None:
                    timer.cancel()
            if state["fired"]:
                interrupted = True
                try:  # the interrupt may still be on its way: let it land here, not later
                    for _ in range(20):
                        time.sleep(0.005)
                except KeyboardInterrupt:
                    pass
        duration = time.monotonic() - started
        outputs = collector.outputs()
        dropped = collector.dropped_chars
        if interrupted:
            return ExecutionResult(
                outputs=outputs,
                status="timeout",
                ename="TimeoutError",
                evalue=f"execution took longer than {timeout:g} s and was interrupted",
                duration_s=duration,
                dropped_chars=dropped,
                state_kept=True,
                detail="interrupted in the notebook's shell; variables are kept",
            )
        exc = None
        if result is not None:
            exc = result.error_before_exec or result.error_in_exec
        if exc is None and not errors:
            return ExecutionResult(outputs=outputs, duration_s=duration, dropped_chars=dropped)
        last = errors[-1] if errors else {}
        return ExecutionResult(
            outputs=outputs,
            status="error",
            ename=str(last.get("ename") or type(exc).__name__),
            evalue=str(last.get("evalue") if last else exc),
            traceback=_stable_traceback(last.get("traceback", ())),
            duration_s=duration,
            dropped_chars=dropped,
        )
