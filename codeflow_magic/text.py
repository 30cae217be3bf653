"""Text helpers every layer shares (no codeflow imports)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

ANSI = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]            # CSI: colours, cursor moves
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\) # OSC: titles, hyperlinks
    | \x1b[@-Z\\-_]                     # two-byte escapes
    """,
    re.VERBOSE,
)


def strip_ansi(text: str) -> str:
    """Remove terminal colour and control sequences (IPython tracebacks are full of them)."""
    return ANSI.sub("", text)


def joined(value: object) -> str:
    """nbformat text: a string, or a list of lines to join (None is no text)."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def readable_texts(outputs: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(kind, text) of every output a person reads as text: streams (kind: the stream's name)
    and the plain text of results (kind `result`). Rich parts, errors and images are left
    to each rendering: a prompt, a terminal and a score treat them differently."""
    found: list[tuple[str, str]] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            found.append((str(out.get("name", "stdout")), joined(out.get("text", ""))))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data") or {}
            plain = data.get("text/plain") if isinstance(data, Mapping) else None
            if plain is not None:
                found.append(("result", joined(plain)))
    return found
