"""`codeflow run NOTEBOOK...`: execute notebooks headless, write the code back, report.

Each notebook runs top to bottom in one kernel (nbclient) whose working directory is the
notebook's folder, so the recorded-response cache beside the notebook is used and a committed
notebook re-runs offline. After each `%%codeflow` cell the runner applies the write-back itself
(headless clients ignore `set_next_input`): the linked code cell below is inserted or updated
from the run record in the cell's outputs, and is then skipped, since its code just ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError, UsageError

EXIT_OK, EXIT_FAILED = 0, 1
REPORT_SUFFIXES = (".html", ".htm", ".md")


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    source: Path
    output: Path | None = None
    nb: Any = None
    errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_requests


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="execute notebooks with their %%%%codeflow cells, write the code back, report",
        description=(
            "Execute each notebook in a fresh kernel (cwd = the notebook's folder), write the "
            "final code of every %%%%codeflow cell into the linked cell below it, save the "
            "executed notebook (default NAME.out.ipynb beside it) and optionally a report."
        ),
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="NOTEBOOK|KEY=VALUE",
        help="notebooks to run, and settings such as improvement.max_attempts=5",
    )
    p.add_argument("-o", "--output", help="output notebook (one input) or folder (several)")
    p.add_argument("--report", help="write a report: FILE.html (self-contained) or FILE.md")
    p.add_argument("--inplace", action="store_true", help="overwrite the input notebooks")
    p.add_argument(
        "--allow-errors", action="store_true", help="keep going after a cell raises an error"
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (default none)")
    p.add_argument(
        "--cache-mode", choices=["rw", "replay", "off"], help="recorded-response cache mode"
    )
    p.add_argument("--kernel", dest="kernel_name", help="kernel name (default: the notebook's)")
    p.set_defaults(func=run_command)


def split_items(items: list[str]) -> tuple[list[Path], list[str]]:
    """Notebook paths and `key=value` overrides, in the order given."""
    paths: list[Path] = []
    overrides: list[str] = []
    for item in items:
        if "=" in item and not item.endswith(".ipynb") and not Path(item).exists():
            overrides.append(item)
        else:
            paths.append(Path(item))
    if not paths:
        raise UsageError("no notebook given; usage: codeflow run NOTEBOOK.ipynb [...]")
    return paths, overrides


def read_notebook(path: Path) -> Any:
    """Read and validate a notebook, or raise UsageError with one clear line."""
    import nbformat

    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a notebook")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not a notebook (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise UsageError(f"{path}: not a notebook (no cells / nbformat fields)")
    try:
        nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a valid notebook ({first})") from None
    return nb


def output_path(source: Path, output: str | None, inplace: bool, many: bool) -> Path:
    if inplace:
        return source
    if output:
        out = Path(output)
        if many or out.is_dir() or not out.suffix:
            return out / source.name.replace(".ipynb", ".out.ipynb")
        return out
    return (
        source.with_name(source.name[: -len(".ipynb")] + ".out.ipynb")
        if source.name.endswith(".ipynb")
        else source.with_name(source.name + ".out.ipynb")
    )


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and `os.replace`: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writeback_mode(magic_args: str) -> str:
    words = magic_args.split()
    if "--no-writeback" in words:
        return "off"
    if "--replace" in words:
        return "replace"
    return "below"


def kernel_env(nb_path: Path, cache_mode: str | None, overrides: list[str]) -> dict[str, str]:
    """The kernel's environment: ours (the magic inside needs the provider's key), plus how the
    magic finds the notebook's cache and the command line's settings."""
    from .magic import OVERRIDES_ENV

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
) -> None:
    """Run every cell; apply write-back after each request cell; skip just-written cells."""
    nb = run.nb
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or "python3"
    with tempfile.TemporaryDirectory(
        prefix="codeflow-", dir=_socket_dir(), ignore_cleanup_errors=True
    ) as folder:
        await _execute_cells(
            run,
            name=name,
            connection_file=Path(folder) / "kernel.json",
            timeout=timeout,
            allow_errors=allow_errors,
            env=env,
            progress=progress,
        )


def _socket_dir() -> str | None:
    """A short parent folder for the kernel's sockets (a Unix socket path has ~107 bytes)."""
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None


async def _execute_cells(
    run: NotebookRun,
    *,
    name: str,
    connection_file: Path,
    timeout: float | None,
    allow_errors: bool,
    env: dict[str, str],
    progress: Any,
) -> None:
    """The kernel talks over IPC sockets beside `connection_file`: local Unix sockets, so no
    plain-text TCP port is opened (and ipykernel prints no warning about one)."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    from .notebook import apply_writeback, ensure_cell_ids, find_record, split_request

    nb = run.nb
    ensure_cell_ids(nb)
    km = AsyncKernelManager(kernel_name=name, transport="ipc", connection_file=str(connection_file))
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name=name,
        allow_errors=allow_errors,
        record_timing=False,
        resources={"metadata": {"path": str(run.source.parent.resolve())}},
    )
    produced: set[str] = set()
    try:
        # The kernel's cwd is the notebook's folder (nbclient passes resources' path as cwd);
        # cleanup_kc: we made the manager, so nbclient would otherwise leave the kernel running.
        async with client.async_setup_kernel(env=env, cleanup_kc=True):
            assert client.kc is not None
            msg_id = client.kc.kernel_info()
            info = await client.async_wait_for_reply(msg_id)
            if info is not None and "language_info" in info.get("content", {}):
                nb.metadata["language_info"] = info["content"]["language_info"]
            index = 0
            while index < len(nb.cells):
                cell = nb.cells[index]
                if str(cell.get("id")) in produced:
                    index += 1
                    if progress is not None:
                        progress.total = len(nb.cells)
                        progress.update(1)
                    continue
                try:
                    await client.async_execute_cell(
                        cell, index, execution_count=client.code_cells_executed + 1
                    )
                except CellExecutionError as exc:
                    run.errors.append(f"cell {index + 1} failed:\n{_short(str(exc))}")
                    return
                parts = split_request(cell.get("source", "")) if cell.cell_type == "code" else None
                if parts is not None:
                    record = find_record(cell.get("outputs"))
                    if record is None:
                        run.failed_requests.append(f"cell {index + 1}: no codeflow result")
                    else:
                        if not record.get("success"):
                            run.failed_requests.append(
                                f"cell {index + 1}: {str(record.get('request', ''))[:60]!r} failed"
                            )
                        new_id = apply_writeback(nb, index, record, mode=writeback_mode(parts[0]))
                        if new_id and new_id != str(cell.get("id")):
                            produced.add(new_id)
                if progress is not None:
                    progress.total = len(nb.cells)
                    progress.update(1)
                index += 1
    except DeadKernelError as exc:
        run.errors.append(f"the kernel died: {exc}")
    except RuntimeError as exc:
        if "Kernel" in str(exc) or "kernel" in str(exc):
            raise BackendError(f"{run.source}: could not start the kernel: {exc}") from None
        raise


def _short(text: str, lines: int = 30) -> str:
    from .report import strip_ansi

    rows = strip_ansi(text).strip().splitlines()
    return "\n".join(rows[-lines:])


def run_command(args: argparse.Namespace) -> int:
    import nbformat
    from tqdm import tqdm

    from .report import notebook_report_html, notebook_report_markdown, summarize

    paths, overrides = split_items(list(args.items))
    if overrides:
        from .config import load_settings

        load_settings(overrides)  # validate now: a typo is a usage error, not a kernel error
    if args.inplace and args.output:
        raise UsageError("give either --inplace or -o/--output, not both")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be greater than 0")
    report = Path(args.report) if args.report else None
    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--report {report}: name it FILE.html or FILE.md")
    runs = [NotebookRun(source=p, nb=read_notebook(p)) for p in paths]
    many = len(runs) > 1
    for run in runs:
        run.output = output_path(run.source, args.output, args.inplace, many)
        if run.output.resolve() == run.source.resolve() and not args.inplace:
            raise UsageError(f"{run.source}: the output would overwrite the input; use --inplace")

    status = EXIT_OK
    for run in runs:
        with tqdm(
            total=len(run.nb.cells), desc=run.source.name, unit="cell", file=sys.stderr
        ) as bar:
            env = kernel_env(run.source, args.cache_mode, overrides)
            asyncio.run(
                execute_notebook(
                    run,
                    timeout=args.timeout,
                    allow_errors=args.allow_errors,
                    kernel_name=args.kernel_name,
                    env=env,
                    progress=bar,
                )
            )
        for err in run.errors:
            print(f"codeflow: {run.source}: {err}", file=sys.stderr)
            status = EXIT_FAILED
        if run.errors:
            print(f"codeflow: {run.source}: not written (a cell failed)", file=sys.stderr)
            run.output = None
            continue
        for failed in run.failed_requests:
            print(f"codeflow: {run.source}: {failed}", file=sys.stderr)
            if not args.allow_errors:
                status = EXIT_FAILED
        assert run.output is not None
        write_atomic(run.output, nbformat.writes(run.nb))  # type: ignore[no-untyped-call]
        print(f"wrote {run.output}", file=sys.stderr)

    if report is not None:
        summaries = [
            summarize(run.nb, run.source.name, run.errors) for run in runs if run.nb is not None
        ]
        title = "codeflow run: " + ", ".join(r.source.name for r in runs)
        if report.suffix.lower() == ".md":
            text = notebook_report_markdown(summaries, title)
        else:
            text = notebook_report_html(summaries, title)
        write_atomic(report, text)
        print(f"report: {report}", file=sys.stderr)
    return status
