"""codeflow's own table of Anthropic models: the default, and what replaced retired ones.

The table is versioned with codeflow, never read from the installed SDK, so the default (and
with it every cache key of a request that names no model) is the same whichever SDK is
installed. The SDK only adds a warning, through its own public behaviour, when a request is
sent with a model it calls deprecated (see `providers.anthropic`). Pure: no imports beyond the
standard library.
"""

from __future__ import annotations

import re

DEFAULT_MODEL = "claude-sonnet-5-5"
"""The model of a request that names none: the newest Sonnet when this version was made."""

DEFAULT_KEY_MODEL = "(default)"
"""What the cache key holds for a request that names no model: a recorded notebook replays
the model it was recorded with, whatever the default of the codeflow that replays it."""

CURRENT: dict[str, str] = {
    "sonnet": "claude-sonnet-5-5",
    "opus": "claude-opus-5-5",
    "haiku": "claude-haiku-5-5",
}
"""The current model of each family, which a retired model of that family is replaced by."""

REPLACED: dict[str, str] = {
    "claude-sonnet-5": "claude-sonnet-5-5",
    "claude-sonnet-4-6": "claude-sonnet-5-5",
    "claude-sonnet-4-5": "claude-sonnet-5-5",
    "claude-sonnet-4-0": "claude-sonnet-5-5",
    "claude-3-7-sonnet-latest": "claude-sonnet-5-5",
    "claude-3-5-sonnet-latest": "claude-sonnet-5-5",
    "claude-opus-5": "claude-opus-5-5",
    "claude-opus-4-8": "claude-opus-5-5",
    "claude-opus-4-7": "claude-opus-5-5",
    "claude-opus-4-6": "claude-opus-5-5",
    "claude-opus-4-5": "claude-opus-5-5",
    "claude-opus-4-1": "claude-opus-5-5",
    "claude-opus-4-0": "claude-opus-5-5",
    "claude-3-opus-latest": "claude-opus-5-5",
    "claude-haiku-4-5": "claude-haiku-5-5",
    "claude-3-5-haiku-latest": "claude-haiku-5-5",
}
"""Older models and the current one that takes their place (dated names map through their
undated alias)."""

_DATED = re.compile(r"-(\d{8})$")


def replacement(model: str) -> str | None:
    """The model codeflow suggests instead of `model`, or None when it knows no better one.

    A dated name (`claude-opus-4-5-20251101`) is looked up by its alias; an unknown old name
    of a known family gets the family's current model; a current model has no replacement.
    """
    name = _DATED.sub("", model.strip())
    if name in CURRENT.values():
        return None
    if name in REPLACED:
        return REPLACED[name]
    for family, current in CURRENT.items():
        if f"-{family}" in name:
            return current
    return None


def deprecation_notice(model: str, sdk_message: str, *, named: bool) -> str:
    """The warning shown when the installed SDK says `model` is deprecated.

    `sdk_message` is the first line of what the SDK said (it carries the end-of-life date).
    """
    first = sdk_message.strip().splitlines()[0] if sdk_message.strip() else ""
    said = f" ({first})" if first else ""
    better = replacement(model)
    where = "set generation.model (or --model)"
    if better is not None:
        return (
            f"the installed anthropic SDK says model {model!r} is deprecated{said}; "
            f"codeflow's table names {better!r} as its replacement: {where} to {better!r}"
        )
    whose = "codeflow's default model" if not named else "the model"
    return (
        f"the installed anthropic SDK says {whose} {model!r} is deprecated{said}; this "
        f"version of codeflow knows no newer one: {where} to a current model, or update codeflow"
    )
