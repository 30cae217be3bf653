"""`codeflow run NOTEBOOK...`: execute notebooks headless, write the code back, report.

Each notebook runs top to bottom in one kernel (nbclient) whose working directory is the
notebook's folder, so the recorded-response cache beside the notebook is used and a committed
notebook re-runs offline. After each `%%codeflow` cell the runner applies the write-back itself
(headless clients ignore `set_next_input`): the linked code cell below is inserted or updated
from the run record in the cell's outputs, and is then skipped, since its code just ran.
As with nbclient's `execute()`, each executed cell keeps its timestamps (`metadata.execution`)
and the notebook the state of its widgets (`metadata.widgets`). A plain cell past
`--cell-timeout` is interrupted, as nbconvert's `interrupt_on_timeout` does.

Notebooks are files people care about, so the runner is careful with them:

* every file is written to a temporary file beside it and renamed over it, so a run killed at
  any moment leaves the old file or the new one, never half of one;
* a run holds a lock on each notebook it reads or writes; a second run on the same notebook
  stops at once (exit status 6) naming the first one's pid, or waits for it with `--wait`;
* SIGINT and SIGTERM stop the kernel, save what finished (the other cells marked as not run)
  and exit with 130 or 143; the input is never touched unless `--inplace` asked for it;
* bad input (a missing file, a folder, text that is not a notebook, a place that cannot be
  written) is refused with one clear line and exit status 2 before anything runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .errors import BackendError

REPORT_SUFFIXES = (".html", ".htm", ".md")
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
KERNEL_SHUTDOWN_WAIT_S = 3.0
"""How long a stopped kernel gets to exit by itself before it is killed."""


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived outside the kernel's run (a BaseException, like Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    source: Path
    output: Path | None = None
    nb: Any = None
    errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped_by: int | None = None
    """The signal that stopped the run, if one did."""
    stopped_at: int = 0
    """Index of the first cell that did not finish when the run was stopped."""
    not_run_from: int | None = None
    """Set when a cell past `--cell-timeout` ended the run: the first cell not run. Unlike
    after a failing cell, the cells before it are saved, since the user asked for the limit."""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_requests


# -- output paths -------------------------------------------------------------------------


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Stopped` (outside the kernel's run, which has its own).

    Only the main thread may set signal handlers; called from another thread, the process's
    own handling stays as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    install_stop_handlers()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def install_stop_handlers() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _raise_stopped)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


# -- running --------------------------------------------------------------------------------


def writeback_mode(magic_args: str) -> str:
    """Where a `%%codeflow` line puts its code, read with the magic's own options (quoting
    as the magic reads it: `--check "x == '--replace'"` is not `--replace`)."""
    from .options import read_magic_line

    args = read_magic_line(magic_args)
    if args is None:
        return "below"
    if args.no_writeback:
        return "off"
    return "replace" if args.replace else "below"


def kernel_env(nb_path: Path, cache_mode: str | None, overrides: list[str]) -> dict[str, str]:
    """The kernel's environment: ours (the magic inside needs the provider's key), plus how the
    magic finds the notebook's cache and the command line's settings."""
    from .cellsettings import OVERRIDES_ENV

    env = dict(os.environ)
    env["JPY_SESSION_NAME"] = str(nb_path.resolve())
    if cache_mode:
        env["CODEFLOW_CACHE"] = cache_mode
    if overrides:
        env[OVERRIDES_ENV] = json.dumps(overrides)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


async def execute_notebook(
    run: NotebookRun,
    *,
    timeout: float | None,
    allow_errors: bool,
    kernel_name: str | None,
    env: dict[str, str],
    progress: Any = None,
    cell_timeout: float | None = None,
) -> None:
    """Run every cell; apply write-back after each request cell; skip just-written cells.

    SIGINT and SIGTERM cancel the run: the kernel is interrupted and shut down, and
    `run.stopped_by` / `run.stopped_at` say what happened, for the caller to save.
    """
    nb = run.nb
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def on_signal(signum: int) -> None:
        if run.stopped_by is None:  # a second signal does not cut the kernel's shutdown short
            run.stopped_by = signum
            task.cancel()

    installed: list[int] = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        with tempfile.TemporaryDirectory(
            prefix="codeflow-", dir=_socket_dir(), ignore_cleanup_errors=True
        ) as folder:
            await _execute_cells(
                run,
                name=name,
                connection_file=Path(folder) / "kernel.json",
                timeout=timeout,
                cell_timeout=cell_timeout,
                allow_errors=allow_errors,
                env=env,
                progress=progress,
            )
    except asyncio.CancelledError:
        if run.stopped_by is None:
            raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        install_stop_handlers()  # removing a loop handler restores the default, not ours


def _socket_dir() -> str | None:
    """A short parent folder for the kernel's sockets (a Unix socket path has ~107 bytes)."""
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None


async def _execute_cells(
    run: NotebookRun,
    *,
    name: str,
    connection_file: Path,
    timeout: float | None,
    cell_timeout: float | None,
    allow_errors: bool,
    env: dict[str, str],
    progress: Any,
) -> None:
    """The kernel talks over IPC sockets beside `connection_file`: local Unix sockets, so no
    plain-text TCP port is opened (and ipykernel prints no warning about one).

    The kernel is started and stopped here rather than in nbclient's context manager, whose
    own SIGINT/SIGTERM handlers would shut the kernel down under a running cell.

    As nbclient's own `execute()` does, each cell's iopub/shell timestamps are kept in
    `metadata.execution` and the state of the widgets the cells made in `metadata.widgets`."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from .notebook import (
        apply_writeback,
        ensure_cell_ids,
        find_linked_cell,
        find_plan,
        find_record,
        is_edited,
        review_state,
        split_request,
        writes_code,
    )
    from .run_client import CellStuck, RunClient

    nb = run.nb
    ensure_cell_ids(nb)
    km = AsyncKernelManager(kernel_name=name, transport="ipc", connection_file=str(connection_file))
    km.shutdown_wait_time = KERNEL_SHUTDOWN_WAIT_S
    client = RunClient(
        nb,
        km=km,
        cell_limit=timeout,
        interrupt_after=cell_timeout,
        kernel_name=name,
        allow_errors=allow_errors,
        record_timing=True,
        resources={"metadata": {"path": str(run.source.parent.resolve())}},
    )
    produced: set[str] = set()
    index = 0
    # The kernel's own stdout/stderr go to a log beside its sockets, not to our terminal: a
    # kernel shut down under a busy cell prints tracebacks that are not the user's concern,
    # and a kernel that fails to start is explained from that log.
    log_path = connection_file.with_name("kernel.log")
    log = open(log_path, "wb")
    try:
        try:
            # cwd = the notebook's folder (nbclient passes resources' path as cwd)
            await client.async_start_new_kernel(env=env, stdout=log, stderr=log)
            await client.async_start_new_kernel_client()
        except NoSuchKernel:
            raise BackendError(
                f"{run.source}: no Jupyter kernel named {name!r}; install one "
                "(python -m ipykernel install --user) or pass --kernel"
            ) from None
        except RuntimeError as exc:
            tail = _log_tail(log_path)
            raise BackendError(
                f"{run.source}: could not start the kernel: {exc}"
                + (f"; the kernel said:\n{tail}" if tail else "")
            ) from None
        assert client.kc is not None
        msg_id = client.kc.kernel_info()
        info = await client.async_wait_for_reply(msg_id)
        if info is not None and "language_info" in info.get("content", {}):
            nb.metadata["language_info"] = info["content"]["language_info"]
        if nb.metadata.get("language_info", {}).get("name") == "python":
            await _capture_fd_output(client.kc)
        while index < len(nb.cells):
            cell = nb.cells[index]
            if str(cell.get("id")) in produced:
                index += 1
                _advance(progress, len(nb.cells))
                continue
            try:
                await client.async_execute_cell(
                    cell, index, execution_count=client.code_cells_executed + 1
                )
            except CellExecutionError as exc:
                if client.interrupted_cell is cell:
                    run.errors.append(f"{_interrupted(index, cell_timeout)} ({exc.ename})")
                    run.not_run_from = index + 1
                else:
                    run.errors.append(cell_failure(index, cell, exc))
                return
            except CellStuck as exc:
                run.errors.append(f"{_interrupted(index, cell_timeout)}, but {exc}")
                run.not_run_from = index
                return
            except CellTimeoutError:
                limit = client.limit_for(cell) or 0.0
                run.errors.append(
                    f"cell {index + 1} did not finish within {limit:g} s (--timeout; "
                    "--cell-timeout would interrupt a plain cell and keep its outputs)"
                )
                return
            failure = _cell_error(index, cell) if allow_errors else None
            if client.interrupted_cell is cell:
                how = " (kept going: --allow-errors)" if failure else "; it caught the interrupt"
                run.notes.append(_interrupted(index, cell_timeout) + how)
            elif failure:
                run.notes.append(f"{failure} (kept going: --allow-errors)")
            parts = split_request(cell.get("source", "")) if cell.cell_type == "code" else None
            plan = find_plan(cell.get("outputs")) if parts is not None else None
            if plan is not None:
                produced.update(_write_plan(run, nb, index, plan))
            elif parts is not None:
                record = find_record(cell.get("outputs"))
                if record is None:
                    run.failed_requests.append(f"cell {index + 1}: no codeflow result")
                else:
                    asked = repr(str(record.get("request", ""))[:60])
                    if review_state(record) == "pending":
                        run.notes.append(
                            f"cell {index + 1}: {asked} is awaiting review (its code is in "
                            "the cell below, not run)"
                        )
                    elif not record.get("success"):
                        run.failed_requests.append(f"cell {index + 1}: {asked} failed")
                    mode = writeback_mode(parts[0])
                    linked = find_linked_cell(nb, str(cell.get("id")))
                    if (
                        mode == "below"
                        and writes_code(record)
                        and linked is not None
                        and is_edited(nb.cells[linked])
                    ):
                        run.notes.append(
                            f"cell {index + 1}: the code cell below it was edited by hand; "
                            "kept as it is, the new code went below it"
                        )
                    new_id = apply_writeback(nb, index, record, mode=mode)
                    if new_id and new_id != str(cell.get("id")):
                        produced.add(new_id)
            index += 1
            _advance(progress, len(nb.cells))
    except DeadKernelError:
        # nbclient reports a cancelled cell as a dead kernel; after a stop signal it is neither
        if run.stopped_by is None:
            run.errors.append(f"the kernel died while running cell {index + 1}")
    finally:
        run.stopped_at = index
        store_widget_state(client, nb)
        stopping = asyncio.ensure_future(
            _stop_kernel(client, km, interrupt=run.stopped_by is not None)
        )
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping  # a stop signal during the shutdown: finish it, then stop
            raise
        finally:
            log.close()


def _write_plan(run: NotebookRun, nb: Any, index: int, plan: dict[str, Any]) -> list[str]:
    """A `--steps` request: its steps into cells below it, each with its own outputs; the
    request cell keeps only the plan (the step outputs would show twice)."""
    from .models import PLAN_MIME
    from .notebook import apply_plan

    cell = nb.cells[index]
    cell["outputs"] = [o for o in cell.get("outputs", ()) if PLAN_MIME in o.get("data", {})]
    asked = repr(str(plan.get("request", ""))[:60])
    if not plan.get("success"):
        failed = [s for s in plan.get("steps", ()) if s.get("state") == "failed"]
        why = (
            f"step {failed[0].get('number')} ({failed[0].get('title', '')}) failed"
            if failed
            else str(plan.get("error") or plan.get("stop_reason", "failed"))
        )
        run.failed_requests.append(f"cell {index + 1}: {asked}: {why}")
    return apply_plan(nb, index, plan)


async def _capture_fd_output(kc: Any) -> None:
    """Output written to fds 1 and 2 (`os.system`, `subprocess`, C code) becomes the cell's
    stream output, in order with `print`, as on every backend of `codeflow ask`."""
    from .executors.snippets import fd_capture_snippet

    msg_id = kc.execute(fd_capture_snippet(), silent=True, store_history=False)
    try:
        await asyncio.wait_for(_reply_to(kc, msg_id), FD_CAPTURE_WAIT_S)
    except asyncio.TimeoutError:
        pass  # a kernel too slow to answer still runs the cells; only fd output is affected


async def _reply_to(kc: Any, msg_id: str) -> None:
    while True:
        reply = await kc.get_shell_msg()
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            return


FD_CAPTURE_WAIT_S = 10.0


def _interrupted(index: int, cell_timeout: float | None) -> str:
    return f"cell {index + 1} ran past --cell-timeout {cell_timeout or 0:g} s and was interrupted"


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def store_widget_state(client: Any, nb: Any) -> None:
    """Save the state of the widgets this run made, with nbclient's `set_widgets_metadata`.

    nbclient keeps the input's state when a run makes no widgets; here it is dropped first,
    since it describes models of an earlier session that no output of this run refers to."""
    widgets = nb.metadata.get("widgets")
    if isinstance(widgets, dict):
        widgets.pop(WIDGET_STATE_MIME, None)
        if not widgets:
            del nb.metadata["widgets"]
    client.set_widgets_metadata()


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _advance(progress: Any, total: int) -> None:
    if progress is not None:
        progress.total = total
        progress.update(1)


async def _stop_kernel(client: Any, km: Any, *, interrupt: bool) -> None:
    """Interrupt a stopped run's cell (the magic cancels its request), then shut down: a
    shutdown request first, SIGKILL to the kernel's process group if it does not exit."""
    try:
        if km.has_kernel:
            if interrupt:
                with contextlib.suppress(Exception):
                    await km.interrupt_kernel()
            try:
                await km.shutdown_kernel(now=False)
            except Exception:
                with contextlib.suppress(Exception):
                    await km.shutdown_kernel(now=True)
    finally:
        # The client stays attached: nbclient's kernel-alive poller of a cell cut short by the
        # stop may still wake up, and must find a dead kernel, not a missing client.
        if client.kc is not None:
            client.kc.stop_channels()


_CELL_LINE = re.compile(r"Cell In\s*\[\d*\],\s*line (\d+)")


def cell_failure(index: int, cell: Any, exc: Any) -> str:
    """One paragraph for a cell that raised: which cell, which error, which line."""
    from .text import strip_ansi

    ename = str(getattr(exc, "ename", "") or type(exc).__name__)
    evalue = strip_ansi(str(getattr(exc, "evalue", "") or "")).strip()
    return _failure_text(index, cell, ename, evalue, str(getattr(exc, "traceback", "") or ""))


def _cell_error(index: int, cell: Any) -> str | None:
    for out in cell.get("outputs", ()):
        if out.get("output_type") == "error":
            tb = "\n".join(out.get("traceback", ()))
            return _failure_text(
                index, cell, str(out.get("ename", "")), str(out.get("evalue", "")), tb
            )
    return None


def _failure_text(index: int, cell: Any, ename: str, evalue: str, traceback: str) -> str:
    from .text import strip_ansi

    first = evalue.splitlines()[0][:300] if evalue else ""
    text = f"cell {index + 1} raised {ename}" + (f": {first}" if first else "")
    lines = [m.group(1) for m in _CELL_LINE.finditer(strip_ansi(traceback))]
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    if lines:
        number = int(lines[-1])
        rows = source.splitlines()
        if 1 <= number <= len(rows):
            text += f" (line {number}: {rows[number - 1].strip()[:120]})"
    return text


# -- the command ----------------------------------------------------------------------------
