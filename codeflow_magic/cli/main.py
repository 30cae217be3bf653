"""`codeflow`: parse the command line and map errors to exit statuses. Each command is a
module of this package; a run of one command imports only that module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CodeFlowError,
)
from .common import ArgumentParser, UsageErrorExit

Handler = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, str] = {
    "ask": "codeflow_magic.cli.ask",
    "batch": "codeflow_magic.cli.batch",
    "eval": "codeflow_magic.cli.evaluate",
    "run": "codeflow_magic.cli.run",
    "new": "codeflow_magic.cli.new",
    "scan": "codeflow_magic.cli.scan",
    "doctor": "codeflow_magic.cli.doctor",
    "sandbox": "codeflow_magic.cli.sandbox",
    "mcp": "codeflow_magic.cli.mcp",
}
"""The module of each command, whose `register(subparsers)` adds it: a run of one command
imports only its module (the others' imports are a tenth of a second on the way to a cold
request)."""


def build_parser(command: str | None = None) -> ArgumentParser:
    """The parser with every command, or with `command` alone when it is one of COMMANDS."""
    import importlib

    from ..version import __version__

    parser = ArgumentParser(
        prog="codeflow",
        description="Turn plain-words requests into working code: generate, run, fix, repeat.",
    )
    parser.add_argument("--version", action="version", version=f"codeflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    only = COMMANDS.get(command) if command is not None else None
    for module_name in [only] if only is not None else COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list[0] if args_list else None)
    try:
        args, extra = parser.parse_known_args(args_list)
        # `key=value` overrides may stand anywhere after the options; argparse only takes
        # trailing positionals, so collect the ones it left over.
        unknown = [a for a in extra if a.startswith("-") or "=" not in a]
        if unknown or (extra and not hasattr(args, "overrides")):
            parser.error("unrecognized arguments: " + " ".join(unknown or extra))
        if extra:
            args.overrides = list(args.overrides or []) + extra
    except UsageErrorExit as exc:
        print(f"{exc}\n(see `codeflow --help`)", file=sys.stderr)
        return EXIT_USAGE
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except CodeFlowError as exc:
        print(f"codeflow: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("codeflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry() -> NoReturn:
    sys.exit(main())
