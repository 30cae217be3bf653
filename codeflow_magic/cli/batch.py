"""`codeflow batch FILE`: many requests over a pool of kernels (`batch` does the work); the
records print in input order as each is done."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..batch import BatchItem, arun_batch, parse_batch
from ..config import decode_utf8, read_text_file
from ..errors import EXIT_FAILED, EXIT_OK, EXIT_PROVIDER, EXIT_UNAVAILABLE
from ..models import RunRecord
from ..options import FLOW_OPTIONS, add_options
from .common import cache_mode_from_args, settings_from_args


class _OrderedPrinter:
    """Prints records in input order as soon as every earlier one is done."""

    def __init__(self, items: Sequence[BatchItem], fmt: str, bar: Any) -> None:
        self.pending: dict[int, str] = {}
        self.next = 0
        self.fmt = fmt
        self.bar = bar
        self.failed = 0
        self.held = 0
        self.provider_errors = 0
        self.hard_provider_errors = 0
        self.total = len(items)

    def __call__(self, item: BatchItem, record: RunRecord | None, error: str | None) -> None:
        from ..formats import render

        if error is not None:
            self.provider_errors += 1
            if record is None or record.stop_reason != "provider_unavailable":
                self.hard_provider_errors += 1
        if record is None:
            data: dict[str, Any] = {
                "index": item.index,
                "request": item.request,
                "success": False,
                "error": error,
            }
            text = (
                json.dumps(data) + "\n"
                if self.fmt == "json"
                else f"[{item.index}] error: {error}\n"
            )
        else:
            if record.stop_reason == "awaiting_review":
                self.held += 1  # nothing ran, by request: the code is the answer
            elif not record.success:
                self.failed += 1
            if self.fmt == "json":
                data = {
                    "index": item.index,
                    **({"id": item.id} if item.id is not None else {}),
                    **record.to_dict(),
                }
                text = json.dumps(data, ensure_ascii=False) + "\n"
            else:
                text = f"## [{item.index}] {item.request}\n\n" + render(record, self.fmt) + "\n"
        self.pending[item.index] = text
        while self.next in self.pending:
            sys.stdout.write(self.pending.pop(self.next))
            self.next += 1
        sys.stdout.flush()
        if self.bar is not None:
            self.bar.update(1)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..providers import preload_for

    settings = settings_from_args(args)
    preload_for(settings, cache_mode=cache_mode_from_args(args))  # before reading the input
    path: Path = args.file
    if str(path) == "-":
        source = "stdin"
        text = decode_utf8(sys.stdin.buffer.read(), source)
    else:
        source = str(path)
        text = read_text_file(path, "batch file")
    items = parse_batch(text, source, max_chars=settings.generation.max_request_chars)
    fmt = args.format or "json"
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(items), file=sys.stderr, desc="codeflow batch", unit="req", leave=True)
    printer = _OrderedPrinter(items, fmt, bar)
    try:
        asyncio.run(
            arun_batch(
                items,
                settings,
                parallel=args.parallel,
                work_dir=Path(settings.execution.work_dir or Path.cwd()),
                cache_mode=cache_mode_from_args(args),
                on_result=printer,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    if printer.held:
        print(
            f"codeflow: {printer.held} of {len(items)} request(s) awaiting review: their code "
            "is in the records, nothing of it ran",
            file=sys.stderr,
        )
    if printer.provider_errors:  # 3 needs a change by the user; 5 only time
        return EXIT_PROVIDER if printer.hard_provider_errors else EXIT_UNAVAILABLE
    return EXIT_FAILED if printer.failed else EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="run many requests over a pool of kernels",
        description="Requests one per line (or JSON lines with per-request options: language, "
        "check, max_attempts, focus, timeout, verify, id). Prints one JSON record per line.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="requests file ('-': stdin)")
    add_options(p, ("parallel", "batch.format", "quiet"), quiet={"help": "no progress bar"})
    add_options(p, FLOW_OPTIONS)
    p.set_defaults(func=cmd_batch)
