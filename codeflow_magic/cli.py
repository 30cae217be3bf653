"""`codeflow`: a thin front door over the flow. Each subcommand lives in the module that owns
its feature and registers itself here; this file only parses and maps errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .errors import CodeFlowError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_BACKEND = 4
EXIT_UNAVAILABLE = 5
EXIT_BUSY = 6
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

Handler = Callable[[argparse.Namespace], int]

# (module, function) pairs: each function takes the subparsers action and adds its command.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("codeflow_magic.commands", "register_ask"),
    ("codeflow_magic.commands", "register_batch"),
    ("codeflow_magic.evaluation", "register"),
    ("codeflow_magic.runner", "register"),
    ("codeflow_magic.newbook", "register"),
    ("codeflow_magic.security.cli", "register"),
    ("codeflow_magic.executors.doctor", "register"),
    ("codeflow_magic.executors.image", "register"),
    ("codeflow_magic.mcp_server", "register"),
)
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("codeflow_magic.commands", "register_ask"),
    "batch": ("codeflow_magic.commands", "register_batch"),
    "eval": ("codeflow_magic.evaluation", "register"),
    "run": ("codeflow_magic.runner", "register"),
    "new": ("codeflow_magic.newbook", "register"),
    "scan": ("codeflow_magic.security.cli", "register"),
    "doctor": ("codeflow_magic.executors.doctor", "register"),
    "sandbox": ("codeflow_magic.executors.image", "register"),
    "mcp": ("codeflow_magic.mcp_server", "register"),
}
"""The command each entry of SUBCOMMANDS adds: a run of one command imports only its module
(the others' imports are a tenth of a second on the way to a cold request)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get our own exit status."""

    def error(self, message: str) -> NoReturn:
        raise UsageErrorExit(f"{self.prog}: {message}")


class UsageErrorExit(Exception):
    pass


def build_parser(command: str | None = None) -> ArgumentParser:
    """The parser with every command, or with `command` alone when it is one of COMMANDS."""
    import importlib

    from . import __version__

    parser = ArgumentParser(
        prog="codeflow",
        description="Turn plain-words requests into working code: generate, run, fix, repeat.",
    )
    parser.add_argument("--version", action="version", version=f"codeflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    only = COMMANDS.get(command) if command is not None else None
    for module_name, func_name in [only] if only is not None else SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("codeflow_magic"):
                continue  # a feature module not present in this build
            raise
        getattr(module, func_name)(sub)
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


if __name__ == "__main__":
    entry()
