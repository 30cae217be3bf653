"""Transactional attempts on the flow's side: the snippets that drive `transaction` in the
kernel, and the parsing of their answers.

Pure but for reading `transaction.py`'s own source (it travels into the kernel as code, since
a kernel in a container or behind a gateway has no codeflow installed). The source is sent
only when the kernel does not hold the current version yet: one short round trip otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from .context import parse_marked
from .models import ExecutionResult

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
