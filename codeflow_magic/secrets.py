"""Keeping the user's credentials away from generated code, the model and the records.

Generated code runs with an environment from `scrub_env`, so it cannot read API keys even if it
tries; whatever still leaks into outputs (a key typed into a notebook, a token in a config file)
is replaced by `Redactor` before outputs reach the model, the cache, the report or the record.
Everything here is pure: no I/O beyond the mapping it is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME_PATTERNS: tuple[str, ...] = (
    r".*_API_KEY",
    r".*APIKEY.*",
    r".*_ACCESS_KEY(_ID)?",
    r".*_PRIVATE_KEY",
    r".*_SECRET_KEY",
    r".*_KEY",
    r".*TOKEN.*",
    r".*SECRET.*",
    r".*PASSWORD.*",
    r".*PASSWD.*",
    r".*PASSPHRASE.*",
    r".*CREDENTIAL.*",
    r".*_AUTH",
    r".*COOKIE.*",
    r".*SESSION_KEY.*",
    r".*_DSN",
    r".*DATABASE_URL",
    r"ANTHROPIC_.*",
    r"OPENAI_.*",
    r"CLAUDE_.*",
    r"AWS_SECRET_ACCESS_KEY",
    r"AWS_SESSION_TOKEN",
    r"GITHUB_TOKEN",
    r"GH_TOKEN",
    r"HF_TOKEN",
    r"HUGGING_FACE_HUB_TOKEN",
    r"JPY_API_TOKEN",
    r"JUPYTERHUB_API_TOKEN",
    r"NPM_TOKEN",
    r"PYPI_TOKEN",
    r"TWINE_PASSWORD",
    r"GOOGLE_APPLICATION_CREDENTIALS",
    r"AZURE_CLIENT_SECRET",
    r"SSH_AUTH_SOCK",
)
"""Full-match, case-insensitive patterns of environment variable names that hold secrets.

`ANTHROPIC_*` and `OPENAI_*` are dropped whole (base URLs included): generated code has no
business talking to the model. Bare `*_KEY` names count only with a word that makes them
Any `*_KEY` counts (`STRIPE_KEY`, `SORT_KEY` alike): a name cannot tell a vendor's key from a
setting, and a kernel missing a harmless variable costs far less than one holding a key.
"""

_NAME_RE = re.compile("|".join(f"(?:{p})" for p in SECRET_NAME_PATTERNS), re.IGNORECASE)

HARMLESS_NAMES: frozenset[str] = frozenset({"TOKENIZERS_PARALLELISM"})
"""Names the patterns would catch that hold settings, not secrets."""

MIN_SECRET_LEN = 8
"""Values shorter than this are not redacted: replacing `1` or `true` everywhere helps no one."""


def is_secret_name(name: str, extra_names: Iterable[str] = ()) -> bool:
    """True when an environment variable of this name should never reach generated code."""
    if name.upper() in {n.upper() for n in extra_names}:
        return True
    if name.upper() in HARMLESS_NAMES:
        return False
    return _NAME_RE.fullmatch(name) is not None


def scrub_env(environ: Mapping[str, str], extra_names: Iterable[str] = ()) -> dict[str, str]:
    """A copy of `environ` without secret variables (by name pattern plus `extra_names`)."""
    extra = set(extra_names)
    return {k: v for k, v in environ.items() if not is_secret_name(k, extra)}


def _secret_items(environ: Mapping[str, str], extra_names: Iterable[str]) -> list[tuple[str, str]]:
    extra = set(extra_names)
    items = [
        (k, v)
        for k, v in environ.items()
        if is_secret_name(k, extra) and isinstance(v, str) and len(v) >= MIN_SECRET_LEN
    ]
    return items


def secret_values(environ: Mapping[str, str], extra_names: Iterable[str] = ()) -> list[str]:
    """Values of the secret variables in `environ`, skipping ones too short to be credentials."""
    seen: dict[str, None] = {}
    for _, value in _secret_items(environ, extra_names):
        seen.setdefault(value, None)
    return list(seen)


class Redactor:
    """Replaces known secret values in text and in notebook outputs.

    One alternation regex (longest value first, so a value that contains another is replaced
    whole) keeps redaction a single pass over the text however many secrets there are.
    """

    def __init__(self, values: Iterable[str] | Mapping[str, str] = ()) -> None:
        labels: dict[str, str] = {}
        if isinstance(values, Mapping):
            for name, value in values.items():
                if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
                    labels.setdefault(value, f"[REDACTED:{name}]")
        else:
            for value in values:
                if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
                    labels.setdefault(value, "[REDACTED]")
        self._labels = labels
        ordered = sorted(labels, key=len, reverse=True)
        self._regex: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, extra_names: Iterable[str] = ()
    ) -> Redactor:
        """A redactor for the secret variables of `environ` (default: this process's)."""
        env = os.environ if environ is None else environ
        return cls(dict(_secret_items(env, extra_names)))

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def __bool__(self) -> bool:
        return self._regex is not None

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by `[REDACTED:NAME]` (or `[REDACTED]`)."""
        if self._regex is None or not text:
            return text
        labels = self._labels
        return self._regex.sub(lambda m: labels[m.group(0)], text)

    def _redact_text(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact(v) if isinstance(v, str) else v for v in value]
        return value

    def redact_output(self, output: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of one nbformat output; images and other binary data are untouched."""
        out = dict(output)
        if self._regex is None:
            return out
        kind = out.get("output_type")
        if kind == "stream":
            out["text"] = self._redact_text(out.get("text", ""))
        elif kind == "error":
            out["ename"] = self._redact_text(out.get("ename", ""))
            out["evalue"] = self._redact_text(out.get("evalue", ""))
            out["traceback"] = self._redact_text(list(out.get("traceback", [])))
        if isinstance(out.get("data"), Mapping):
            data = dict(out["data"])
            for mime, value in data.items():
                if mime.startswith("text/") or mime.endswith("+json") or mime.endswith("/json"):
                    data[mime] = self.redact_obj(value)
            out["data"] = data
        return out

    def redact_obj(self, obj: Any) -> Any:
        """A redacted copy of a JSON-like structure (strings in dicts, lists and tuples)."""
        if self._regex is None:
            return obj
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {
                (self.redact(k) if isinstance(k, str) else k): self.redact_obj(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(v) for v in obj)
        return obj
