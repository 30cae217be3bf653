"""`codeflow run`: check the notebooks, take their locks, run each one (`runner`), save the
results and a report, and say what happened; exit statuses live here."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, UsageError
from ..nbfiles import (
    check_source,
    check_writable,
    notebook_locks,
    read_notebook,
    remove_stale_temps,
    write_atomic,
)
from ..options import add_options
from ..runner import (
    REPORT_SUFFIXES,
    NotebookRun,
    Stopped,
    execute_notebook,
    kernel_env,
    signal_name,
    stop_signals,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="execute notebooks with their %%%%codeflow cells, write the code back, report",
        description=(
            "Execute each notebook in a fresh kernel (cwd = the notebook's folder), write the "
            "final code of every %%codeflow cell into the linked cell below it, save the "
            "executed notebook with cell timings and widget state, as nbclient does (default "
            "NAME.out.ipynb beside it), and optionally a report. "
            "Exit status: 0 done, 1 a cell or request failed, 2 bad input, 6 another run "
            "holds the notebook, 130/143 stopped by SIGINT/SIGTERM."
        ),
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="NOTEBOOK|KEY=VALUE",
        help="notebooks to run, and settings such as improvement.max_attempts=5",
    )
    add_options(
        p,
        ("output", "report", "inplace", "allow_errors", "wait", "run.timeout", "cell_timeout",
         "cache_mode", "run.review", "run.kernel"),
    )  # fmt: skip
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


def stop_status(signum: int) -> int:
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def run_command(args: argparse.Namespace) -> int:
    """Validate everything, take the locks, run each notebook, save, report."""
    with stop_signals():
        try:
            return _run_command(args)
        except Stopped as stop:
            print(
                f"codeflow: stopped by {signal_name(stop.signum)}; files already written stay, "
                "nothing else was written",
                file=sys.stderr,
            )
            return stop_status(stop.signum)


def _run_command(args: argparse.Namespace) -> int:
    paths, overrides = split_items(list(args.items))
    if getattr(args, "review", False):
        overrides.append("execution.review=always")
    if overrides:
        from ..config import load_settings

        load_settings(overrides)  # validate now: a typo is a usage error, not a kernel error
    if args.inplace and args.output:
        raise UsageError("give either --inplace or -o/--output, not both")
    report = Path(args.report) if args.report else None
    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--report {report}: name it FILE.html or FILE.md")
    for path in paths:
        check_source(path)
    many = len(paths) > 1
    runs = [NotebookRun(source=p) for p in paths]
    outputs: dict[Path, Path] = {}
    for run in runs:
        run.output = output_path(run.source, args.output, args.inplace, many)
        if run.output.resolve() == run.source.resolve() and not args.inplace:
            raise UsageError(f"{run.source}: the output would overwrite the input; use --inplace")
        other = outputs.setdefault(run.output.resolve(), run.source)
        if other != run.source:
            raise UsageError(
                f"{other} and {run.source} would both be written to {run.output}; "
                "give them different names or folders"
            )
        check_writable(run.output)
    if report is not None:
        check_writable(report, "report")
    locked = {r.source: r.source for r in runs}
    locked.update({r.output: r.source for r in runs if r.output is not None})
    with notebook_locks(locked, wait=args.wait):
        for run in runs:
            run.nb = read_notebook(run.source)
        return _run_all(runs, args, overrides, report)


def _run_all(
    runs: list[NotebookRun], args: argparse.Namespace, overrides: list[str], report: Path | None
) -> int:
    from tqdm import tqdm

    status = EXIT_OK
    stopped: NotebookRun | None = None
    for run in runs:
        assert run.output is not None
        remove_stale_temps(run.output)
        with tqdm(
            total=len(run.nb.cells), desc=run.source.name, unit="cell", file=sys.stderr
        ) as bar:
            env = kernel_env(run.source, args.cache_mode, overrides)
            asyncio.run(
                execute_notebook(
                    run,
                    timeout=args.timeout,
                    cell_timeout=args.cell_timeout,
                    allow_errors=args.allow_errors,
                    kernel_name=args.kernel_name,
                    env=env,
                    progress=bar,
                )
            )
        if run.stopped_by is not None:
            _save_stopped(run, args.inplace)
            stopped = run
            break
        for note in run.notes:
            print(f"codeflow: {run.source}: {note}", file=sys.stderr)
        if run.errors and run.not_run_from is not None:
            status = EXIT_FAILED
            _save_timed_out(run, args.inplace, args.allow_errors)
            continue
        if run.errors:
            status = EXIT_FAILED
            hint = "" if args.allow_errors else "; add --allow-errors to run past failing cells"
            for err in run.errors:
                print(f"codeflow: {run.source}: {err}; nothing written{hint}", file=sys.stderr)
            run.output = None
            continue
        for failed in run.failed_requests:
            print(f"codeflow: {run.source}: {failed}", file=sys.stderr)
            if not args.allow_errors:
                status = EXIT_FAILED
        _save(run)
        print(f"wrote {run.output}", file=sys.stderr)

    if report is not None:
        _write_report(runs, report)
    if stopped is not None:
        assert stopped.stopped_by is not None
        return stop_status(stopped.stopped_by)
    return status


def _save(run: NotebookRun) -> None:
    import nbformat

    from ..notebook import mark_finished

    assert run.output is not None
    mark_finished(run.nb)
    write_atomic(run.output, nbformat.writes(run.nb))  # type: ignore[no-untyped-call]


def _save_stopped(run: NotebookRun, inplace: bool) -> None:
    """Save what a stopped run finished (not over the input), and say so in one line."""
    import nbformat

    from ..notebook import mark_not_run

    assert run.stopped_by is not None
    name = signal_name(run.stopped_by)
    total = len(run.nb.cells)
    where = (
        f"during cell {run.stopped_at + 1} of {total}"
        if run.stopped_at < total
        else "after the last cell"
    )
    if inplace:
        run.output = None
        print(
            f"codeflow: {run.source}: stopped by {name} {where}; the notebook is unchanged "
            "(--inplace saves only a finished run)",
            file=sys.stderr,
        )
        return
    assert run.output is not None
    not_run = mark_not_run(run.nb, run.stopped_at, f"stopped by {name}")
    write_atomic(run.output, nbformat.writes(run.nb))  # type: ignore[no-untyped-call]
    print(
        f"codeflow: {run.source}: stopped by {name} {where}; wrote {run.output} with the "
        f"finished cells ({len(not_run)} code cell(s) marked not run)",
        file=sys.stderr,
    )


def _save_timed_out(run: NotebookRun, inplace: bool, allow_errors: bool) -> None:
    """Save the cells a run stopped by `--cell-timeout` ran (not over the input: `--inplace`
    saves only a finished run), the rest marked not run, and say so."""
    import nbformat

    from ..notebook import mark_not_run

    assert run.not_run_from is not None
    # --allow-errors helps only when the interrupted cell stopped (it then ends before
    # `not_run_from`); a cell that ignored the interrupt ends any run
    stopped = run.not_run_from > run.stopped_at
    hint = "" if allow_errors or not stopped else "; add --allow-errors to run the cells after it"
    for err in run.errors:
        print(f"codeflow: {run.source}: {err}{hint}", file=sys.stderr)
    if inplace:
        run.output = None
        print(
            f"codeflow: {run.source}: the notebook is unchanged (--inplace saves only a "
            "finished run)",
            file=sys.stderr,
        )
        return
    assert run.output is not None
    reason = run.errors[0] if run.errors else "a cell ran past --cell-timeout"
    not_run = mark_not_run(run.nb, run.not_run_from, reason)
    write_atomic(run.output, nbformat.writes(run.nb))  # type: ignore[no-untyped-call]
    print(
        f"codeflow: {run.source}: wrote {run.output} with the cells that ran "
        f"({len(not_run)} code cell(s) marked not run)",
        file=sys.stderr,
    )


def _write_report(runs: list[NotebookRun], report: Path) -> None:
    from ..report import notebook_report_html, notebook_report_markdown, summarize

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
