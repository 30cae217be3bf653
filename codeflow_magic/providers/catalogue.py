"""codeflow's own table of Anthropic models: the default, and what replaced retired ones.

The table is versioned with codeflow, never read from the installed SDK, so the default (and
with it every cache key of a request that names no model) is the same whichever SDK is
installed. The SDK only adds a warning, through its own public behaviour, when a request is
sent with a model it calls deprecated (see `providers.anthropic`). Pure: no imports beyond the
standard library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens. Anthropic bills a prompt-cache write at 1.25 times the
    input price and a read at a tenth of it, which the defaults follow."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, written: int = 0, read: int = 0) -> float:
        """The cost of one call; `input_tokens` counts every prompt token, cached ones too."""
        write_price = self.input * 1.25 if self.cache_write is None else self.cache_write
        read_price = self.input * 0.1 if self.cache_read is None else self.cache_read
        plain = max(0, input_tokens - written - read)
        total = (
            plain * self.input
            + written * write_price
            + read * read_price
            + output_tokens * self.output
        )
        return total / 1_000_000


PRICES: dict[str, Price] = {
    "claude-opus-5-5": Price(5.0, 25.0),
    "claude-sonnet-5-5": Price(3.0, 15.0),
    "claude-haiku-5-5": Price(1.0, 5.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-0": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku-latest": Price(0.8, 4.0),
}
"""List prices of Anthropic models, versioned with codeflow like the table above; a model not
named here (a local or OpenAI-compatible one) costs 0 unless `generation.prices` names it."""


def parse_price(entry: str) -> tuple[str, Price]:
    """`model=input/output[/cache_write/cache_read]` (dollars per million tokens)."""
    name, sep, numbers = entry.partition("=")
    fields = numbers.split("/")
    if not sep or not name.strip() or len(fields) not in (2, 4):
        raise ValueError(
            f"{entry!r} is not MODEL=INPUT/OUTPUT or MODEL=INPUT/OUTPUT/CACHE_WRITE/CACHE_READ "
            "(dollars per million tokens)"
        )
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"{entry!r}: prices must be numbers") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{entry!r}: prices must be finite and not negative")
    price = Price(*values[:2]) if len(values) == 2 else Price(*values)
    return name.strip(), price


def price_for(model: str, overrides: tuple[str, ...] | list[str] = ()) -> Price | None:
    """The price of `model` (a setting first, then the table; a dated name as its alias), or
    None when it has none."""
    name = model.split(":", 1)[1] if model.startswith(("anthropic:", "openai:")) else model
    for entry in overrides:
        key, price = parse_price(entry)
        if key in (model, name):
            return price
    return PRICES.get(name) or PRICES.get(_DATED.sub("", name))
