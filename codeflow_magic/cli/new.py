"""`codeflow new REQUEST -o analysis.ipynb`: write the notebook (`newbook`), then run it in
place as `codeflow run --inplace` would."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..options import add_options


def register(sub: Any) -> None:
    p = sub.add_parser(
        "new",
        help="write and run a notebook that does REQUEST, step by step",
        description=(
            "Create a notebook for REQUEST (a title, the request, one %%%%codeflow --steps "
            "cell), run it with `codeflow run` so that each step of the plan becomes a "
            "markdown and a code cell with its outputs, and save it (and a report). Re-run it "
            "offline with CODEFLOW_CACHE=replay codeflow run NOTEBOOK. Exit status as for "
            "`codeflow run`: 0 every step worked, 1 a step failed, 2 bad input."
        ),
    )
    p.add_argument("request", metavar="REQUEST", help="what the notebook should do")
    add_options(
        p, ("data", "new.output", "report", "max_steps", "force", "cache_mode", "run.kernel")
    )
    p.add_argument(
        "items",
        nargs="*",
        metavar="KEY=VALUE",
        help="settings such as improvement.max_attempts=5",
    )
    p.set_defaults(func=new_command)


def new_command(args: argparse.Namespace) -> int:
    """Check everything first (nothing is written on bad input), write, then run in place."""
    import nbformat

    from ..config import check_request, load_settings
    from ..nbfiles import write_atomic
    from ..newbook import skeleton
    from ..runner import REPORT_SUFFIXES
    from .run import run_command

    overrides = list(args.items)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"unexpected argument {item!r}; settings are KEY=VALUE")
    settings = load_settings(overrides)  # a typo is a usage error now, not a failed kernel
    request = check_request(args.request, limit=settings.generation.max_request_chars)
    output = Path(args.output)
    if output.suffix != ".ipynb":
        raise UsageError(f"-o {output}: name the notebook NAME.ipynb")
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; choose another name or pass --force to replace it")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: the folder {output.parent} does not exist")
    if args.report and Path(args.report).suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--report {args.report}: name it FILE.html or FILE.md")
    folder = output.parent.resolve()
    data: list[str] = []
    for item in args.data:
        path = Path(item)
        if not path.is_file():
            raise UsageError(f"--data {item}: no such file")
        data.append(os.path.relpath(path.resolve(), folder))
    text = nbformat.writes(skeleton(request, data, args.max_steps))  # type: ignore[no-untyped-call]
    write_atomic(output, text)
    run = argparse.Namespace(
        items=[str(output), *overrides],
        output=None,
        report=args.report,
        inplace=True,
        allow_errors=False,
        wait=False,
        timeout=None,
        cell_timeout=None,
        cache_mode=args.cache_mode,
        kernel_name=args.kernel_name,
        review=False,
    )
    return run_command(run)
