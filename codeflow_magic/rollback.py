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

    Without the source, a kernel that lacks the module answers `{"missing": true}`.
    """
    from .transaction import VERSION

    if with_source:
        load = (
            f'        mod = types.ModuleType("{MODULE}")\n'
            f"        exec(compile({_source()!r}, '<codeflow-transaction>', 'exec'), "
            "mod.__dict__)\n"
            f'        sys.modules["{MODULE}"] = mod\n'
        )
    else:
        load = (
            f"        sys.stdout.write({MARKER!r} + '{{\"missing\": true}}\\n')\n        return\n"
        )
    return (
        "def _codeflow_txn():\n"
        '    globals().pop("_codeflow_txn", None)\n'
        "    import sys, types\n"
        f'    mod = sys.modules.get("{MODULE}")\n'
        f'    if mod is None or getattr(mod, "VERSION", None) != {VERSION}:\n'
        f"{load}"
        f"    args = __import__('json').loads({json.dumps(dict(args))!r})\n"
        f"    mod.main({op!r}, args, globals(), sys.stdout.write, {MARKER!r})\n"
        "\n"
        "\n"
        "_codeflow_txn()\n"
    )


def parse(outputs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer of an operation from its outputs ({} when it printed none)."""
    text = "".join(
        str(o.get("text", ""))
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    for line in reversed(text.splitlines()):
        if line.startswith(MARKER):
            try:
                answer = json.loads(line[len(MARKER) :])
            except ValueError:
                return {}
            return answer if isinstance(answer, dict) else {}
    return {}


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
