"""Model providers: Anthropic (default), OpenAI-compatible servers, and the response cache.

The default model is codeflow's own (`catalogue`), so a recorded notebook replays the same
whichever SDK is installed.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from . import catalogue
from .base import Provider

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


@dataclass
class _PoolEntry:
    loop: weakref.ReferenceType[asyncio.AbstractEventLoop]
    client: Any
    holders: weakref.WeakSet[object] = field(default_factory=weakref.WeakSet)


class ClientPool:
    """One SDK client per (settings, event loop) for the whole process.

    An async HTTP client is bound to the loop it first ran on, so a client is shared by every
    provider using the same settings on the same loop, and a new one is made for a new loop.
    Entries of loops that are gone or closed are dropped (their sockets die with them); a client
    is closed when the last provider holding it calls `release` on its loop.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Hashable, int], _PoolEntry] = {}
        self._lock = threading.Lock()

    def acquire(self, key: Hashable, holder: object, factory: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._purge()
            full = (key, id(loop))
            entry = self._entries.get(full)
            if entry is None or entry.loop() is not loop:
                entry = _PoolEntry(weakref.ref(loop), factory())
                self._entries[full] = entry
            entry.holders.add(holder)
            return entry.client

    def release(self, key: Hashable, holder: object) -> Any | None:
        """Forget `holder`; returns the client to close when nobody on this loop holds it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        with self._lock:
            full = (key, id(loop))
            entry = self._entries.get(full)
            if entry is None or entry.loop() is not loop:
                return None
            entry.holders.discard(holder)
            if len(entry.holders):
                return None
            del self._entries[full]
            return entry.client

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._entries)

    def _purge(self) -> None:
        for full, entry in list(self._entries.items()):
            loop = entry.loop()
            if loop is None or loop.is_closed():
                del self._entries[full]


CLIENTS = ClientPool()


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
