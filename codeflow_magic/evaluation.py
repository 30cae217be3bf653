"""`codeflow eval`: run a task file over the batch pool and score what came out.

Two task formats:

* native JSON lines: `{"id", "request", "files": [...], "check": "...", "expected": ...}`;
  `files` are copied (relative to the task file) into the task's own work dir, `check` is
  the acceptance check the run must pass, `expected` an answer the final output must hold
  (`@name[value]` closed forms, a `{"name": "value"}` object, or plain text to find);
* InfiAgent-DABench's: questions (`id`, `question`, `constraints`, `format`, `file_name`),
  a labels file (`id`, `common_answers: [[name, value], ...]`) and a tables folder.

Each task runs in its own folder of a fresh work dir. Closed-form answers are scored as the
benchmark's scorer does: every labelled name must be answered, numbers equal once rounded to
the label's decimals, text equal ignoring case and surrounding space. The summary has pass@1
(the first attempt was right), pass@k (right after the fixes), attempts per solved task,
tokens and time; `--compare` sets two saved runs side by side.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import read_text_file
from .errors import UsageError
from .models import Output, RunRecord
from .report import dollars
from .text import readable_texts

_CLOSED = re.compile(r"@(\w+)\[(.*?)\]")


@dataclass(frozen=True)
class Task:
    id: str
    request: str
    files: tuple[Path, ...] = ()
    check: str | None = None
    expected: dict[str, str] | str | None = None


@dataclass
class TaskResult:
    id: str
    pass1: bool
    passk: bool
    attempts: int
    tokens: int
    seconds: float
    stop_reason: str
    answers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    cost_usd: float = 0.0


# -- task files -------------------------------------------------------------------------------


def _json_lines(path: Path, what: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(read_text_file(path, what).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{lineno}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{lineno}: each line must be a JSON object")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no tasks found")
    return rows


def load_tasks(path: Path, *, labels: Path | None = None, tables: Path | None = None) -> list[Task]:
    """Tasks from a native or a DABench task file (told apart by their keys)."""
    rows = _json_lines(path, "task file")
    if "question" in rows[0] and "file_name" in rows[0]:
        return _dabench(rows, path, labels, tables)
    tasks: list[Task] = []
    for n, row in enumerate(rows, 1):
        request = row.get("request")
        if not isinstance(request, str) or not request.strip():
            raise UsageError(f'{path}: task {n} needs "request" as a string of plain words')
        files = row.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise UsageError(f'{path}: task {n}: "files" must be a list of paths')
        expected = row.get("expected")
        if isinstance(expected, Mapping):
            expected = {str(k): str(v) for k, v in expected.items()}
        elif expected is not None:
            expected = str(expected)
        check = row.get("check")
        if check is not None and not isinstance(check, str):
            raise UsageError(f'{path}: task {n}: "check" must be Python code')
        if check is None and expected is None:
            raise UsageError(f'{path}: task {n} needs "check" or "expected" to be scored')
        tasks.append(
            Task(
                id=str(row.get("id", n)),
                request=request,
                files=tuple(path.parent / f for f in files),
                check=check,
                expected=expected,
            )
        )
    return tasks


def _dabench(
    rows: list[dict[str, Any]], path: Path, labels: Path | None, tables: Path | None
) -> list[Task]:
    if labels is None or tables is None:
        raise UsageError(
            f"{path} is a DABench question file: give --labels FILE and --tables FOLDER"
        )
    answers = {
        str(row.get("id")): {str(n): str(v) for n, v in row.get("common_answers", [])}
        for row in _json_lines(labels, "labels file")
    }
    tasks = []
    for row in rows:
        qid = str(row.get("id"))
        if qid not in answers:
            continue
        name = str(row.get("file_name", ""))
        request = (
            f"{str(row.get('question', '')).strip()}\n\n"
            f"Constraints: {str(row.get('constraints', '')).strip()}\n\n"
            f"Use the file {name}. Print the answer in this format: "
            f"{str(row.get('format', '')).strip()}"
        )
        tasks.append(Task(qid, request, (tables / name,), None, answers[qid]))
    if not tasks:
        raise UsageError(f"{path}: no question has a label in {labels}")
    return tasks


# -- scoring ----------------------------------------------------------------------------------


def closed_form(text: str) -> dict[str, str]:
    """`@name[value]` answers in printed text (the last answer to a name counts)."""
    return {m.group(1): m.group(2).strip() for m in _CLOSED.finditer(text)}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def answer_matches(got: str, want: str) -> bool:
    """Equal as numbers once `got` is rounded to `want`'s decimals, else as words."""
    a, b = _number(got), _number(want)
    if a is not None and b is not None:
        decimals = len(want.strip().split(".")[1]) if "." in want else 0
        return round(a, decimals) == round(b, decimals) or abs(a - b) <= 1e-6
    return got.strip().lower() == want.strip().lower()


def output_text(outputs: Sequence[Output]) -> str:
    """The text a task's answer is looked for in: streams and plain-text results."""
    return "\n".join(text for _, text in readable_texts(outputs))


def scored(outputs: Sequence[Output], expected: dict[str, str] | str) -> bool:
    text = output_text(outputs)
    if isinstance(expected, str) and not _CLOSED.search(expected):
        return expected.strip() in text
    want = expected if isinstance(expected, dict) else closed_form(expected)
    got = closed_form(text)
    return bool(want) and all(
        name in got and answer_matches(got[name], value) for name, value in want.items()
    )


def score(task: Task, record: RunRecord | None, error: str | None = None) -> TaskResult:
    if record is None:
        return TaskResult(task.id, False, False, 0, 0, 0.0, "error", error=error)
    first = record.attempts[0] if record.attempts else None
    if task.expected is None:  # the check decides, and the flow ran it
        pass1 = first is not None and first.success
        passk = record.success
    else:
        pass1 = first is not None and first.error is None and scored(first.outputs, task.expected)
        passk = record.success and scored(record.outputs, task.expected)
    return TaskResult(
        id=task.id,
        pass1=pass1,
        passk=passk,
        attempts=len(record.attempts),
        tokens=record.metrics.input_tokens + record.metrics.output_tokens,
        seconds=record.metrics.total_s,
        stop_reason=record.stop_reason,
        answers=closed_form(output_text(record.outputs)),
        error=error or record.error,
        cost_usd=record.metrics.cost_usd,
    )


def summarize(results: Sequence[TaskResult]) -> dict[str, Any]:
    n = len(results)
    solved = [r for r in results if r.passk]
    return {
        "tasks": n,
        "pass@1": sum(r.pass1 for r in results) / n if n else 0.0,
        "pass@k": len(solved) / n if n else 0.0,
        "solved_first": sum(r.pass1 for r in results),
        "solved": len(solved),
        "attempts_per_solved": sum(r.attempts for r in solved) / len(solved) if solved else 0.0,
        "tokens": sum(r.tokens for r in results),
        "seconds": round(sum(r.seconds for r in results), 3),
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
    }


# -- rendering --------------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_table(results: Sequence[TaskResult], summary: Mapping[str, Any]) -> str:
    width = max([4, *(len(r.id) for r in results)])
    lines = [f"{'task':<{width}}  pass@1  pass@k  attempts  tokens    time     cost"]
    for r in results:
        lines.append(
            f"{r.id:<{width}}  {_yes(r.pass1):<6}  {_yes(r.passk):<6}  {r.attempts:>8}  "
            f"{r.tokens:>6,}  {r.seconds:>5.1f} s  {dollars(r.cost_usd):>7}"
        )
    lines.append(
        f"pass@1 {summary['solved_first']}/{summary['tasks']} ({summary['pass@1']:.1%})  "
        f"pass@k {summary['solved']}/{summary['tasks']} ({summary['pass@k']:.1%})  "
        f"attempts per solved task {summary['attempts_per_solved']:.2f}  "
        f"tokens {summary['tokens']:,}  time {summary['seconds']:.1f} s  "
        f"cost {dollars(summary.get('cost_usd', 0.0))}"
    )
    return "\n".join(lines)


def render_compare(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str]) -> str:
    """Two saved runs side by side: the summary, then the tasks whose outcome differs."""
    sa, sb = a["summary"], b["summary"]
    rows = [
        ("pass@1", f"{sa['pass@1']:.1%}", f"{sb['pass@1']:.1%}"),
        ("pass@k", f"{sa['pass@k']:.1%}", f"{sb['pass@k']:.1%}"),
        (
            "attempts per solved",
            f"{sa['attempts_per_solved']:.2f}",
            f"{sb['attempts_per_solved']:.2f}",
        ),
        ("tokens", f"{sa['tokens']:,}", f"{sb['tokens']:,}"),
        ("time", f"{sa['seconds']:.1f} s", f"{sb['seconds']:.1f} s"),
        ("cost", dollars(sa.get("cost_usd", 0.0)), dollars(sb.get("cost_usd", 0.0))),
    ]
    wa, wb = max(len(names[0]), 10), max(len(names[1]), 10)
    lines = [f"{'':<20}  {names[0]:>{wa}}  {names[1]:>{wb}}"]
    lines += [f"{k:<20}  {x:>{wa}}  {y:>{wb}}" for k, x, y in rows]
    tb = {t["id"]: t for t in b.get("tasks", [])}
    changed = []
    for t in a.get("tasks", []):
        other = tb.get(t["id"])
        if other is not None and (t["pass1"], t["passk"]) != (other["pass1"], other["passk"]):
            changed.append(
                f"  {t['id']}: pass@1 {_yes(t['pass1'])} -> {_yes(other['pass1'])}, "
                f"pass@k {_yes(t['passk'])} -> {_yes(other['passk'])}"
            )
    if changed:
        lines.append("tasks that differ:")
        lines += changed
    return "\n".join(lines)


# -- running ----------------------------------------------------------------------------------


def _folder_name(task_id: str, index: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", task_id).strip("._") or "task"
    return f"{index:03d}-{safe[:40]}"


async def arun_eval(
    tasks: Sequence[Task],
    settings: Any,
    *,
    work_dir: Path,
    parallel: int,
    cache_mode: str | None,
) -> list[TaskResult]:
    """Each task in its own folder under `work_dir`, all over one pool of kernels."""
    from .batch import BatchItem, arun_batch

    items = []
    for index, task in enumerate(tasks):
        folder = work_dir / _folder_name(task.id, index)
        folder.mkdir(parents=True, exist_ok=True)
        for source in task.files:
            if not source.is_file():
                raise UsageError(f"task {task.id}: file not found: {source}")
            shutil.copy2(source, folder / source.name)
        options = {"check": task.check} if task.check else {}
        items.append(BatchItem(index, task.request, options, task.id, folder))
    errors: dict[int, str] = {}

    def on_result(item: BatchItem, record: RunRecord | None, error: str | None) -> None:
        if error is not None:
            errors[item.index] = error

    records = await arun_batch(
        items,
        settings,
        parallel=parallel,
        work_dir=work_dir,
        cache_mode=cache_mode,
        on_result=on_result,
    )
    return [score(t, r, errors.get(i)) for i, (t, r) in enumerate(zip(tasks, records, strict=True))]


__all__ = ["Task", "TaskResult", "answer_matches", "closed_form", "load_tasks", "summarize"]
