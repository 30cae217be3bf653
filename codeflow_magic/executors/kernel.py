"""The local kernel backend: a persistent ipykernel driven through jupyter_client.

One kernel per executor, started once and reused: executions pay no setup. What the kernel
cannot report itself — a run that takes too long, a process that died — is watched for here:
a timeout interrupts first (state kept) and restarts only if the interrupt is ignored; death is
noticed by polling the manager, because a dead kernel simply stops sending messages. Both are
explained from what the machine knows (exit signal, OOM counter, process state, the native
stack the kernel's fault handler left in its log), because the kernel itself never says why.
A restart that fails leaves nothing running and raises `BackendError` quoting the kernel log.

Sandboxed backends reuse this class with their own `KernelSpecManager` whose kernelspec names
a kernel provisioner; nothing here assumes the kernel is a local child process beyond what
`AsyncKernelManager` offers.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import BackendError, BackendUnavailable
from ..models import ExecutionResult, Output
from ..secrets import scrub_env
from .base import OutputCallback
from .limits import OomWatch, exit_signal, kill_tagged, signal_text, unresponsive_reason
from .messaging import SnippetExecutorMixin
from .outputs import OutputCollector, marked_drops
from .snippets import fd_capture_snippet, output_cap_startup

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    from ..config import Settings

__all__ = ["KernelExecutor"]

DeathReason = Callable[[], Awaitable[str]]

_ALIVE_POLL_S = 0.3
_IOPUB_WAIT_S = 0.25
_IOPUB_HWM = 64
_IDLE_AFTER_REPLY_S = 2.0
_START_TIMEOUT_S = 60.0
_LOG_READ_MAX = 64_000
_SETUP_TIMEOUT_S = 10.0

# ipykernel points fd 2 into the notebook, so a native crash would print its Python stack into
# a pipe that dies with the process. Enabling the fault handler on the kernel's real stderr (our
# log file) keeps it: the death report quotes the line that crashed.
_FAULTHANDLER_ARG = (
    "--IPKernelApp.exec_lines=__import__('faulthandler').enable("
    "file=getattr(__import__('sys').stderr, '_original_stdstream_copy', 2))"
)
TAG_VARIABLE = "CODEFLOW_KERNEL_TAG"
"""Set in the kernel's environment: its descendants inherit it, so they can be found (and
stopped) even after the kernel died and they were re-parented."""
_CELL_FILE = re.compile(r'File "[^"]*ipykernel_\d+/\d+\.py"')


def _dropped(collector: OutputCollector, outputs: Sequence[Output]) -> int:
    """Characters cut by our collector, or by the kernel's own cap (its marker says how many)."""
    return max(collector.dropped_chars, marked_drops(outputs))


def _log_tail(path: Path, lines: int = 15, since: int = 0) -> str:
    """The last lines the kernel wrote to its log after byte offset `since`."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(since, size - _LOG_READ_MAX))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def native_stack(log_text: str) -> str:
    """The crashing thread's stack from a fault-handler report, oldest call first and cut at
    the cell, shaped like a Python traceback so the failing line can be found."""
    lines = log_text.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error:")]
    if not heads:
        return ""
    head = heads[-1]
    frames: list[str] = []
    current = False
    for line in lines[head + 1 :]:
        if line.startswith("Current thread") or line.startswith("Stack (most recent"):
            current = True
            continue
        if not current:
            continue
        if not line.startswith("  File "):
            break
        frames.append(line)
    cell_frames = [i for i, f in enumerate(frames) if _CELL_FILE.search(f)]
    if cell_frames:
        frames = frames[: cell_frames[-1] + 1]  # nothing below the cell: IPython's machinery
    shown = [_CELL_FILE.sub('File "<cell>"', f) for f in reversed(frames)]
    headline = lines[head].strip()
    if not shown:
        return headline
    return headline + " (most recent call last):\n" + "\n".join(shown)


def _short_tmp() -> str:
    """A base directory short enough for unix socket paths (107 bytes at most)."""
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _seconds(value: float) -> str:
    return f"{value:g}s"


class KernelExecutor(SnippetExecutorMixin):
    """Runs code on one persistent Jupyter kernel (the `kernel` backend)."""

    def __init__(
        self,
        *,
        work_dir: Path,
        kernel_name: str = "python3",
        name: str = "kernel",
        timeout: float = 60.0,
        interrupt_grace: float = 3.0,
        max_output_chars: int = 200_000,
        env: dict[str, str] | None = None,
        kernel_spec_manager: KernelSpecManager | None = None,
        supports_install: bool = True,
        secret_env: Sequence[str] = (),
        death_reason: DeathReason | None = None,
        startup_timeout: float = _START_TIMEOUT_S,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.kernel_name = kernel_name
        self.name = name
        self.timeout = float(timeout)
        self.interrupt_grace = float(interrupt_grace)
        self.max_output_chars = int(max_output_chars)
        self.extra_env = dict(env or {})
        self.kernel_spec_manager = kernel_spec_manager
        self.supports_install = supports_install
        self.secret_env = tuple(secret_env)
        self.death_reason = death_reason
        self.startup_timeout = float(startup_timeout)
        self._km: AsyncKernelManager | None = None
        self._kc: AsyncKernelClient | None = None
        self._run_dir: Path | None = None
        self._cleanup: weakref.finalize | None = None  # type: ignore[type-arg]
        self._log: BinaryIO | None = None
        self._log_path: Path | None = None
        self._log_mark = 0
        self._oom: OomWatch | None = None
        self._tag = uuid.uuid4().hex
        self._stray_guard: weakref.finalize | None = None  # type: ignore[type-arg]
        self._interrupted_id: str | None = None
        self._shutdowns = 0
        self._start_lock = asyncio.Lock()
        self._exec_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, work_dir: Path, **kwargs: Any) -> KernelExecutor:
        ex = settings.execution
        return cls(
            work_dir=work_dir,
            kernel_name=ex.kernel_name,
            timeout=ex.timeout,
            interrupt_grace=ex.interrupt_grace,
            max_output_chars=ex.max_output_chars,
            secret_env=tuple(ex.secret_env),
            **kwargs,
        )

    async def __aenter__(self) -> KernelExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def _what(self) -> str:
        """How messages name this kernel: `the kernel`, `the sandbox kernel`."""
        return "the kernel" if self.name == "kernel" else f"the {self.name} kernel"

    @property
    def started(self) -> bool:
        return self._kc is not None

    @property
    def run_dir(self) -> Path | None:
        """The private directory of connection file, sockets, IPYTHONDIR and runtime dir."""
        return self._run_dir

    @property
    def kernel_manager(self) -> AsyncKernelManager | None:
        """The manager of the running kernel (for backends that need its connection info)."""
        return self._km

    async def start(self) -> None:
        """Start the kernel once; concurrent callers share the one start."""
        if self._kc is not None:
            return
        async with self._start_lock:
            if self._kc is not None:
                return
            await self._launch()

    def kernel_env(self) -> dict[str, str]:
        """The kernel's environment: ours without secrets, plus private Jupyter dirs."""
        assert self._run_dir is not None
        env = scrub_env(os.environ, self.secret_env)
        env.pop("MPLBACKEND", None)  # ipykernel then picks the inline backend: figures as PNG
        env.update(self.extra_env)
        env["IPYTHONDIR"] = str(self._run_dir / "ipython")
        env["JUPYTER_RUNTIME_DIR"] = str(self._run_dir / "runtime")
        env[TAG_VARIABLE] = self._tag
        return env

    async def _launch(self) -> None:
        if not self.work_dir.is_dir():
            raise BackendError(f"work directory {self.work_dir} does not exist")
        run_dir = Path(tempfile.mkdtemp(prefix="cf-", dir=_short_tmp()))
        startup = run_dir / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-codeflow-output-cap.py").write_text(
            output_cap_startup(max(1000, self.max_output_chars - 200)), encoding="utf-8"
        )
        (run_dir / "runtime").mkdir()
        self._run_dir = run_dir
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(run_dir), True)
        # A host that ends without shutdown (an exception, a closed pipe) still stops the
        # kernel's processes: at garbage collection or interpreter exit.
        self._stray_guard = weakref.finalize(self, kill_tagged, TAG_VARIABLE, self._tag)
        kwargs: dict[str, Any] = {
            "kernel_name": self.kernel_name,
            "transport": "ipc",
            "connection_file": str(run_dir / "kernel.json"),
        }
        if self.kernel_spec_manager is not None:
            kwargs["kernel_spec_manager"] = self.kernel_spec_manager
        # Imported here, on a thread, not at module level: building an executor stays free, and
        # the import overlaps the first model call without holding up the event loop.
        await asyncio.to_thread(importlib.import_module, "jupyter_client.manager")
        from jupyter_client.kernelspec import NoSuchKernel
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(**kwargs)
        km.shutdown_wait_time = 3.0
        try:
            argv = list(km.kernel_spec.argv) if km.kernel_spec else []
        except NoSuchKernel:
            self._remove_run_dir()
            raise BackendUnavailable(
                f"no Jupyter kernel named {self.kernel_name!r}; install one "
                "(python -m ipykernel install --user) or set execution.kernel_name"
            ) from None
        extra = (
            ["--HistoryManager.enabled=False", _FAULTHANDLER_ARG]
            if any("ipykernel" in a for a in argv)
            else []
        )
        # The kernel's own stdout and stderr go to a log in its run dir: a kernel killed while
        # starting (a pool shutting down) must not spill tracebacks into the user's terminal,
        # nothing the code does may print into codeflow's stdout (a `--format json` document),
        # and a kernel that fails to start is explained from that log.
        log_path = run_dir / "kernel.log"
        log = open(log_path, "wb")
        self._log = log
        self._log_path = log_path
        self._log_mark = 0
        try:
            await km.start_kernel(
                extra_arguments=extra,
                env=self.kernel_env(),
                cwd=str(self.work_dir),
                stdout=log,
                stderr=log,
            )
        except Exception as exc:
            tail = _log_tail(log_path)
            await _shutdown_quietly(km)
            self._remove_run_dir()
            raise BackendError(f"{self._what} could not start: {exc}{_said(tail)}") from exc
        self._km = km
        try:
            self._kc = await self._connect(km)
        except BackendError as exc:
            tail = _log_tail(log_path)
            await self._stop_kernel()
            raise BackendError(f"{exc}{_said(tail)}") from exc
        await self._mark_ready()

    async def _connect(self, km: AsyncKernelManager) -> AsyncKernelClient:
        kc = km.client()
        # Bound what zmq may queue in this process while a flood of output arrives faster than
        # it is read: past the mark the kernel's publisher drops messages, which the output
        # cap would have dropped anyway; the reply still carries any error.
        import zmq

        kc.context.setsockopt(zmq.RCVHWM, _IOPUB_HWM)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=self.startup_timeout)
        except RuntimeError as exc:
            kc.stop_channels()
            raise BackendError(f"{self._what} did not become ready: {exc}") from exc
        return kc  # type: ignore[no-any-return]

    async def _mark_ready(self) -> None:
        """Remember where the kernel log and the OOM counter stood when this kernel started:
        a later death is explained by what changed since."""
        await self._install_fd_capture()
        self._log_mark = _log_size(self._log_path)
        # Sandboxes and containers explain OOM kills through their own cgroups.
        self._oom = OomWatch.of(await self._kernel_pid()) if self.death_reason is None else None

    async def _install_fd_capture(self) -> None:
        """Make output written to fds 1 and 2 (children, C code) stream output of the request
        that caused it, whatever ipykernel's own fd capture is set to (it is off when the
        kernel inherits PYTEST_CURRENT_TEST, and it races `print`)."""
        kc, km = self._kc, self._km
        spec = km.kernel_spec if km is not None else None
        if kc is None or spec is None or spec.language.lower() != "python":
            return
        msg_id = kc.execute(
            fd_capture_snippet(), silent=True, store_history=False, allow_stdin=False
        )
        try:
            await asyncio.wait_for(self._await_reply(kc, msg_id), _SETUP_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass  # a kernel too busy to answer still runs code; only fd output is affected

    async def restart(self) -> None:
        """Restart the kernel with empty state (waits for a running execution to end)."""
        async with self._exec_lock:
            await self._restart()

    async def _restart(self, cause: str = "") -> None:
        """Kill and start the kernel again; if it cannot come back, stop everything it left
        (processes, containers, cgroups, run dir) and raise `BackendError` with its log."""
        km = self._km
        if km is None:
            await self.start()
            return
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc = None
        self._interrupted_id = None  # a new kernel never answers the old one's requests
        mark = _log_size(self._log_path)  # only what the new kernel says explains its failure
        await self._stop_strays()
        try:
            await km.restart_kernel(now=True)
            self._kc = await self._connect(km)
        except Exception as exc:
            tail = _log_tail(self._log_path, since=mark) if self._log_path else ""
            await self._stop_kernel()
            why = f" after {cause}" if cause else ""
            raise BackendError(
                f"{self._what} could not be restarted{why}: {exc}{_said(tail)}"
            ) from exc
        await self._mark_ready()

    async def _kernel_pid(self) -> int | None:
        """The kernel's process id as this machine sees it (a provisioner may know better than
        the id of the process it launched, e.g. the kernel inside a sandbox)."""
        provisioner = self._km.provisioner if self._km is not None else None
        if provisioner is None:
            return None
        hook = getattr(provisioner, "kernel_pid", None)
        if hook is not None:
            try:
                found = await hook()
            except Exception:
                return None
            return found if isinstance(found, int) else None
        pid = getattr(provisioner, "pid", None)
        return pid if isinstance(pid, int) else None

    async def _unresponsive_reason(self) -> str:
        """Why the kernel ignored an interrupt, if its process (or container) shows it."""
        provisioner = self._km.provisioner if self._km is not None else None
        hook = getattr(provisioner, "unresponsive_reason", None)
        if hook is not None:
            try:
                reason = str(await hook())
            except Exception:
                reason = ""
            if reason:
                return reason
        return unresponsive_reason(await self._kernel_pid())

    async def interrupt(self) -> None:
        """Interrupt the running execution (a KeyboardInterrupt in the kernel)."""
        if self._km is not None:
            await self._km.interrupt_kernel()

    async def shutdown(self) -> None:
        """Stop the kernel and remove every temporary directory (idempotent)."""
        self._shutdowns += 1  # a run in progress ends as "shut down", not as a cancel
        async with self._start_lock:
            await self._stop_kernel()

    async def _stop_kernel(self) -> None:
        kc, km = self._kc, self._km
        self._kc = self._km = None
        self._interrupted_id = None
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            try:
                await km.shutdown_kernel(now=False)
            except Exception:
                try:
                    await km.shutdown_kernel(now=True)
                except Exception:
                    pass  # nothing more can be done; the run dir goes anyway
        await self._stop_strays()
        if self._stray_guard is not None:
            self._stray_guard.detach()
            self._stray_guard = None
        self._remove_run_dir()

    async def _stop_strays(self) -> None:
        """Stop what the kernel started in sessions of its own (its process group is killed
        with it; these are not): nothing the code started outlives its kernel."""
        await asyncio.to_thread(kill_tagged, TAG_VARIABLE, self._tag)

    def _remove_run_dir(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        self._run_dir = None

    # -- execution -----------------------------------------------------------------------

    @property
    def _connected(self) -> bool:
        return self._kc is not None  # None after a shutdown or a failed restart

    async def _run(
        self,
        code: str,
        limit: float,
        on_output: OutputCallback | None,
        silent: bool,
        store_history: bool,
    ) -> ExecutionResult:
        kc, km = self._kc, self._km
        assert kc is not None and km is not None
        collector = OutputCollector(self.max_output_chars, on_output)
        began = time.monotonic()
        shutdowns = self._shutdowns  # changes when shutdown() pulls the kernel from under us
        try:
            await self._settle_interrupted(kc)
        except Exception:
            if self._shutdowns != shutdowns:
                return self._shutdown_result(collector, began)
            raise
        if self._shutdowns != shutdowns:
            return self._shutdown_result(collector, began)
        msg_id: str = kc.execute(
            code,
            silent=silent,
            store_history=store_history,
            allow_stdin=False,
            stop_on_error=False,
        )
        reply: dict[str, Any] | None = None
        idle = False
        replied_at = 0.0
        deadline = began + limit
        interrupted = False
        next_alive = began + _ALIVE_POLL_S
        # The reply (shell) and the idle status (iopub) arrive on different sockets in either
        # order: wait for both at once, event-driven, so a finished run costs no polling delay.
        reply_task = asyncio.ensure_future(self._await_reply(kc, msg_id))
        try:
            while True:
                if self._shutdowns != shutdowns:
                    return self._shutdown_result(collector, began)
                if reply is None and reply_task.done():
                    reply = reply_task.result()
                    replied_at = time.monotonic()
                if reply is not None and idle:
                    break
                now = time.monotonic()
                if reply is not None and now - replied_at > _IDLE_AFTER_REPLY_S:
                    break  # the idle status was lost; the reply is what counts
                if now >= deadline:
                    if interrupted:
                        why = await self._unresponsive_reason()
                        await self._restart("the run ignored the interrupt")
                        return self._timeout_result(collector, reply, began, limit, False, why)
                    interrupted = True
                    await km.interrupt_kernel()
                    deadline = now + self.interrupt_grace
                    continue
                if now >= next_alive:
                    next_alive = now + _ALIVE_POLL_S
                    if not await km.is_alive():
                        if self._shutdowns != shutdowns:
                            return self._shutdown_result(collector, began)
                        return await self._died_result(collector, began)
                wait = max(0.0, min(deadline - now, next_alive - now))
                if idle:
                    await asyncio.wait({reply_task}, timeout=wait)
                    continue
                try:
                    msg = await kc.get_iopub_msg(timeout=wait)
                except Empty:
                    continue
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue  # left over from an earlier, interrupted request
                if msg["msg_type"] == "status":
                    idle = msg["content"].get("execution_state") == "idle"
                    continue
                collector.feed(msg)
        except asyncio.CancelledError:
            if self._shutdowns != shutdowns and not _cancelling():
                # Shutting down closed the sockets under us: nobody cancelled this run.
                return self._shutdown_result(collector, began)
            # The kernel is still busy with this request: the next run waits for its end.
            self._interrupted_id = msg_id
            await asyncio.shield(self._interrupt_quietly())
            raise
        except Exception:
            if self._shutdowns != shutdowns:
                return self._shutdown_result(collector, began)
            raise
        finally:
            if not reply_task.done():
                reply_task.cancel()
        if interrupted:
            return self._timeout_result(collector, reply, began, limit, True)
        return self._finished_result(collector, reply, began)

    async def _settle_interrupted(self, kc: AsyncKernelClient) -> None:
        """Wait (bounded) until a cancelled request has replied and gone idle.

        Its KeyboardInterrupt, reply and idle status are still on the way when the next
        request is sent right after the cancel; sending only after them keeps every message
        of the new request after the old one's.
        """
        msg_id, self._interrupted_id = self._interrupted_id, None
        if msg_id is None:
            return
        deadline = time.monotonic() + self.interrupt_grace + _IDLE_AFTER_REPLY_S
        reply_task = asyncio.ensure_future(self._await_reply(kc, msg_id))
        idle = False
        try:
            while not (idle and reply_task.done()):
                left = deadline - time.monotonic()
                if left <= 0 or self._kc is not kc:
                    return  # it ignores the interrupt: the new run's time limit deals with it
                if idle:
                    await asyncio.wait({reply_task}, timeout=left)
                    continue
                try:
                    msg = await kc.get_iopub_msg(timeout=min(left, _ALIVE_POLL_S))
                except Empty:
                    if self._km is None or not await self._km.is_alive():
                        return  # it died: the new run notices and reports that
                    continue
                if (
                    msg.get("parent_header", {}).get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                ):
                    idle = True
        except asyncio.CancelledError:
            self._interrupted_id = msg_id  # still unsettled for whoever runs next
            raise
        finally:
            if not reply_task.done():
                reply_task.cancel()

    def _shutdown_result(self, collector: OutputCollector, began: float) -> ExecutionResult:
        return ExecutionResult(
            outputs=collector.outputs(),
            status="died",
            ename="KernelShutdown",
            evalue=f"{self._what} was shut down while the code ran",
            duration_s=time.monotonic() - began,
            dropped_chars=collector.dropped_chars,
            state_kept=False,
            detail="kernel was shut down",
        )

    async def _interrupt_quietly(self) -> None:
        try:
            await self.interrupt()
        except Exception:
            pass  # cancelling must not fail because the kernel is gone

    @staticmethod
    async def _await_reply(kc: AsyncKernelClient, msg_id: str) -> dict[str, Any]:
        while True:
            msg = await kc.get_shell_msg(timeout=None)
            if (
                msg.get("parent_header", {}).get("msg_id") == msg_id
                and msg["msg_type"] == "execute_reply"
            ):
                content: dict[str, Any] = msg["content"]
                return content

    def _finished_result(
        self, collector: OutputCollector, reply: dict[str, Any] | None, began: float
    ) -> ExecutionResult:
        outputs = collector.outputs()
        duration = time.monotonic() - began
        content = reply or {}
        status = content.get("status")
        if status == "ok" or (status is None and not _first_error(outputs)):
            return ExecutionResult(
                outputs=outputs, duration_s=duration, dropped_chars=_dropped(collector, outputs)
            )
        err = _first_error(outputs) or {}
        ename = str(content.get("ename") or err.get("ename") or "Error")
        if status == "aborted":
            ename = "Aborted"
        return ExecutionResult(
            outputs=outputs,
            status="error",
            ename=ename,
            evalue=str(content.get("evalue") or err.get("evalue") or ""),
            traceback=tuple(
                str(t) for t in (content.get("traceback") or err.get("traceback") or ())
            ),
            duration_s=duration,
            dropped_chars=_dropped(collector, outputs),
        )

    def _timeout_result(
        self,
        collector: OutputCollector,
        reply: dict[str, Any] | None,
        began: float,
        limit: float,
        state_kept: bool,
        why: str = "",
    ) -> ExecutionResult:
        outputs = tuple(
            o
            for o in collector.outputs()
            if not (o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt")
        )
        what = "interrupted, state kept" if state_kept else "kernel restarted, state lost"
        traceback = tuple(str(t) for t in ((reply or {}).get("traceback") or ()))
        return ExecutionResult(
            outputs=outputs,
            status="timeout",
            ename="TimeoutError",
            evalue=f"execution exceeded {_seconds(limit)}; {what}",
            traceback=traceback if state_kept else (),
            duration_s=time.monotonic() - began,
            dropped_chars=_dropped(collector, outputs),
            restarted=not state_kept,
            state_kept=state_kept,
            detail=(
                "the run was interrupted after the time limit"
                if state_kept
                else f"the run ignored the interrupt for {_seconds(self.interrupt_grace)}: "
                + (why or "it catches KeyboardInterrupt or is busy inside native code")
            ),
        )

    async def _died_result(self, collector: OutputCollector, began: float) -> ExecutionResult:
        km = self._km
        provisioner = km.provisioner if km is not None else None
        exit_code: int | None = None
        if provisioner is not None:
            try:
                exit_code = await provisioner.poll()
            except Exception:
                exit_code = None
        reason = await self._death_reason(exit_code)
        stack = (
            native_stack(_log_tail(self._log_path, 400, self._log_mark)) if self._log_path else ""
        )
        code_part = f" (exit code {exit_code})" if exit_code is not None else ""
        reason_part = f": {reason}" if reason else ""
        await self._restart(f"it died{code_part}{reason_part}")
        return ExecutionResult(
            outputs=collector.outputs(),
            status="died",
            ename="KernelDied",
            evalue=(
                f"the kernel died{code_part}{reason_part}; "
                "it was restarted with empty state (variables and imports are gone)"
            ),
            traceback=(stack,) if stack else (),
            duration_s=time.monotonic() - began,
            dropped_chars=collector.dropped_chars,
            restarted=True,
            state_kept=False,
            detail=reason or (f"exit code {exit_code}" if exit_code is not None else ""),
        )

    async def _death_reason(self, exit_code: int | None) -> str:
        """Why the kernel died: the backend's own finding (an OOM kill in its cgroup or
        container), else the OOM counter of the kernel's memory cgroup, else the signal."""
        if self.death_reason is not None:
            try:
                reason = (await self.death_reason()).strip()
            except Exception as exc:
                reason = f"cause unknown ({exc})"
            if reason:
                return reason
        provisioner = self._km.provisioner if self._km is not None else None
        shell_convention = bool(getattr(provisioner, "exit_status_is_shell", False))
        signum = exit_signal(exit_code, shell_convention=shell_convention)
        if signum is None:
            return ""
        if signum == signal.SIGKILL and self._oom is not None:
            if self._oom.fired():
                return (
                    "killed: out of memory (the out-of-memory killer stopped it; the machine or "
                    "the memory-limited group codeflow runs in had no memory left)"
                )
            if self._oom.count is None:  # no counter to read: it may have been
                return f"killed by {signal_text(signum)}, possibly by the out-of-memory killer"
        return f"killed by {signal_text(signum)}"


def _cancelling() -> bool:
    """Whether the running task is being cancelled (not merely handed a CancelledError by a
    future that was cancelled when its socket closed)."""
    task = asyncio.current_task()
    counter = getattr(task, "cancelling", None)
    if counter is None:  # Python 3.10: cannot tell; treat it as a cancel
        return True
    return bool(counter())


def _log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _said(tail: str) -> str:
    return f"; the kernel said:\n{tail}" if tail else ""


async def _shutdown_quietly(km: AsyncKernelManager) -> None:
    """Stop whatever a failed start left running (a launched process, a container)."""
    try:
        await km.shutdown_kernel(now=True)
    except Exception:
        pass  # nothing was started, or it is gone already


def _first_error(outputs: Sequence[Output]) -> Output | None:
    for out in outputs:
        if out.get("output_type") == "error":
            return out
    return None
