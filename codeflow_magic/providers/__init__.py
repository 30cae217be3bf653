"""Model providers: Anthropic (default), OpenAI-compatible servers, and the response cache.

`default_model` reads the installed SDK's own model list so that the default follows the SDK
rather than going stale in our code.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .base import Provider

if TYPE_CHECKING:
    from ..config import Settings

FALLBACK_MODEL = "claude-sonnet-4-6"


@lru_cache(maxsize=1)
def default_model() -> str:
    """The newest Sonnet the installed SDK knows and does not list as deprecated.

    The SDK's tables are read from its source files rather than imported: importing the SDK
    costs about a second, which a replayed notebook (that never calls the model) should not
    pay just to learn the default name.
    """
    names, deprecated = _sdk_model_tables()
    for name in names:
        if "sonnet" in name and name not in deprecated and not name[-8:].isdigit():
            return name
    return FALLBACK_MODEL


def _sdk_model_tables() -> tuple[list[str], set[str]]:
    import importlib.util
    import re
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("anthropic")
        if spec is None or spec.origin is None:
            return [], set()
        root = Path(spec.origin).parent
        models_src = (root / "types" / "model_param.py").read_text(encoding="utf-8")
        messages_src = (root / "resources" / "messages" / "messages.py").read_text(encoding="utf-8")
    except (ImportError, OSError, ValueError):
        return [], set()
    names = re.findall(r'"(claude-[A-Za-z0-9.-]+)"', models_src)
    start = messages_src.find("DEPRECATED_MODELS")
    end = messages_src.find("}", start)
    block = messages_src[start:end] if start >= 0 and end > start else ""
    deprecated = set(re.findall(r'"(claude-[A-Za-z0-9.-]+)"\s*:', block))
    return names, deprecated


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

    In replay mode the real provider is never built, so no key or SDK is needed.
    """
    from .cache import CachedProvider

    spec = model or settings.model
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

            inner = AnthropicProvider(model_name, timeout=timeout)
        else:
            from .openai_compat import OpenAICompatProvider

            inner = OpenAICompatProvider(
                model_name, base_url=settings.generation.base_url or None, timeout=timeout
            )
    return CachedProvider(inner, folder, mode, name=provider_name, model=model_name)
