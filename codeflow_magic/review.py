"""Review, approval and undo in a notebook session: which earlier run a command means, and
what the user reads about it.

Pure: the magic keeps the session's runs and does the I/O; this module only chooses and words.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .models import RunRecord

DIFF_LINES = 80
"""Lines of the diff against the previous code shown under code awaiting review."""


@dataclass(frozen=True)
class Origin:
    """Where a run came from, so that `approve` and `undo` can act on it later."""

    request: str
    line: str
    cell_id: str | None
    flow: Any


def parse_target(words: Sequence[str], command: str) -> tuple[int | None, str | None]:
    """`[N] [--cell ID]` → (N, cell id); a usage error names the command's form."""
    form = f"%codeflow {command} [N] [--cell ID]"
    number: int | None = None
    cell: str | None = None
    items = list(words)
    while items:
        word = items.pop(0)
        if word == "--cell":
            if not items:
                raise UsageError(f"--cell needs a cell id; use {form}")
            cell = items.pop(0)
        elif word.startswith("--cell="):
            cell = word.split("=", 1)[1]
        elif word.isdigit() and number is None and int(word) >= 1:
            number = int(word)
        else:
            raise UsageError(f"{command} takes a run number (as history shows it); use {form}")
    return number, cell


def split_words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the options: {exc}") from None


def pick(
    history: Sequence[RunRecord],
    origins: Mapping[str, Origin],
    closed: Collection[str],
    *,
    number: int | None,
    cell: str | None,
    want: str,
) -> tuple[int, RunRecord]:
    """The run a command means: number N of `%codeflow history`, the last one of a cell, or
    the last one it can apply to. `want` is `approve` or `undo`."""

    def fits(record: RunRecord) -> bool:
        if record.run_id in closed:
            return False
        if want == "approve":
            return record.stop_reason == "awaiting_review"
        return bool(record.undo_key)

    what = "code awaiting review" if want == "approve" else "a run to undo"
    if number is not None:
        if number > len(history):
            raise UsageError(f"there is no run {number}: this session has {len(history)}")
        record = history[number - 1]
        if not fits(record):
            raise UsageError(f"run {number} is not {what}{_why(record, want, closed)}")
        return number, record
    for index in range(len(history) - 1, -1, -1):
        record = history[index]
        origin = origins.get(record.run_id)
        if cell is not None and (origin is None or origin.cell_id != cell):
            continue
        if fits(record):
            return index + 1, record
        if cell is not None:  # only the cell's latest run counts
            break
    where = f" for cell {cell}" if cell else " in this session"
    raise UsageError(f"there is no {what}{where}")


def _why(record: RunRecord, want: str, closed: Collection[str]) -> str:
    if record.run_id in closed:
        return " (it was already approved, discarded or undone)"
    if want == "undo" and not record.success:
        return " (it did not succeed, so it changed nothing that stays)"
    if want == "undo":
        return " (its snapshot is gone: rollback was off or the kernel could not take one)"
    return ""


def previous_code(
    history: Sequence[RunRecord], origins: Mapping[str, Origin], cell_id: str | None, upto: int
) -> str | None:
    """The last working code of the same cell before run `upto` (what the diff compares to)."""
    if not cell_id:
        return None
    for record in reversed(history[: upto - 1]):
        origin = origins.get(record.run_id)
        if origin is not None and origin.cell_id == cell_id and record.success:
            return record.final_code
    return None


def review_text(record: RunRecord, previous: str | None, number: int) -> str:
    """What the user reads under code held for review: the code, the findings, the diff."""
    lines = [f"codeflow: awaiting review (run {number}); nothing ran.", "", record.final_code]
    findings = [f for a in record.attempts for f in a.findings]
    if findings:
        lines += ["", "Scanner findings:"]
        lines += [
            f"  {f.severity} {f.rule}" + (f" line {f.line}" if f.line else "") + f": {f.message}"
            for f in findings
        ]
    if previous is not None and previous.strip() != record.final_code.strip():
        diff = list(
            difflib.unified_diff(
                previous.splitlines(),
                record.final_code.splitlines(),
                "current code",
                "proposed code",
                lineterm="",
            )
        )
        if diff:
            lines += ["", "Changes against the current code:", *diff[:DIFF_LINES]]
            if len(diff) > DIFF_LINES:
                lines.append(f"... ({len(diff) - DIFF_LINES} more lines)")
    lines += [
        "",
        f"Run it with %codeflow approve {number} (or Run in the codeflow sidebar); "
        "discard it by running the request again or with Discard in the sidebar.",
    ]
    return "\n".join(lines)


def undo_text(answer: Mapping[str, Any], number: int) -> str:
    """One short report of what an undo put back."""
    if not answer.get("ok"):
        return f"codeflow: cannot undo run {number}: {answer.get('message', 'no answer')}"
    parts = []
    restored = list(answer.get("restored", ()))
    removed = list(answer.get("removed", ()))
    kept = list(answer.get("kept", ()))
    if restored:
        parts.append("restored " + ", ".join(restored))
    if removed:
        parts.append("removed " + ", ".join(removed))
    text = f"codeflow: undid run {number}: " + ("; ".join(parts) or "no variable had changed")
    if kept:
        text += "\n  left as they are: " + "; ".join(kept)
    return text
