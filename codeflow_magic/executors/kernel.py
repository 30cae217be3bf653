"""The local kernel backend: a persistent ipykernel driven through jupyter_client.

One kernel per executor, started once and reused: executions pay no setup. What the kernel
cannot report itself — a run that takes too long, a process that died — is watched for by the
supervisor (`supervisor.py`: the time limit, the interrupt and its grace, the restart, death
polling); this module is its transport (the client's channels, the manager's `is_alive`) and
explains a death or an ignored interrupt from what the machine knows (exit signal, OOM
counter, process state, the native stack the kernel's fault handler left in its log), because
the kernel itself never says why.
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
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import BackendError, BackendUnavailable
from ..models import ExecutionResult
from ..secrets import scrub_env
from .base import OutputCallback
from .limits import OomWatch, exit_signal, kill_tagged, signal_text, unresponsive_reason
from .messaging import SnippetExecutorMixin
from .outputs import OutputCollector
from .snippets import fd_capture_snippet, output_cap_startup
from .supervisor import Death, Lost, Message, message, supervise

if TYPE_CHECKING:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    from ..config import Settings
    from .provisioner import DiagnosingProvisioner

__all__ = ["KernelExecutor"]

DeathReason = Callable[[], Awaitable[str]]

_ALIVE_POLL_S = 0.3
_IOPUB_WAIT_S = 0.25
_IOPUB_HWM = 64
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

    def _provisioner(self) -> Any:
        return self._km.provisioner if self._km is not None else None

    def _diagnosing(self) -> DiagnosingProvisioner | None:
        """The provisioner when it can explain its kernel (an isolating one), else None."""
        # Imported here: building an executor does not import jupyter_client (see _launch).
        from .provisioner import DiagnosingProvisioner

        provisioner = self._provisioner()
        return provisioner if isinstance(provisioner, DiagnosingProvisioner) else None

    async def _kernel_pid(self) -> int | None:
        """The kernel's process id as this machine sees it (a provisioner may know better than
        the id of the process it launched, e.g. the kernel inside a sandbox)."""
        diagnosing = self._diagnosing()
        if diagnosing is not None:
            try:
                found = await diagnosing.kernel_pid()
            except Exception:
                return None
            return found if isinstance(found, int) else None
        from jupyter_client.provisioning.local_provisioner import LocalProvisioner

        provisioner = self._provisioner()
        pid = provisioner.pid if isinstance(provisioner, LocalProvisioner) else None
        return pid if isinstance(pid, int) else None

    async def _unresponsive_reason(self) -> str:
        """Why the kernel ignored an interrupt, if its process (or container) shows it."""
        diagnosing = self._diagnosing()
        if diagnosing is not None:
            try:
                reason = str(await diagnosing.unresponsive_reason())
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
        collector = OutputCollector(self.max_output_chars, on_output)
        return await supervise(
            _KernelTransport(self),
            code,
            limit,
            collector,
            silent=silent,
            store_history=store_history,
        )

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

    async def _recover(self) -> Death:
        """Explain a death from what the machine knows, then start a new kernel."""
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
        return Death(
            cause=f"{code_part}{reason_part}",
            detail=reason or (f"exit code {exit_code}" if exit_code is not None else ""),
            traceback=(stack,) if stack else (),
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
        diagnosing = self._diagnosing()
        shell_convention = diagnosing is not None and diagnosing.exit_status_is_shell
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


class _KernelTransport:
    """One run's link to a local kernel: requests through the client, replies on the shell
    channel, outputs on iopub, life from the kernel manager."""

    poll_interval = _ALIVE_POLL_S
    caps_output = True  # the startup file caps output inside the kernel

    def __init__(self, executor: KernelExecutor) -> None:
        kc, km = executor._kc, executor._km
        assert kc is not None and km is not None
        self.executor = executor
        self.kc = kc
        self.km = km
        self.what = executor._what
        self.interrupt_grace = executor.interrupt_grace
        # Changes when shutdown() pulls the kernel from under the run.
        self._shutdowns = executor._shutdowns
        self._reply: asyncio.Future[dict[str, Any]] | None = None

    def gone(self) -> bool:
        return self.executor._shutdowns != self._shutdowns

    def take_abandoned(self) -> str | None:
        msg_id, self.executor._interrupted_id = self.executor._interrupted_id, None
        return msg_id

    def expect_reply(self, msg_id: str) -> None:
        self._reply = asyncio.ensure_future(self.executor._await_reply(self.kc, msg_id))

    async def send(self, code: str, *, silent: bool, store_history: bool) -> str:
        msg_id: str = self.kc.execute(
            code,
            silent=silent,
            store_history=store_history,
            allow_stdin=False,
            stop_on_error=False,
        )
        self.expect_reply(msg_id)
        return msg_id

    def take_reply(self) -> dict[str, Any] | None:
        if self._reply is None or not self._reply.done():
            return None
        return self._reply.result()

    async def next_message(self, wait: float, *, idle: bool) -> Message | Lost | None:
        if idle:  # only the reply is still to come
            assert self._reply is not None
            await asyncio.wait({self._reply}, timeout=wait)
            return None
        try:
            msg = await self.kc.get_iopub_msg(timeout=wait)
        except Empty:
            return None
        return message(msg, "iopub")

    def release(self) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()

    def abandon(self, msg_id: str) -> None:
        self.executor._interrupted_id = msg_id

    async def interrupt(self) -> None:
        await self.executor.interrupt()

    async def restart(self, cause: str) -> None:
        await self.executor._restart(cause)

    async def dead(self) -> str | None:
        return None if await self.km.is_alive() else ""

    async def unresponsive_reason(self) -> str | None:
        return await self.executor._unresponsive_reason()

    async def recover(self, how: str) -> Death:
        return await self.executor._recover()
