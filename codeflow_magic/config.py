"""Configuration: traitlets Configurables, the seeds' YAML sections and dotted overrides.

Each YAML section (`generation`, `execution`, `improvement`, `response`, `cache`) is one
Configurable class, so the same setting can come from `ipython_config.py`
(`c.CodeflowImprovement.max_attempts = 5`), `%config`, `codeflow.yaml` or
`improvement.max_attempts=5` on the command line, and is validated in one place.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from traitlets import Bool, CaselessStrEnum, Float, Int, List, TraitError, Unicode
from traitlets.config import Config, Configurable

from .errors import ConfigError, UsageError
from .models import FOCUSES

SEED_PREFIX = "flows.code_execution."
CONFIG_FILENAMES = ("codeflow.yaml", "codeflow.yml")


MAX_MEMORY = 1024**4
"""The largest memory limit accepted (1t): anything above is a typo, not a machine."""
MAX_REQUEST_CHARS = 1_000_000
"""The highest `generation.max_request_chars` may go (about 250,000 tokens: a model's whole
context window)."""


def _default_model() -> str:
    from .providers.catalogue import DEFAULT_MODEL

    return DEFAULT_MODEL


class Number(Float):  # type: ignore[type-arg]
    """A finite float: traitlets' bounds let NaN through, and True would quietly mean 1.0."""

    info_text = "a finite number"

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool):
            self.error(obj, value)
        value = super().validate(obj, value)
        if not math.isfinite(value):
            self.error(obj, value)
        return value


class Whole(Int):  # type: ignore[type-arg]
    """An integer that is not a bool (True would quietly mean 1)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool):
            self.error(obj, value)
        return super().validate(obj, value)


class Size(Unicode):  # type: ignore[type-arg]
    """A memory size such as `512m` or `2g`, checked when set rather than when a sandbox starts."""

    info_text = "a size such as 512m or 2g"

    def validate(self, obj: Any, value: Any) -> Any:
        from .executors.limits import parse_size

        value = super().validate(obj, value)
        try:
            size = parse_size(value)
        except ConfigError:
            self.error(obj, value)
        if size > MAX_MEMORY:
            self.error(obj, value)
        return value


class Url(Unicode):  # type: ignore[type-arg]
    """Empty, or an http(s) URL with a host: a typo fails here, not at the first request."""

    info_text = "an http:// or https:// URL"

    def validate(self, obj: Any, value: Any) -> Any:
        value = super().validate(obj, value)
        if value:
            try:
                parts = urlsplit(value)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                _ = parts.port  # a non-numeric port raises here
            except ValueError:
                ok = False
            if not ok:
                self.error(obj, value)
        return value


class Prices(List):  # type: ignore[type-arg]
    """Prices as `MODEL=INPUT/OUTPUT[/CACHE_WRITE/CACHE_READ]` entries, checked when set."""

    info_text = "a list of MODEL=INPUT/OUTPUT[/CACHE_WRITE/CACHE_READ] (dollars per million tokens)"

    def validate(self, obj: Any, value: Any) -> Any:
        value = super().validate(obj, value)
        from .providers.catalogue import parse_price

        for entry in value:
            try:
                parse_price(str(entry))
            except ValueError:
                self.error(obj, value)
        return value


class CodeflowGeneration(Configurable):
    """How code is generated."""

    model = Unicode(
        "",
        help="Model as `anthropic:<name>`, `openai:<name>` or a bare Anthropic name; "
        "empty picks a current model from the installed SDK.",
    ).tag(config=True)
    language = CaselessStrEnum(
        ["python", "bash", "auto"], default_value="python", help="Language of generated code."
    ).tag(config=True)
    temperature = Number(0.2, min=0.0, max=1.0, help="Sampling temperature.").tag(config=True)
    max_tokens = Whole(4096, min=64, max=200_000, help="Largest reply the model may write.").tag(
        config=True
    )
    timeout = Number(120.0, min=1.0, max=3600.0, help="Seconds to wait for one model call.").tag(
        config=True
    )
    base_url = Url("", help="Base URL for the openai-compatible provider.").tag(config=True)
    state_chars = Whole(
        2000, min=0, max=1_000_000, help="Budget for the kernel-state summary put into prompts."
    ).tag(config=True)
    preview_files = Bool(
        True,
        help="Preview the data files a request names (read inside the kernel, from the work "
        "dir only, never a file that looks like a secret) in generate and fix prompts.",
    ).tag(config=True)
    preview_bytes = Whole(
        65_536,
        min=1024,
        max=16 * 1024 * 1024,
        help="Bytes read from each previewed file, at most (a 2 GB file costs what 64 KB does).",
    ).tag(config=True)
    preview_seconds = Number(
        0.2, min=0.01, max=30.0, help="Seconds one file's preview may take to parse."
    ).tag(config=True)
    preview_chars = Whole(
        3000, min=0, max=1_000_000, help="Budget for all file previews put into a prompt."
    ).tag(config=True)
    preview_max_files = Whole(
        5, min=1, max=50, help="Files of one request previewed, at most."
    ).tag(config=True)
    environment = Bool(
        True,
        help="Tell the model the Python version and which data libraries are installed "
        "(looked up once per kernel, nothing imported).",
    ).tag(config=True)
    notebook_chars = Whole(
        1500,
        min=0,
        max=1_000_000,
        help="Budget for the sources of the cells above a %%codeflow cell (nearest first; "
        "0: none).",
    ).tag(config=True)
    prices = Prices(
        Unicode(),
        default_value=[],
        help="Prices per million tokens as MODEL=INPUT/OUTPUT[/CACHE_WRITE/CACHE_READ], ahead "
        "of codeflow's table of Anthropic models (others cost 0 unless named here).",
    ).tag(config=True)
    max_request_chars = Whole(
        100_000,
        min=1,
        max=MAX_REQUEST_CHARS,
        help="Longest request accepted, in characters; a longer one is refused before anything "
        "runs (about 25,000 tokens by default: prompts far beyond that only cost money).",
    ).tag(config=True)


class CodeflowExecution(Configurable):
    """Where and how generated code runs."""

    backend = CaselessStrEnum(
        ["kernel", "inline", "sandbox", "docker", "gateway"],
        default_value="kernel",
        help="Execution backend.",
    ).tag(config=True)
    kernel_name = Unicode("python3", help="Jupyter kernel to start.").tag(config=True)
    timeout = Number(60.0, min=0.1, max=86_400.0, help="Seconds before a run is interrupted.").tag(
        config=True
    )
    interrupt_grace = Number(
        3.0,
        min=0.1,
        max=600.0,
        help="Seconds an interrupted run gets before the kernel is restarted.",
    ).tag(config=True)
    max_output_chars = Whole(
        200_000,
        min=1000,
        max=100_000_000,
        help="Cap on captured output per execution (head and tail kept).",
    ).tag(config=True)
    prompt_output_chars = Whole(
        4000, min=200, max=1_000_000, help="Cap on output text sent back to the model."
    ).tag(config=True)
    install_missing = CaselessStrEnum(
        ["off", "ask", "auto"],
        default_value="off",
        help="Install a missing package into a non-sandboxed kernel and re-run.",
    ).tag(config=True)
    scan = CaselessStrEnum(
        ["block", "strict", "warn", "off"],
        default_value="block",
        help="Security scan policy before execution.",
    ).tag(config=True)
    memory_limit = Size("1g", help="Memory limit for sandbox and docker backends.").tag(config=True)
    disk_limit = Size(
        "1g", help="Largest file and temp space the code may write (sandbox and docker backends)."
    ).tag(config=True)
    cpu_limit = Number(
        1.0, min=0.05, max=1024.0, help="CPU limit (cores) for sandbox and docker."
    ).tag(config=True)
    pids_limit = Whole(128, min=8, max=65_536, help="Process limit for sandbox and docker.").tag(
        config=True
    )
    work_dir = Unicode("", help="Working directory of the kernel (default: current).").tag(
        config=True
    )
    execute_at_fence = Bool(
        True,
        help="Start running the code as soon as the streamed reply closes its code block.",
    ).tag(config=True)
    rollback = CaselessStrEnum(
        ["on", "off"],
        default_value="on",
        help="Undo a failed attempt's changes to the user's variables before the next one.",
    ).tag(config=True)
    snapshot_max_bytes = Size(
        "256m",
        help="Memory the variable snapshots of one request may copy (pandas objects are "
        "shared under Copy-on-Write and cost nothing).",
    ).tag(config=True)
    review = CaselessStrEnum(
        ["off", "always", "risky"],
        default_value="off",
        help="Show generated code for approval before it runs: always, or when the scanner "
        "finds something at medium or above (risky).",
    ).tag(config=True)
    gateway_url = Url("", help="Jupyter Kernel Gateway URL for --backend gateway.").tag(config=True)
    gateway_token = Unicode("", help="Token for the gateway.").tag(config=True)
    docker_image = Unicode("codeflow-kernel:latest", help="Image for --backend docker.").tag(
        config=True
    )
    docker_packages = List(
        Unicode(), default_value=[], help="Extra Python packages baked into the docker image."
    ).tag(config=True)
    secret_env = List(
        Unicode(),
        default_value=[],
        help="Extra environment variable names kept out of kernels and redacted from outputs.",
    ).tag(config=True)


class CodeflowImprovement(Configurable):
    """The fix loop."""

    enabled = Bool(True, help="Ask for fixes after a failed attempt.").tag(config=True)
    max_attempts = Whole(3, min=1, max=50, help="Attempts per request, first one included.").tag(
        config=True
    )
    model = Unicode("", help="Model for fixes (default: the generation model).").tag(config=True)
    focus = CaselessStrEnum(
        list(FOCUSES), default_value="fix_errors", help="What improvement aims at."
    ).tag(config=True)
    verify = Bool(False, help="Ask the model to score the result (quality gate).").tag(config=True)
    quality_threshold = Number(7.0, min=0.0, max=10.0, help="Lowest passing score.").tag(
        config=True
    )
    token_budget = Whole(
        200_000, min=0, max=100_000_000, help="Total tokens one request may spend (0: no limit)."
    ).tag(config=True)
    max_cost_usd = Number(
        0.0,
        min=0.0,
        max=1_000_000.0,
        help="US dollars one request may spend on the model, by the price table (0: no limit).",
    ).tag(config=True)
    sanity = CaselessStrEnum(
        ["fix", "warn", "off"],
        default_value="fix",
        help="After a run that raised nothing and has no check: a NaN/inf answer, an empty "
        "DataFrame/Series or a telling warning is a logical failure to fix (fix), only "
        "recorded (warn), or not looked for (off).",
    ).tag(config=True)


class CodeflowResponse(Configurable):
    """How results are shown."""

    format = CaselessStrEnum(
        ["markdown", "json", "plain"], default_value="markdown", help="Output format."
    ).tag(config=True)
    include_improvement_history = Bool(True, help="Show every attempt.").tag(config=True)
    show_performance_metrics = Bool(True, help="Show timings and tokens.").tag(config=True)


class CodeflowCache(Configurable):
    """The recorded-response cache."""

    mode = CaselessStrEnum(
        ["rw", "replay", "off"], default_value="rw", help="rw, replay (never call), or off."
    ).tag(config=True)
    dir = Unicode("", help="Cache directory (default: .codeflow/cache of the work dir).").tag(
        config=True
    )


SECTIONS: dict[str, type[Configurable]] = {
    "generation": CodeflowGeneration,
    "execution": CodeflowExecution,
    "improvement": CodeflowImprovement,
    "response": CodeflowResponse,
    "cache": CodeflowCache,
}

ALL_CLASSES: tuple[type[Configurable], ...] = tuple(SECTIONS.values())


@dataclass
class Settings:
    """One validated instance of every section."""

    generation: CodeflowGeneration
    execution: CodeflowExecution
    improvement: CodeflowImprovement
    response: CodeflowResponse
    cache: CodeflowCache

    @property
    def model(self) -> str:
        return self.generation.model or _default_model()

    def as_dict(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            out[name] = {k: getattr(section, k) for k in section.trait_names(config=True)}
        return out


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class _Invalid(ValueError):
    """A value does not fit a setting; the text says why and what would (no key yet)."""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _allowed(trait: Any) -> str:
    values = getattr(trait, "values", None)
    if values:
        return "one of " + ", ".join(str(v) for v in values)
    if isinstance(trait, Int | Float):
        lo, hi = trait.min, trait.max
        lo = lo if lo is not None and math.isfinite(lo) else None
        hi = hi if hi is not None and math.isfinite(hi) else None
        kind = "an integer" if isinstance(trait, Int) else "a number"
        if lo is not None and hi is not None:
            return f"{kind} from {_number(lo)} to {_number(hi)}"
        if lo is not None:
            return f"{kind} of at least {_number(lo)}"
        if hi is not None:
            return f"{kind} of at most {_number(hi)}"
        return kind
    if isinstance(trait, Bool):
        return "true or false"
    if isinstance(trait, Size):
        return "a size such as 512m or 2g, from 32m to 1t"
    if isinstance(trait, Url):
        return "an http:// or https:// URL (or nothing)"
    if isinstance(trait, List):
        return "a list of strings"
    return "a string"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest option, or nothing when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: a huge one is cut, so the message stays one line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _reason(trait: Any, value: Any, shown: Any) -> str:
    """Why `value` (typed as `shown`) does not fit `trait`, and what would."""
    allowed = _allowed(trait)
    if (
        isinstance(trait, Int | Float)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{_show(shown)} is not a finite number; expected {allowed}"
        if isinstance(trait, Int) and isinstance(value, float) and not value.is_integer():
            return f"{_show(shown)} is not a whole number; expected {allowed}"
        return f"{_show(shown)} is out of range; expected {allowed}"
    hint = ""
    values = getattr(trait, "values", None)
    if values and isinstance(value, str):
        hint = did_you_mean(value.strip().lower(), [str(v) for v in values])
    return f"{_show(shown)} is not allowed; expected {allowed}{hint}"


def _coerce(trait: Any, value: Any) -> Any:
    """Turn text from a file or command line into the trait's type, or say what is allowed."""
    if isinstance(value, str):
        text = value.strip()
        if isinstance(trait, Bool):
            low = text.lower()
            if low in TRUE_WORDS:
                return True
            if low in FALSE_WORDS:
                return False
            raise _Invalid(f"{_show(value)} is not allowed; expected {_allowed(trait)}")
        if isinstance(trait, Int):
            try:
                return int(text)
            except ValueError:
                raise _Invalid(
                    f"{_show(value)} is not a whole number; expected {_allowed(trait)}"
                ) from None
        if isinstance(trait, Float):
            try:
                return float(text)
            except ValueError:
                raise _Invalid(
                    f"{_show(value)} is not a number; expected {_allowed(trait)}"
                ) from None
        if isinstance(trait, List):
            return [p.strip() for p in text.split(",") if p.strip()]
        return text
    if (
        isinstance(trait, Unicode)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return str(value)
    return value


def _all_keys() -> list[str]:
    return [
        f"{section}.{name}"
        for section, cls in SECTIONS.items()
        for name in sorted(cls.class_traits(config=True))
    ]


def _split_key(key: str) -> tuple[str, str]:
    if key.startswith(SEED_PREFIX):
        key = key[len(SEED_PREFIX) :]
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in SECTIONS:
        return parts[0], parts[1]
    known = _all_keys()
    holders = [k for k in known if k.endswith("." + key)]  # `max_attempts` without a section
    hint = f" (did you mean {holders[0]!r}?)" if holders else did_you_mean(key, known)
    raise ConfigError(
        f"unknown setting {_show(key)}{hint}; settings look like SECTION.NAME with SECTION "
        "one of " + ", ".join(SECTIONS)
    )


def _section_trait(section: str, name: str, key: str) -> Any:
    traits = SECTIONS[section].class_traits(config=True)
    if name not in traits:
        import difflib

        close = difflib.get_close_matches(name, list(traits), n=1, cutoff=0.6)
        hint = f" (did you mean '{section}.{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown setting {_show(key)}{hint}; {section} has: " + ", ".join(sorted(traits))
        )
    return traits[name]


def _checked(key: str, value: Any, *, from_text: bool) -> tuple[str, str, Any]:
    """(class name, trait name, value as the trait keeps it); raises _Invalid or ConfigError."""
    section, name = _split_key(key)
    trait = _section_trait(section, name, key)
    coerced = _coerce(trait, value) if from_text else value
    probe = SECTIONS[section]()
    try:
        setattr(probe, name, coerced)
    except TraitError:
        raise _Invalid(_reason(trait, coerced, value)) from None
    return SECTIONS[section].__name__, name, getattr(probe, name)


def validate_value(key: str, value: Any) -> tuple[str, str, Any]:
    """Check one `section.name` value from a file or command line (text is converted);
    returns (class name, trait name, coerced value)."""
    try:
        return _checked(key, value, from_text=True)
    except _Invalid as exc:
        raise ConfigError(f"{key}: {exc}") from None


def check_value(key: str, value: Any, label: str) -> Any:
    """Check a Python value (an API argument, a batch JSON field) against setting `key`.

    No text conversion: `"3"` or `True` where a number is wanted is a mistake in a program,
    not a spelling on a command line. The message names `label`, the caller's own name."""
    try:
        return _checked(key, value, from_text=False)[2]
    except _Invalid as exc:
        raise UsageError(f"{label}: {exc}") from None


def option_type(key: str) -> Callable[[str], Any]:
    """An argparse `type` for an option that sets `key`: the option and the config file share
    one set of bounds and one wording (`--timeout nan`, `--max-attempts 0` are refused)."""

    def parse(text: str) -> Any:
        try:
            return _checked(key, text, from_text=True)[2]
        except _Invalid as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = key
    return parse


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`improvement.max_attempts=5` -> {"improvement.max_attempts": "5"} (validated later)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.name=value")
        key, _, value = item.partition("=")
        key = key.strip()
        if key.startswith(SEED_PREFIX):
            key = key[len(SEED_PREFIX) :]
        if key == "enabled":  # the seeds' flows.code_execution.enabled=true
            continue
        out[key] = value
    return out


# -- user files and requests ------------------------------------------------------------------


def decode_utf8(data: bytes, source: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); otherwise a usage error that names
    `source` and the first bad byte, so the user can find it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{source}: not UTF-8 text (byte offset {exc.start}, line {line}: {exc.reason}); "
            "save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_text_file(path: Path, what: str) -> str:
    """A user's text file as UTF-8; a missing file, a folder or bad bytes is a usage error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return decode_utf8(data, str(path))


def check_request(text: str, *, limit: int, where: str = "") -> str:
    """The request as given, if it can be sent: not blank, plain text, within the limit.

    Nothing is echoed back: a refused request stays where it came from (the argument, the
    file, the pipe, the cell) and `where` tells the user which.
    """
    prefix = f"{where}: " if where else ""
    if not text.strip():
        raise UsageError(
            f"{prefix}the request is empty: say in plain words what the code should do"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # bytes that were not UTF-8, smuggled in as surrogates
        offset = len(text[: exc.start].encode("utf-8"))
        raise UsageError(
            f"{prefix}the request is not UTF-8 text (byte offset {offset}); send UTF-8"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise UsageError(
            f"{prefix}the request contains a NUL character (at character {nul}); "
            "a request is plain text"
        )
    size = len(text.strip())  # the ends are dropped before sending anyway
    if size > limit:
        raise UsageError(
            f"{prefix}the request is {size} characters long; the limit is {limit} "
            f"(generation.max_request_chars, at most {MAX_REQUEST_CHARS}): shorten it, "
            "or raise the limit"
        )
    return text


# -- config files -----------------------------------------------------------------------------


def _key_lines(text: str) -> dict[str, int]:
    """The line of every mapping key (by dotted path, four levels deep) for messages."""
    import yaml

    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return lines

    def walk(node: Any, prefix: str, depth: int) -> None:
        if depth > 4 or not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = f"{prefix}{key_node.value}"
                lines.setdefault(path, key_node.start_mark.line + 1)
                walk(value_node, path + ".", depth + 1)

    walk(root, "", 0)
    return lines


def _where(source: str, lines: Mapping[str, int] | None, path: str) -> str:
    line = (lines or {}).get(path)
    return f"{source}:{line}" if line else source


def yaml_to_flat(data: Any, source: str, lines: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Flatten the seeds' YAML shape (also nested under flows.code_execution)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    base = ""
    flows = data.get("flows")
    if isinstance(flows, Mapping) and isinstance(flows.get("code_execution"), Mapping):
        data = flows["code_execution"]
        base = SEED_PREFIX
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if section in ("enabled", "flows"):
            continue
        where = _where(source, lines, f"{base}{section}")
        if section not in SECTIONS:
            raise ConfigError(
                f"{where}: unknown section {section!r}{did_you_mean(str(section), SECTIONS)}; "
                "sections are " + ", ".join(SECTIONS)
            )
        if values is None:  # a section whose keys are all commented out
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: section {section!r} must be a mapping of settings")
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "codeflow"


def find_config_file(work_dir: Path) -> Path | None:
    """`codeflow.yaml` in the work dir wins over the user config dir.

    Anything at those names counts, even a folder: it is reported rather than silently
    skipped, since the user meant it as configuration.
    """
    for folder in (work_dir, user_config_dir()):
        for name in CONFIG_FILENAMES:
            path = folder / name
            if path.exists():
                return path
    return None


def _load_yaml(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's settings, flat, and for each key where it stands (`file:line`)."""
    import yaml  # only when there is a file: its import costs a noticeable moment

    text = read_text_file(path, "config file")
    try:
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:  # a control character, e.g. NUL
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            f"{path}:{line}: not valid YAML: character U+{char:04X} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    lines = _key_lines(text)
    flat = yaml_to_flat({} if data is None else data, str(path), lines)
    prefix = SEED_PREFIX if any(k.startswith(SEED_PREFIX) for k in lines) else ""
    return flat, {key: _where(str(path), lines, prefix + key) for key in flat}


def load_yaml(path: Path) -> dict[str, Any]:
    return _load_yaml(path)[0]


def build_config(
    *,
    base: Config | None = None,
    config_file: Path | None = None,
    work_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge, lowest first: `base` (e.g. the shell's config), the YAML file, overrides."""
    cfg = Config()
    if base is not None:
        cfg.merge(base)
    path = config_file or find_config_file(work_dir or Path.cwd())
    if path is not None:
        flat, where = _load_yaml(path)
        for key, value in flat.items():
            try:
                cls_name, name, coerced = validate_value(key, value)
            except ConfigError as exc:
                raise ConfigError(f"{where[key]}: {exc}") from None
            cfg[cls_name][name] = coerced
    for key, value in (overrides or {}).items():
        cls_name, name, coerced = validate_value(key, value)
        cfg[cls_name][name] = coerced
    return cfg


def make_settings(config: Config | None = None, parent: Configurable | None = None) -> Settings:
    """Instantiate every section from a Config (or from a parent such as the IPython shell)."""
    kwargs: dict[str, Any] = {"parent": parent} if parent is not None else {}
    if config is not None:
        kwargs["config"] = config
    try:
        return Settings(**{name: cls(**kwargs) for name, cls in SECTIONS.items()})  # type: ignore[arg-type]
    except TraitError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def load_settings(
    overrides: Iterable[str] = (),
    *,
    config_file: Path | None = None,
    work_dir: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    base: Config | None = None,
) -> Settings:
    """Settings for a front door: file, then `key=value` overrides, then explicit options."""
    flat = parse_overrides(overrides)
    if extra:
        flat.update({k: v for k, v in extra.items() if v is not None})
    cfg = build_config(base=base, config_file=config_file, work_dir=work_dir, overrides=flat)
    return make_settings(cfg)
