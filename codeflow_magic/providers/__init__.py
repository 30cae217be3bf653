"""Model providers: Anthropic (default), OpenAI-compatible servers, and the response cache.

`default_model` reads the installed SDK's own model list so that the default follows the SDK
rather than going stale in our code.
"""

from __future__ import annotations

from functools import lru_cache

FALLBACK_MODEL = "claude-sonnet-4-6"


@lru_cache(maxsize=1)
def default_model() -> str:
    """The newest Sonnet the installed SDK knows and does not list as deprecated."""
    import typing

    try:
        from anthropic.resources.messages.messages import DEPRECATED_MODELS
        from anthropic.types.model_param import ModelParam
    except ImportError:  # an SDK without these tables: keep a known-good name
        return FALLBACK_MODEL
    names: list[str] = []
    for arg in typing.get_args(ModelParam):
        names.extend(a for a in typing.get_args(arg) if isinstance(a, str))
    for name in names:
        if "sonnet" in name and name not in DEPRECATED_MODELS and not name[-8:].isdigit():
            return name
    return FALLBACK_MODEL


def split_model(spec: str) -> tuple[str, str]:
    """`anthropic:claude-x` -> ("anthropic", "claude-x"); a bare name is Anthropic's."""
    if ":" in spec:
        provider, _, model = spec.partition(":")
        return provider.strip().lower(), model.strip()
    return "anthropic", spec.strip()
