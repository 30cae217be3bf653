"""What every command shares: the parser that reports usage errors with our exit status, and
the settings a request's options stand for (the options themselves are in `options.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import UsageError
from ..options import FLOW_OPTIONS, flag, settings_from

if TYPE_CHECKING:
    from ..config import Settings


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get our own exit status."""

    def error(self, message: str) -> NoReturn:
        raise UsageErrorExit(f"{self.prog}: {message}")


class UsageErrorExit(Exception):
    pass


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of a request command: file < `key=value` overrides < options."""
    from ..config import load_settings  # traitlets: only for commands that run requests

    extra: dict[str, Any] = settings_from(args, FLOW_OPTIONS)
    work_dir = args.work_dir.resolve() if args.work_dir else Path.cwd()
    if args.work_dir and not work_dir.is_dir():
        raise UsageError(f"{flag('work_dir')} is not a directory: {args.work_dir}")
    overrides = [o for o in args.overrides]
    for item in overrides:
        if "=" not in item:
            raise UsageError(
                f"unexpected argument {item!r}: quote the request, and give settings as key=value"
            )
    settings = load_settings(overrides, config_file=args.config, work_dir=work_dir, extra=extra)
    # The environment's cache mode and the model names too, before a kernel starts.
    from ..providers import PROVIDERS, resolve_cache_mode, split_model

    resolve_cache_mode(cache_mode_from_args(args), settings.cache.mode)
    for key, spec in (
        ("generation.model", settings.generation.model),
        ("improvement.model", settings.improvement.model),
    ):
        provider, name = split_model(spec) if spec else ("anthropic", "default")
        if provider not in PROVIDERS or not name:
            raise UsageError(
                f"{key}: {spec!r} is not a model; write anthropic:<model>, openai:<model> "
                "or a bare Anthropic model name"
            )
    return settings


def cache_mode_from_args(args: argparse.Namespace) -> str | None:
    """`--no-cache` or `--cache-mode`: it goes to the provider beside the settings, above
    the environment's CODEFLOW_CACHE."""
    if args.no_cache:
        return "off"
    mode: str | None = args.cache_mode
    return mode
