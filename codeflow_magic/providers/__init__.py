"""Model providers: Anthropic (default), OpenAI-compatible servers, and the response cache.

The default model is codeflow's own (`catalogue`), so a recorded notebook replays the same
whichever SDK is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import UsageError
from . import catalogue
from .base import Provider
from .sdk import (
    CLIENTS,
    SDK_MODULES,
    ClientPool,
    aload_sdk,
    load_sdk,
    sdk_loading,
    start_import,
)

if TYPE_CHECKING:
    from ..config import Settings


def default_model() -> str:
    """The model of a request that names none: codeflow's own, never the installed SDK's."""
    return catalogue.DEFAULT_MODEL


def split_model(spec: str) -> tuple[str, str]:
    """`anthropic:claude-x` -> ("anthropic", "claude-x"); a bare name is Anthropic's."""
    if ":" in spec:
        provider, _, model = spec.partition(":")
        return provider.strip().lower(), model.strip()
    return "anthropic", spec.strip()


PROVIDERS = ("anthropic", "openai")
CACHE_MODES = ("off", "replay", "rw")

# -- the SDKs, imported off the request path -----------------------------------------------------


def preload_sdk(provider: str = "anthropic", *, warm: bool = True) -> Future[ModuleType]:
    """Start importing `provider`'s SDK on its thread, with the provider's warm-up (`warm`):
    see `sdk.start_import`."""
    if provider not in SDK_MODULES:
        raise ValueError(f"no SDK for provider {provider!r}")
    return start_import(provider, _warmer(provider) if warm else None)


def _warmer(provider: str) -> Callable[[ModuleType], None] | None:
    """The provider's warm-up, resolved on the calling thread: the import thread imports
    nothing of codeflow's, only the SDK."""
    if provider == "anthropic":
        from .anthropic import warm_up

        return warm_up
    return None


def providers_of(settings: Settings, *, cache_mode: str | None = None) -> list[str]:
    """The providers whose SDK a run with these settings may need (none in replay mode)."""
    try:
        if resolve_cache_mode(cache_mode, settings.cache.mode) == "replay":
            return []
    except UsageError:
        return []
    found: list[str] = []
    for spec in (settings.model, settings.improvement.model):
        if not spec:
            continue
        name, _ = split_model(spec)
        if name in SDK_MODULES and name not in found:
            found.append(name)
    return found


def preload_for(settings: Settings, *, cache_mode: str | None = None) -> None:
    """Start importing every SDK a run with these settings may need."""
    for name in providers_of(settings, cache_mode=cache_mode):
        preload_sdk(name)


def resolve_cache_mode(explicit: str | None, configured: str) -> str:
    """`explicit` (an option) wins over `CODEFLOW_CACHE`, which wins over the settings."""
    for source, value in (
        ("cache mode", explicit),
        ("CODEFLOW_CACHE", os.environ.get("CODEFLOW_CACHE")),
        ("cache.mode", configured),
    ):
        if value is None or not value.strip():
            continue
        mode = value.strip().lower()
        if mode not in CACHE_MODES:
            raise UsageError(
                f"{source}: {value!r} is not allowed; expected one of " + ", ".join(CACHE_MODES)
            )
        return mode
    return "rw"


def resolve_cache_dir(explicit: Path | None, configured: str, work_dir: Path) -> Path:
    if explicit is not None:
        return explicit
    if configured.strip():
        path = Path(configured.strip()).expanduser()
        return path if path.is_absolute() else work_dir / path
    return work_dir / ".codeflow" / "cache"


def make_provider(
    settings: Settings,
    *,
    work_dir: Path,
    cache_dir: Path | None = None,
    cache_mode: str | None = None,
    model: str | None = None,
) -> Provider:
    """The provider for `settings.model` (or `model`), behind the recorded-response cache.

    In replay mode the real provider is never built, so no key or SDK is needed. A request
    that names no model is cached under the default's placeholder, not today's default name.
    """
    from .cache import CachedProvider

    spec = model or settings.model
    named = bool(model or settings.generation.model)
    provider_name, model_name = split_model(spec)
    if provider_name not in PROVIDERS:
        raise UsageError(
            f"unknown model provider {provider_name!r} in {spec!r}; use one of: "
            + ", ".join(PROVIDERS)
        )
    if not model_name:
        raise UsageError(f"model {spec!r} names no model after {provider_name!r}:")
    mode = resolve_cache_mode(cache_mode, settings.cache.mode)
    folder = resolve_cache_dir(cache_dir, settings.cache.dir, work_dir)
    inner: Provider | None = None
    if mode != "replay":
        timeout = float(settings.generation.timeout)
        if provider_name == "anthropic":
            from .anthropic import AnthropicProvider

            inner = AnthropicProvider(model_name, timeout=timeout, named=named)
        else:
            from .openai_compat import OpenAICompatProvider

            inner = OpenAICompatProvider(
                model_name, base_url=settings.generation.base_url or None, timeout=timeout
            )
    return CachedProvider(inner, folder, mode, name=provider_name, model=model_name, named=named)


__all__ = [
    "CACHE_MODES",
    "CLIENTS",
    "PROVIDERS",
    "SDK_MODULES",
    "ClientPool",
    "Provider",
    "aload_sdk",
    "default_model",
    "load_sdk",
    "make_provider",
    "preload_for",
    "preload_sdk",
    "providers_of",
    "resolve_cache_dir",
    "resolve_cache_mode",
    "sdk_loading",
    "split_model",
]
