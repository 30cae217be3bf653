"""The option table: every option of the magic, the command line, the Python API, batch
lines and the JupyterLab settings, each written once.

An option that stands for a setting takes its type, choices and bounds from that setting's
trait (`config.py`), so `--max-attempts 0`, `max_attempts=0` in a batch line and `0` in the
Settings Editor are refused with the same bounds. Front doors pick options by name from
here; the argparse parsers, the magic's arguments, the API's keyword checks, batch's
per-line keys and `labextension/schema/plugin.json` (generated: `python -m
codeflow_magic.options`) all come from this table.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import (
    DEFAULT_MAX_STEPS,
    MAX_PARALLEL,
    MAX_STEPS_LIMIT,
    SCAN_LANGUAGES,
    SEVERITIES,
    steps_count,
)

NO_VALUE = object()
"""`Option.switch` when the option takes a value rather than being a plain switch."""


@dataclass(frozen=True)
class LabField:
    """How an option shows in JupyterLab's Settings Editor (camelCase key, title)."""

    key: str
    """The Settings Editor's name (camelCase)."""
    name: str
    """The Python name the kernel's frontend link keeps the value under."""
    title: str
    description: str
    default: Any = None
    """The frontend's own default, when it differs from the setting's (e.g. backend inline)."""


@dataclass(frozen=True)
class Option:
    """One option: its flags, help, and the setting it stands for (if any)."""

    flags: tuple[str, ...]
    help: str
    setting: str | None = None
    """`section.name`: the type, choices and bounds come from this setting's trait."""
    switch: Any = NO_VALUE
    """For a switch (`--no-improve`), the value it gives its setting (`False`)."""
    dest: str | None = None
    metavar: str | tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    choices_of: str | None = None
    """A setting whose choices the option offers without setting it (`--cache-mode`)."""
    default: Any = None
    action: str | None = None
    nargs: str | int | None = None
    required: bool = False
    notebook_only: tuple[str, ...] = ()
    """Setting values offered only in a notebook (`inline`: the notebook's own kernel)."""
    keyword: str | None = None
    """The `CodeFlow.arun` keyword that stands for the setting (checked against it)."""
    batch_key: bool = False
    """Also a per-request key in a `codeflow batch` JSON line."""
    lab: LabField | None = None

    @property
    def name(self) -> str:
        """The argparse destination (`--max-attempts` -> `max_attempts`)."""
        if self.dest:
            return self.dest
        long = next((f for f in self.flags if f.startswith("--")), self.flags[0])
        return long.lstrip("-").replace("-", "_")

    def trait(self) -> Any:
        """The setting's trait (None for an option that is not a setting)."""
        return _trait(self.setting)

    def setting_choices(self, notebook: bool = False) -> tuple[str, ...] | None:
        values = getattr(_trait(self.setting or self.choices_of), "values", None)
        if not values:
            return None
        return tuple(str(v) for v in values if notebook or v not in self.notebook_only)

    def argparse_kwargs(self, notebook: bool = False) -> dict[str, Any]:
        """Keyword arguments for `add_argument` (IPython's `@argument` takes the same)."""
        kw: dict[str, Any] = {"help": self.help}
        for key in ("dest", "metavar", "nargs"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        if self.required:
            kw["required"] = True
        if self.switch is not NO_VALUE or self.action == "store_true":
            kw["action"] = "store_true"
            kw["default"] = None if self.setting else False
            return kw
        if self.action is not None:
            kw["action"] = self.action
        if self.default is not None:
            kw["default"] = self.default
        choices = self.choices or self.setting_choices(notebook)
        if choices:
            kw["choices"] = list(choices)
        elif self.type is not None:
            kw["type"] = self.type
        elif self.setting is not None:
            kw["type"] = setting_type(self.setting)
        return kw

    def trait_kind(self) -> str:
        """The JSON type of the setting: string, integer, number or boolean."""
        from traitlets import Bool, Float, Int

        trait = self.trait()
        if isinstance(trait, Bool):
            return "boolean"
        if isinstance(trait, Int):
            return "integer"
        if isinstance(trait, Float):
            return "number"
        return "string"


def _trait(key: str | None) -> Any:
    if key is None:
        return None
    from .config import SECTIONS

    section, name = key.split(".")
    return SECTIONS[section].class_traits(config=True)[name]


def setting_type(key: str) -> Callable[[str], Any]:
    """An argparse `type` for an option that sets `key`: the same bounds and wording as the
    config file (the config module loads only when a line uses the option)."""

    def parse(text: str) -> Any:
        from .config import option_type

        return option_type(key)(text)

    parse.__name__ = key
    return parse


def whole_number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse `type` for a count that is not a setting (e.g. `--parallel`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; expected an integer from {lowest} to {highest}"
            ) from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range; expected an integer from {lowest} to {highest}"
            )
        return value

    parse.__name__ = "whole number"
    return parse


MAX_SECONDS = 86_400.0


def seconds(text: str) -> float:
    """An argparse `type` for a time limit: a finite number of seconds above 0 (a day at
    most), so `nan` or `-1` is a usage error rather than a crash in the middle of a run."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; expected seconds above 0, up to {MAX_SECONDS:g}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a finite number; expected seconds above 0, up to {MAX_SECONDS:g}"
        )
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; expected seconds above 0, up to {MAX_SECONDS:g}"
        )
    return value


OVERRIDES_HELP = "settings as section.name=value, e.g. improvement.max_attempts=5"
CACHE_MODES = ("rw", "replay", "off")

OPTIONS: dict[str, Option] = {
    # -- a request: the magic, ask, batch, eval, mcp -----------------------------------------
    "model": Option(
        ("--model",),
        "anthropic:<model>, openai:<model> or a bare Anthropic model name",
        setting="generation.model",
        lab=LabField(
            "model",
            "model",
            "Model",
            "Model used to generate code (empty: the kernel's configured default).",
        ),
    ),
    "language": Option(
        ("--language",),
        "language of the code",
        setting="generation.language",
        keyword="language",
        batch_key=True,
    ),
    "max_attempts": Option(
        ("--max-attempts",),
        "attempts including the first (default 3, at most 50)",
        setting="improvement.max_attempts",
        keyword="max_attempts",
        batch_key=True,
        lab=LabField(
            "maxAttempts",
            "max_attempts",
            "Maximum attempts",
            "Attempts per request, the first one included.",
        ),
    ),
    "timeout": Option(
        ("--timeout",),
        "seconds per execution before it is interrupted (0.1 to 86400)",
        setting="execution.timeout",
        keyword="timeout",
        batch_key=True,
    ),
    "check": Option(("--check",), "Python run after the code; must pass", metavar="CODE"),
    "focus": Option(
        ("--focus",),
        "what fixes aim at: fix_errors (default), optimize, robustness",
        setting="improvement.focus",
        keyword="focus",
        batch_key=True,
    ),
    "verify": Option(
        ("--verify",),
        "let the model score the result",
        setting="improvement.verify",
        switch=True,
        keyword="verify",
        batch_key=True,
    ),
    "backend": Option(
        ("--backend",),
        "where the code runs (default kernel)",
        setting="execution.backend",
        notebook_only=("inline",),
    ),
    "magic.backend": Option(
        ("--backend",),
        "where the code runs (default inline; kernel, sandbox, docker and gateway keep one "
        "kernel per notebook between cells)",
        setting="execution.backend",
        lab=LabField(
            "backend",
            "backend",
            "Execution backend",
            "inline: the notebook's own kernel; kernel: a separate local kernel; sandbox: a "
            "kernel inside bubblewrap; docker: a kernel in a container; gateway: a kernel on a "
            "Jupyter Kernel Gateway. All but inline keep one kernel per notebook between cells.",
            default="inline",
        ),
    ),
    "scan": Option(("--scan",), "security scan policy", setting="execution.scan", keyword="scan"),
    "no_cache": Option(
        ("--no-cache",), "neither read nor write recorded responses", action="store_true"
    ),
    "cache_mode": Option(
        ("--cache-mode",), "recorded-response cache mode", choices_of="cache.mode"
    ),
    "no_improve": Option(
        ("--no-improve",),
        "one attempt, no fixes",
        setting="improvement.enabled",
        switch=False,
        keyword="improve",
    ),
    "review": Option(
        ("--review",),
        "generate and scan, show the code, run nothing (execution.review=always)",
        setting="execution.review",
        switch="always",
        keyword="review",
    ),
    "magic.review": Option(
        ("--review",),
        "show the code and run nothing until approved (%%codeflow approve)",
        setting="execution.review",
        switch="always",
    ),
    "run.review": Option(
        ("--review",),
        "write each request's code into its linked cell without running it (the report "
        "marks it awaiting review); the scanner's block policy still blocks",
        action="store_true",
    ),
    "install_missing": Option(
        ("--install-missing",), "install missing packages", setting="execution.install_missing"
    ),
    "memory_limit": Option(
        ("--memory-limit",),
        "memory limit for sandbox/docker, e.g. 512m, 2g (32m to 1t)",
        setting="execution.memory_limit",
    ),
    "cpu_limit": Option(
        ("--cpu-limit",),
        "CPU cores for sandbox/docker (0.05 to 1024)",
        setting="execution.cpu_limit",
    ),
    "gateway_url": Option(
        ("--gateway-url",),
        "Jupyter Kernel Gateway URL (--backend gateway)",
        setting="execution.gateway_url",
    ),
    "gateway_token": Option(
        ("--gateway-token",), "token for the gateway", setting="execution.gateway_token"
    ),
    "kernel": Option(
        ("--kernel",),
        "Jupyter kernel name (default python3)",
        setting="execution.kernel_name",
        dest="kernel_name",
    ),
    "run.kernel": Option(
        ("--kernel",), "kernel name (default: the notebook's)", dest="kernel_name"
    ),
    "work_dir": Option(
        ("--work-dir",),
        "working directory of the kernel",
        setting="execution.work_dir",
        type=Path,
    ),
    "config": Option(("--config",), "a codeflow.yaml to use", type=Path),
    "overrides": Option(("overrides",), OVERRIDES_HELP, nargs="*", metavar="key=value"),
    "steps": Option(
        ("--steps",),
        "plan the request as steps: a markdown and a code cell each, run in order",
        action="store_true",
    ),
    "max_steps": Option(
        ("--max-steps",),
        f"at most this many steps (default {DEFAULT_MAX_STEPS}, 1 to {MAX_STEPS_LIMIT})",
        type=steps_count,
    ),
    "replace": Option(("--replace",), "put the final code into this cell", action="store_true"),
    "no_writeback": Option(
        ("--no-writeback",),
        "do not write the final code back",
        action="store_true",
        lab=LabField(
            "writeback",
            "writeback",
            "Write code back",
            "Put the working code into a code cell below the request.",
            default=True,
        ),
    ),
    # -- output ------------------------------------------------------------------------------
    "format": Option(("--format",), "output format", choices_of="response.format"),
    "batch.format": Option(
        ("--format",), "output format (default json)", choices=("json", "markdown", "plain")
    ),
    "report.format": Option(
        ("--format",),
        "text for people, json for programs",
        choices=("text", "json"),
        default="text",
        dest="fmt",
    ),
    "quiet": Option(("-q", "--quiet"), "no progress on stderr", action="store_true"),
    "parallel": Option(
        ("--parallel",),
        f"kernels in the pool (default 4, at most {MAX_PARALLEL})",
        type=whole_number(1, MAX_PARALLEL),
        default=4,
    ),
    # -- codeflow run / new ------------------------------------------------------------------
    "output": Option(("-o", "--output"), "output notebook (one input) or folder (several)"),
    "new.output": Option(("-o", "--output"), "the notebook to write (NAME.ipynb)", required=True),
    "eval.output": Option(("--output",), "write the results as JSON", type=Path),
    "report": Option(("--report",), "write a report: FILE.html (self-contained) or FILE.md"),
    "inplace": Option(
        ("--inplace", "--in-place"), "overwrite the input notebooks", action="store_true"
    ),
    "allow_errors": Option(
        ("--allow-errors",), "keep going after a cell raises an error", action="store_true"
    ),
    "wait": Option(
        ("--wait",),
        "if another codeflow run holds a notebook, wait for it instead of stopping",
        action="store_true",
    ),
    "run.timeout": Option(
        ("--timeout",),
        "seconds any cell (%%%%codeflow cells included) may run; a cell past it fails "
        "the run and nothing is written (default: no limit)",
        metavar="SECONDS",
        type=seconds,
    ),
    "cell_timeout": Option(
        ("--cell-timeout",),
        "seconds a plain code cell may run before the kernel is interrupted, like "
        "nbconvert's interrupt_on_timeout: the cell keeps its KeyboardInterrupt; with "
        "--allow-errors the next cells run, otherwise the run stops with exit 1 and saves "
        "the cells that ran (the rest marked not run). For plain cells it takes the place "
        "of --timeout; %%%%codeflow cells are never interrupted (their code has "
        "execution.timeout). Default: no limit",
        metavar="SECONDS",
        type=seconds,
    ),
    "data": Option(
        ("--data",),
        "a data file the request uses (repeat for several); the model sees a preview",
        action="append",
        default=[],
        metavar="FILE",
    ),
    "force": Option(("--force",), "replace an existing output notebook", action="store_true"),
    # -- codeflow eval -----------------------------------------------------------------------
    "labels": Option(("--labels",), "DABench labels file", type=Path),
    "tables": Option(("--tables",), "DABench tables folder", type=Path),
    "compare": Option(
        ("--compare",), "compare two saved results", type=Path, nargs=2, metavar=("A", "B")
    ),
    # -- codeflow scan -----------------------------------------------------------------------
    "rules": Option(
        ("--rules",),
        "print the rule catalogue (id, severity, category, summary) and exit",
        action="store_true",
    ),
    "scan.language": Option(
        ("--language",),
        "language of the files (default: from the extension .py, .ipy, .sh/.bash)",
        choices=SCAN_LANGUAGES,
    ),
    "fail_on": Option(
        ("--fail-on",),
        "lowest severity that makes the command fail (default: high)",
        choices=tuple(reversed(SEVERITIES)),
        default="high",
    ),
    # -- codeflow doctor / sandbox / mcp -----------------------------------------------------
    "doctor.backend": Option(
        ("--backend",), "check only this backend", choices_of="execution.backend"
    ),
    "doctor.gateway_url": Option(("--gateway-url",), "gateway to check"),
    "doctor.kernel": Option(("--kernel",), "kernel name to look for"),
    "packages": Option(
        ("--packages",), "Extra Python packages, comma separated (p1,p2).", default=""
    ),
    "image": Option(("--image",), "Image name (default: execution.docker_image).", default=""),
    "set": Option(
        ("--set",), "Setting override.", action="append", default=[], metavar="KEY=VALUE"
    ),
    "http": Option(
        ("--http",),
        "serve streamable HTTP on 127.0.0.1:PORT (0: any free port) instead of stdio; "
        "clients send `Authorization: Bearer $CODEFLOW_MCP_TOKEN`",
        metavar="PORT",
        type=int,
    ),
    "notebook": Option(("--notebook",), "a notebook the notebook tools read and write", type=Path),
    "mcp.wait": Option(
        ("--wait",),
        "how long a call waits before answering with a run id to poll",
        metavar="SECONDS",
        type=float,
    ),
}
"""Every option, by name; variants of one flag for other commands are named `door.name`."""

FLOW_OPTIONS = (
    "model", "language", "max_attempts", "timeout", "check", "focus", "verify", "backend",
    "scan", "no_cache", "cache_mode", "no_improve", "review", "install_missing",
    "memory_limit", "cpu_limit", "gateway_url", "gateway_token", "kernel", "work_dir",
    "config", "overrides",
)  # fmt: skip
"""The options of every command that runs requests (ask, batch, eval, mcp)."""

MAGIC_OPTIONS = (
    "model", "language", "max_attempts", "timeout", "check", "focus", "verify",
    "magic.backend", "scan", "no_cache", "no_improve", "magic.review", "steps", "max_steps",
    "replace", "no_writeback", "overrides",
)  # fmt: skip
"""`%%codeflow`'s options, in the order `%%codeflow?` lists them."""

LAB_OPTIONS = ("model", "max_attempts", "magic.backend", "no_writeback")
"""The options the Settings Editor shows, in its order."""


def flag(name: str) -> str:
    """An option's (long) flag, for messages that name it."""
    option = OPTIONS[name]
    return next((f for f in option.flags if f.startswith("--")), option.flags[0])


def add_options(parser: Any, names: Iterable[str], **overrides: dict[str, Any]) -> None:
    """Add the named options to an argparse parser (`overrides` by name: extra kwargs)."""
    for name in names:
        option = OPTIONS[name]
        kw = option.argparse_kwargs()
        kw.update(overrides.get(name.replace(".", "_"), {}))
        parser.add_argument(*option.flags, **kw)


def magic_decorators(argument: Callable[..., Any]) -> list[Callable[[Any], Any]]:
    """IPython `@argument` decorators for `%%codeflow`, innermost first (apply in order)."""
    decorators = []
    for name in reversed(MAGIC_OPTIONS):
        option = OPTIONS[name]
        decorators.append(argument(*option.flags, **option.argparse_kwargs(notebook=True)))
    return decorators


@functools.cache
def magic_line_parser() -> argparse.ArgumentParser:
    """`%%codeflow`'s options as a plain parser, for reading a cell without IPython."""
    parser = argparse.ArgumentParser(prog="%%codeflow", add_help=False, exit_on_error=False)
    for name in MAGIC_OPTIONS:
        option = OPTIONS[name]
        parser.add_argument(*option.flags, **option.argparse_kwargs(notebook=True))
    return parser


def read_magic_line(line: str) -> argparse.Namespace | None:
    """The options of a `%%codeflow` line, or None when it does not parse (the kernel then
    reports the mistake when the cell runs)."""
    parser = magic_line_parser()
    try:
        args, _ = parser.parse_known_args(shlex.split(line))
    except (ValueError, argparse.ArgumentError):
        return None
    return args


def settings_from(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """`section.name -> value` for each named option given on the line (None left out)."""
    out: dict[str, Any] = {}
    for name in names:
        option = OPTIONS[name]
        if option.setting is None or not hasattr(args, option.name):
            continue
        value = getattr(args, option.name)
        if option.switch is not NO_VALUE:
            value = option.switch if value else None
        elif isinstance(value, Path):
            value = str(value.resolve())
        if value is not None:
            out[option.setting] = value
    return out


def api_keywords() -> dict[str, str]:
    """`CodeFlow.arun` keyword -> setting, for the keywords that stand for a setting."""
    return {o.keyword: o.setting for o in OPTIONS.values() if o.keyword and o.setting}


def batch_keys() -> dict[str, str]:
    """Per-request JSON key of a batch line -> setting."""
    return {
        o.keyword or o.name: o.setting
        for o in OPTIONS.values()
        if o.batch_key and o.setting is not None
    }


def lab_fields() -> list[tuple[Option, LabField]]:
    """The Settings Editor's options, in its order, each with how it shows there."""
    fields = []
    for name in LAB_OPTIONS:
        lab = OPTIONS[name].lab
        if lab is not None:
            fields.append((OPTIONS[name], lab))
    return fields


def lab_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The Settings Editor's values that fit their option (camelCase or Python names), as
    Python names (`maxAttempts` -> `max_attempts`); a bad value is dropped, not guessed."""
    from .config import validate_value
    from .errors import ConfigError

    out: dict[str, Any] = {}
    for option, lab in lab_fields():
        name = lab.name
        value = raw.get(name, raw.get(lab.key))
        if value is None:
            continue
        if option.setting is None:
            if isinstance(value, bool):
                out[name] = value
            continue
        if isinstance(value, bool) and option.trait_kind() != "boolean":
            continue
        if option.trait_kind() == "string" and not isinstance(value, str):
            continue
        try:
            out[name] = validate_value(option.setting, value)[2]
        except ConfigError:
            continue
    return out


def lab_schema() -> dict[str, Any]:
    """The JupyterLab settings schema (`labextension/schema/plugin.json`)."""
    properties: dict[str, Any] = {}
    for option, lab in lab_fields():
        prop: dict[str, Any] = {"title": lab.title, "description": lab.description}
        if option.setting is None:
            prop = {"type": "boolean", **prop, "default": bool(lab.default)}
        else:
            trait = option.trait()
            prop = {"type": option.trait_kind(), **prop}
            values = list(option.setting_choices(notebook=True) or ())
            if lab.default in values:  # the Settings Editor lists its default first
                values.remove(lab.default)
                values.insert(0, lab.default)
            if values:
                prop["enum"] = values
            for bound in ("min", "max"):
                limit = getattr(trait, bound, None)
                if limit is not None and option.trait_kind() in ("integer", "number"):
                    prop["minimum" if bound == "min" else "maximum"] = limit
            prop["default"] = lab.default if lab.default is not None else trait.default_value
        properties[lab.key] = prop
    return {
        "title": "codeflow",
        "description": "Defaults that %%codeflow cells use when their own options do not say "
        "otherwise.",
        "jupyter.lab.setting-icon": "codeflow:sidebar",
        "jupyter.lab.setting-icon-label": "codeflow",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def schema_text() -> str:
    return json.dumps(lab_schema(), indent=2) + "\n"


def main() -> int:
    """Print the settings schema; `make schema` writes it into the extension."""
    sys.stdout.write(schema_text())
    return 0


__all__ = [
    "FLOW_OPTIONS",
    "LAB_OPTIONS",
    "MAGIC_OPTIONS",
    "OPTIONS",
    "LabField",
    "Option",
    "add_options",
    "api_keywords",
    "batch_keys",
    "flag",
    "lab_schema",
    "lab_settings",
    "settings_from",
]

if __name__ == "__main__":
    sys.exit(main())
