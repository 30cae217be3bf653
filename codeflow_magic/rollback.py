"""Transactional attempts on the flow's side: the snippets that drive `transaction` in the
kernel, the parsing of their answers, and `Snapshots`, the flow's use of them.

Pure but for reading `transaction.py`'s own source (it travels into the kernel as code, since
a kernel in a container or behind a gateway has no codeflow installed). The source is sent
only when the kernel does not hold the current version yet: one short round trip otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .context import parse_marked
from .events import RollbackEvent, WarningEvent
from .models import Attempt, ExecutionResult

if TYPE_CHECKING:
    from .executors.base import Executor
    from .runstate import RunState

MARKER = "@@codeflow-txn@@ "
"""Starts the one stdout line that carries an operation's JSON answer."""

MODULE = "_codeflow_transaction"
"""Where the kernel keeps the module (and with it every snapshot): `sys.modules[MODULE]`."""

TIMEOUT_S = 60.0
"""A snapshot copies at most the budget; this bounds a kernel that stopped answering."""


class SnippetRunner(Protocol):
    """The one executor method the transactions need."""

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult: ...


@cache
def _source() -> str:
    return (Path(__file__).parent / "transaction.py").read_text(encoding="utf-8")


def snippet(op: str, args: Mapping[str, Any], *, with_source: bool) -> str:
    """Python that runs one operation and prints its answer on one marked line, no trace left.

    Without the source it is one expression (the common case: cheap to compile); a kernel that
    lacks the module, or holds another version, answers `{"missing": true}`.
    """
    from .transaction import VERSION

    call = (
        f"{VERSION}, {op!r}, {json.dumps(dict(args))!r}, globals(), "
        f"__import__('sys').stdout.write, {MARKER!r}"
    )
    if not with_source:
        return (
            f"(__import__('sys').modules.get({MODULE!r}) or "
            f"__import__('types').SimpleNamespace(run=lambda *a: a[4](a[5] + "
            "'{\"missing\": true}\\n'))).run(" + call + ")\n"
        )
    return (
        "def _codeflow_txn():\n"
        '    globals().pop("_codeflow_txn", None)\n'
        "    import sys, types\n"
        f'    mod = types.ModuleType("{MODULE}")\n'
        f"    exec(compile({_source()!r}, '<codeflow-transaction>', 'exec'), mod.__dict__)\n"
        f'    sys.modules["{MODULE}"] = mod\n'
        f"    mod.run({call})\n"
        "\n"
        "\n"
        "_codeflow_txn()\n"
    )


def parse(outputs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer of an operation from its outputs ({} when it printed none)."""
    return parse_marked(outputs, MARKER)


async def call(executor: SnippetRunner, op: str, **args: Any) -> dict[str, Any]:
    """Run one operation in the kernel; `{}` when the kernel could not answer.

    The module's source goes along only when the kernel says it lacks it (first use, or a
    restarted kernel).
    """
    result = await executor.run_snippet(snippet(op, args, with_source=False), TIMEOUT_S)
    answer = parse(result.outputs) if result.ok else {}
    if answer.get("missing"):
        result = await executor.run_snippet(snippet(op, args, with_source=True), TIMEOUT_S)
        answer = parse(result.outputs) if result.ok else {}
    return answer


def kept_text(kept: Iterable[str]) -> str:
    """One line for prompts and histories: what a rollback could not undo."""
    items = [str(k) for k in kept if str(k).strip()]
    return "; ".join(items)


class Snapshots:
    """The flow's use of snapshots (a mixin of `Flow`): take one before a run's first
    execution, restore it after each failed attempt, close it (keeping an undo point)."""

    if TYPE_CHECKING:  # provided by Flow
        executor: Executor

    async def _begin(self, run: RunState) -> str | None:
        """Snapshot the user's variables (the token to roll back to; None when the kernel
        could not take one, which is said once in the record's warnings)."""
        run.txn_n += 1
        token = f"{run.run_id or 'run'}-{run.txn_n}"
        try:
            answer = await call(
                self.executor, "begin", token=token, max_bytes=run.opts.snapshot_max_bytes
            )
        except Exception as exc:  # a snapshot is a safety net; it never fails the run
            answer = {"message": str(exc)}
        if "names" not in answer:
            warning = (
                "the variables could not be snapshotted, so a failed attempt's changes stay"
                + (f" ({answer['message']})" if answer.get("message") else "")
            )
            if warning not in run.warnings:
                run.warnings.append(warning)
                run.emit(WarningEvent(0, message=warning))
            return None
        return token

    async def _rollback(self, run: RunState, attempt: Attempt, token: str | None = None) -> Attempt:
        """Undo what a failed attempt did to the user's variables; name what stays."""
        token = token or run.txn
        if token is None:
            return attempt
        try:
            answer = await call(
                self.executor,
                "rollback",
                token=token,
                code=attempt.code if attempt.language == "python" else "",
            )
        except Exception:
            answer = {}
        if not answer.get("ok"):
            if token == run.txn:
                run.txn = None  # the kernel lost it (a restart): the next run takes a new one
            return attempt
        kept = tuple(str(k) for k in answer.get("kept", ()))
        run.emit(
            RollbackEvent(
                attempt.number,
                restored=tuple(answer.get("restored", ())),
                removed=tuple(answer.get("removed", ())),
                kept=kept,
            )
        )
        return replace(attempt, rolled_back=True, kept_changes=kept)

    async def _end(self, run: RunState, token: str | None, undo_key: str = "") -> bool:
        """Close a snapshot; with `undo_key`, the kernel keeps what the run changed."""
        if token is None:
            return False
        try:
            answer = await call(self.executor, "commit", token=token, undo_key=undo_key)
        except Exception:
            return False
        return bool(answer.get("ok"))
