# IPython's display helpers carry no type hints.
# mypy: disable-error-code="no-untyped-call"
"""What a `%%codeflow` cell shows: the final outputs as a plain cell shows them, the run
record after them, and the text of `%codeflow status` and `%codeflow history`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import CodeFlowError
from .models import RunRecord


def clear() -> None:
    from IPython.display import clear_output

    clear_output(wait=True)


def show_outputs(record: RunRecord) -> None:
    """The final attempt's outputs, as the same code in a plain cell would show them."""
    from IPython.core.display_functions import publish_display_data

    for warning in record.warnings:
        sys.stderr.write(f"codeflow: warning: {warning}\n")
    for out in record.outputs:
        kind = out.get("output_type")
        if kind == "stream":
            stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
            # No flush: publishing the next display flushes both streams first (ipykernel),
            # and each flush waits for the kernel's I/O thread.
            stream.write("".join(out.get("text", "")))
        elif kind in ("display_data", "execute_result"):
            publish_display_data(data=dict(out.get("data", {})), metadata=out.get("metadata"))
        elif kind == "error":
            text = "\n".join(out.get("traceback", ())) or f"{out.get('ename')}: {out.get('evalue')}"
            sys.stderr.write(text + "\n")


def show(record: RunRecord) -> None:
    """Final outputs as a plain cell shows them, then the record.

    The record bundle carries the status line itself (rendered by the extension, or in its
    HTML/text fallbacks), so no separate status output is published: it would show twice.
    """
    from IPython.core.display_functions import publish_display_data

    from .report import record_bundle

    show_outputs(record)
    publish_display_data(data=record_bundle(record))


def status_text(
    settings: Any,
    backend: str,
    cache_dir: Path,
    running: int,
    history: Sequence[RunRecord],
    connected: bool,
) -> str:
    """`%codeflow status`: where and how requests run, and what this session spent."""
    from .providers import resolve_cache_mode
    from .report import dollars

    mode = resolve_cache_mode(None, settings.cache.mode)
    kernel = "this notebook's shell" if backend == "inline" else settings.execution.kernel_name
    tokens = sum(r.metrics.input_tokens + r.metrics.output_tokens for r in history)
    return "\n".join(
        [
            f"backend:   {backend}",
            f"model:     {settings.model}",
            f"cache:     {cache_dir} ({mode})",
            f"kernel:    {kernel}",
            f"executors: {running} started",
            f"runs:      {len(history)} in this session",
            f"cost:      {dollars(sum(r.metrics.cost_usd for r in history))} "
            f"in this session ({tokens:,} tokens)",
            f"frontend:  {'connected' if connected else 'not connected'}",
        ]
    )


def history_text(history: Sequence[RunRecord], closed: set[str], words: list[str]) -> str:
    """`%codeflow history [N]`: the last N runs, numbered as approve and undo take them."""
    try:
        count = int(words[0]) if words else 10
    except ValueError:
        raise CodeFlowError(f"history takes a number of runs, not {words[0]!r}") from None
    if count < 1:
        raise CodeFlowError("history takes a number of runs of at least 1")
    if not history:
        return "no codeflow runs in this session yet"
    from .report import status_line

    lines = []
    start = max(0, len(history) - count)
    for index, record in enumerate(history[start:], start=start + 1):
        first = record.request.splitlines()[0][:70] if record.request else ""
        status = status_line(record)
        for emoji, mark in (("✅", "✓"), ("❌", "✗")):  # no emoji font needed
            status = status.replace(emoji, mark)
        if record.run_id in closed and record.undo_key:
            status += " · undone"
        lines.append(f"{index}. {first}\n   {status}")
    return "\n".join(lines)
