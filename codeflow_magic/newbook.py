"""`codeflow new REQUEST -o analysis.ipynb`: a whole executed notebook from one request.

The notebook is ordinary: a title, the request, `%load_ext codeflow_magic` and one
`%%codeflow --steps` cell. `codeflow run` executes it in place, so the plan's steps land below
the request with their outputs, and a later `CODEFLOW_CACHE=replay codeflow run` re-runs it
from the recorded answers, identically.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .errors import UsageError
from .models import DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, steps_count

TITLE_CHARS = 80


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
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE",
        help="a data file the request uses (repeat for several); the model sees a preview",
    )
    p.add_argument("-o", "--output", required=True, help="the notebook to write (NAME.ipynb)")
    p.add_argument("--report", help="also write a report: FILE.html or FILE.md")
    p.add_argument(
        "--max-steps",
        type=steps_count,
        help=f"at most this many steps (default {DEFAULT_MAX_STEPS}, 1 to {MAX_STEPS_LIMIT})",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output notebook")
    p.add_argument(
        "--cache-mode", choices=["rw", "replay", "off"], help="recorded-response cache mode"
    )
    p.add_argument("--kernel", dest="kernel_name", help="kernel name (default python3)")
    p.add_argument(
        "items",
        nargs="*",
        metavar="KEY=VALUE",
        help="settings such as improvement.max_attempts=5",
    )
    p.set_defaults(func=new_command)


def skeleton(request: str, data: list[str], max_steps: int | None) -> Any:
    """The notebook before it runs (nbformat 4.5, a python3 kernel)."""
    import nbformat

    title = request.strip().splitlines()[0][:TITLE_CHARS].rstrip(" .")
    title = title[:1].upper() + title[1:]
    intro = [f"# {title}", "", request.strip()]
    body = request.strip()
    if data:
        listed = ", ".join(f"`{d}`" for d in data)
        intro += ["", f"Data: {listed}"]
        body += "\n\nData files: " + ", ".join(data)
    options = " --steps" + (f" --max-steps {max_steps}" if max_steps else "")
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("\n".join(intro)),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell("%load_ext codeflow_magic"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(f"%%codeflow{options}\n{body}"),  # type: ignore[no-untyped-call]
    ]
    return nb


def new_command(args: argparse.Namespace) -> int:
    """Check everything first (nothing is written on bad input), write, then run in place."""
    import nbformat

    from .config import check_request, load_settings
    from .nbfiles import write_atomic
    from .runner import REPORT_SUFFIXES, run_command

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
