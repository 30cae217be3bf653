"""`codeflow eval TASKS`: score codeflow on a task file (`evaluation` does the work)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import read_text_file
from ..errors import UsageError
from ..evaluation import arun_eval, load_tasks, render_compare, render_table, summarize
from ..options import FLOW_OPTIONS, add_options
from .common import cache_mode_from_args, settings_from_args


def cmd_eval(args: argparse.Namespace) -> int:
    if args.compare:
        first, second = (json.loads(read_text_file(p, "eval result")) for p in args.compare)
        print(render_compare(first, second, (args.compare[0].name, args.compare[1].name)))
        return 0
    if args.tasks is None:
        raise UsageError("give a task file, or --compare A.json B.json")
    tasks_path: Path = args.tasks
    tasks = load_tasks(tasks_path, labels=args.labels, tables=args.tables)
    if not any(o.startswith("cache.dir=") for o in args.overrides):
        args.overrides = [
            *args.overrides,
            f"cache.dir={(tasks_path.parent / '.codeflow' / 'cache').resolve()}",
        ]
    settings = settings_from_args(args)
    base = Path(tempfile.mkdtemp(prefix="codeflow-eval-"))
    started = time.perf_counter()
    try:
        results = asyncio.run(
            arun_eval(
                tasks,
                settings,
                work_dir=base,
                parallel=args.parallel,
                cache_mode=cache_mode_from_args(args),
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary = summarize(results)
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    print(render_table(results, summary))
    if args.output:
        data = {
            "task_file": str(tasks_path),
            "model": settings.model,
            "settings": settings.as_dict(),
            "summary": summary,
            "tasks": [asdict(r) for r in results],
        }
        args.output.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return 0 if summary["solved"] == summary["tasks"] else 1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="score codeflow on a task file (pass@1, pass@k, attempts, tokens, time)",
        description="Run every task of a native JSON-lines task file (request, files, check or "
        "expected) or of an InfiAgent-DABench question file (with --labels and --tables), each "
        "in its own work dir over a pool of kernels, and print pass@1, pass@k, attempts per "
        "solved task, tokens and time. Recorded answers are read from .codeflow/cache beside "
        "the task file.",
    )
    p.add_argument("tasks", type=Path, nargs="?", metavar="TASKS", help="task file (JSON lines)")
    add_options(p, ("labels", "tables", "parallel", "eval.output", "compare"))
    add_options(p, FLOW_OPTIONS)
    p.set_defaults(func=cmd_eval)
