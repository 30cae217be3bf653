"""Configuration: traitlets Configurables, the seeds' YAML sections and dotted overrides.

Each YAML section (`generation`, `execution`, `improvement`, `response`, `cache`) is one
Configurable class, so the same setting can come from `ipython_config.py`
(`c.CodeflowImprovement.max_attempts = 5`), `%config`, `codeflow.yaml` or
`improvement.max_attempts=5` on the command line, and is validated in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from traitlets import Bool, CaselessStrEnum, Float, Int, List, TraitError, Unicode
from traitlets.config import Config, Configurable

from .errors import ConfigError
from .models import FOCUSES

SEED_PREFIX = "flows.code_execution."
CONFIG_FILENAMES = ("codeflow.yaml", "codeflow.yml")


def _default_model() -> str:
    from .providers import default_model

    return default_model()


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
    temperature = Float(0.2, min=0.0, max=1.0, help="Sampling temperature.").tag(config=True)
    max_tokens = Int(4096, min=64, help="Largest reply the model may write.").tag(config=True)
    timeout = Float(120.0, min=1.0, help="Seconds to wait for one model call.").tag(config=True)
    base_url = Unicode("", help="Base URL for the openai-compatible provider.").tag(config=True)
    state_chars = Int(
        2000, min=0, help="Budget for the kernel-state summary put into prompts."
    ).tag(config=True)


class CodeflowExecution(Configurable):
    """Where and how generated code runs."""

    backend = CaselessStrEnum(
        ["kernel", "inline", "sandbox", "docker", "gateway"],
        default_value="kernel",
        help="Execution backend.",
    ).tag(config=True)
    kernel_name = Unicode("python3", help="Jupyter kernel to start.").tag(config=True)
    timeout = Float(60.0, min=0.1, help="Seconds before a run is interrupted.").tag(config=True)
    interrupt_grace = Float(
        3.0, min=0.1, help="Seconds an interrupted run gets before the kernel is restarted."
    ).tag(config=True)
    max_output_chars = Int(
        200_000, min=1000, help="Cap on captured output per execution (head and tail kept)."
    ).tag(config=True)
    prompt_output_chars = Int(4000, min=200, help="Cap on output text sent back to the model.").tag(
        config=True
    )
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
    memory_limit = Unicode("1g", help="Memory limit for sandbox and docker backends.").tag(
        config=True
    )
    cpu_limit = Float(1.0, min=0.05, help="CPU limit (cores) for sandbox and docker.").tag(
        config=True
    )
    pids_limit = Int(128, min=8, help="Process limit for sandbox and docker.").tag(config=True)
    work_dir = Unicode("", help="Working directory of the kernel (default: current).").tag(
        config=True
    )
    execute_at_fence = Bool(
        True,
        help="Start running the code as soon as the streamed reply closes its code block.",
    ).tag(config=True)
    gateway_url = Unicode("", help="Jupyter Kernel Gateway URL for --backend gateway.").tag(
        config=True
    )
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
    max_attempts = Int(3, min=1, max=50, help="Attempts per request, first one included.").tag(
        config=True
    )
    model = Unicode("", help="Model for fixes (default: the generation model).").tag(config=True)
    focus = CaselessStrEnum(
        list(FOCUSES), default_value="fix_errors", help="What improvement aims at."
    ).tag(config=True)
    verify = Bool(False, help="Ask the model to score the result (quality gate).").tag(config=True)
    quality_threshold = Float(7.0, min=0.0, max=10.0, help="Lowest passing score.").tag(config=True)
    token_budget = Int(
        200_000, min=0, help="Total tokens one request may spend (0: no limit)."
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


def _allowed(trait: Any) -> str:
    values = getattr(trait, "values", None)
    if values:
        return "one of " + ", ".join(str(v) for v in values)
    if isinstance(trait, Int | Float):
        lo, hi = getattr(trait, "min", None), getattr(trait, "max", None)
        kind = "an integer" if isinstance(trait, Int) else "a number"
        if lo is not None and hi is not None:
            return f"{kind} from {lo} to {hi}"
        if lo is not None:
            return f"{kind} of at least {lo}"
        return kind
    if isinstance(trait, Bool):
        return "true or false"
    if isinstance(trait, List):
        return "a list of strings"
    return "a string"


def _coerce(trait: Any, value: Any, key: str) -> Any:
    """Turn text from a file or command line into the trait's type, or say what is allowed."""
    if isinstance(value, str):
        text = value.strip()
        if isinstance(trait, Bool):
            low = text.lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0"):
                return False
            raise ConfigError(f"{key}: {value!r} is not allowed; expected {_allowed(trait)}")
        if isinstance(trait, Int):
            try:
                return int(text)
            except ValueError:
                raise ConfigError(
                    f"{key}: {value!r} is not allowed; expected {_allowed(trait)}"
                ) from None
        if isinstance(trait, Float):
            try:
                return float(text)
            except ValueError:
                raise ConfigError(
                    f"{key}: {value!r} is not allowed; expected {_allowed(trait)}"
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


def _split_key(key: str) -> tuple[str, str]:
    if key.startswith(SEED_PREFIX):
        key = key[len(SEED_PREFIX) :]
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise ConfigError(
            f"unknown setting {key!r}; settings look like SECTION.NAME with SECTION one of "
            + ", ".join(SECTIONS)
        )
    return parts[0], parts[1]


def _section_trait(section: str, name: str, key: str) -> Any:
    cls = SECTIONS[section]
    traits = cls.class_traits(config=True)
    if name not in traits:
        raise ConfigError(f"unknown setting {key!r}; {section} has: " + ", ".join(sorted(traits)))
    return traits[name]


def validate_value(key: str, value: Any) -> tuple[str, str, Any]:
    """Check one `section.name` value; returns (class name, trait name, coerced value)."""
    section, name = _split_key(key)
    trait = _section_trait(section, name, key)
    coerced = _coerce(trait, value, key)
    probe = SECTIONS[section]()
    try:
        setattr(probe, name, coerced)
    except TraitError:
        raise ConfigError(f"{key}: {value!r} is not allowed; expected {_allowed(trait)}") from None
    return SECTIONS[section].__name__, name, getattr(probe, name)


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


def yaml_to_flat(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Flatten the seeds' YAML shape (also nested under flows.code_execution)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    flows = data.get("flows")
    if isinstance(flows, Mapping) and isinstance(flows.get("code_execution"), Mapping):
        data = flows["code_execution"]
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if section in ("enabled", "flows"):
            continue
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section {section!r}; sections are " + ", ".join(SECTIONS)
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "codeflow"


def find_config_file(work_dir: Path) -> Path | None:
    """`codeflow.yaml` in the work dir wins over the user config dir."""
    for folder in (work_dir, user_config_dir()):
        for name in CONFIG_FILENAMES:
            path = folder / name
            if path.is_file():
                return path
    return None


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return yaml_to_flat(data, str(path))


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
    layers: list[Mapping[str, Any]] = []
    if path is not None:
        layers.append(load_yaml(path))
    if overrides:
        layers.append(overrides)
    for layer in layers:
        for key, value in layer.items():
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
