"""Text helpers every layer shares (no codeflow imports)."""

from __future__ import annotations

import re

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
