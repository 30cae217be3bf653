"""`codeflow ...`: the command line. Argument parsing, printing and exit statuses live in this
package only; the modules it drives (`batch`, `runner`, `evaluation`, ...) never import it."""

from __future__ import annotations

from ..errors import (
    EXIT_BACKEND,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_TERMINATED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from .main import COMMANDS, build_parser, entry, main

__all__ = [
    "COMMANDS",
    "EXIT_BACKEND",
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROVIDER",
    "EXIT_TERMINATED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "entry",
    "main",
]
