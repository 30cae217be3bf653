"""Model providers: Anthropic (default), OpenAI-compatible servers, and the response cache.

The default model is codeflow's own (`catalogue`), so a recorded notebook replays the same
whichever SDK is installed.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
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

# -- the SDKs, imported off the request path -----------------------------------------------------

SDK_MODULES: dict[str, str] = {"anthropic": "anthropic", "openai": "openai"}
"""The module each provider's SDK is imported as."""

_SDKS: dict[str, Future[ModuleType]] = {}
_SDKS_LOCK = threading.Lock()


def preload_sdk(provider: str = "anthropic", *, warm: bool = True) -> Future[ModuleType]:
    """Start importing `provider`'s SDK on a daemon thread (once per process); its future.

    Importing an SDK is the largest one-time cost of a first request (seconds of CPU for
    `anthropic`), so front doors start it as early as they know a model will be asked: when
    the notebook extension loads, before the CLI reads its input or starts a kernel. With
    `warm`, the thread then sends one request through the SDK to a transport in memory, so
    that the first real request does not pay for the SDK's own first-use set-up either.

    This thread is the only place codeflow imports an SDK: every user waits for its result
    (`load_sdk`, `aload_sdk`) instead of importing the same modules at the same time, which
    can deadlock on Python's import locks. A failed import is tried again on the next call.
    """
    module = SDK_MODULES.get(provider)
    if module is None:
        raise ValueError(f"no SDK for provider {provider!r}")
    with _SDKS_LOCK:
        future = _SDKS.get(provider)
        if future is not None and not (future.done() and future.exception() is not None):
            return future
        future = Future()
        future.set_running_or_notify_cancel()  # a waiter given up (a cell interrupted
        _SDKS[provider] = future  # during the import) cannot cancel the import for the others
    loaded = sys.modules.get(module)
    if loaded is not None and not getattr(loaded.__spec__, "_initializing", False):
        future.set_result(loaded)  # already imported (and warmed, or used) by someone else
        return future
    warmer = _warmer(provider) if warm else None
    thread = threading.Thread(
        target=_import_sdk,
        args=(module, future, warmer),
        name=f"codeflow-import-{provider}",
        daemon=True,
    )
    thread.start()
    return future


def _warmer(provider: str) -> Callable[[ModuleType], None] | None:
    """The provider's warm-up, resolved on the calling thread: the import thread imports
    nothing of codeflow's, only the SDK."""
    if provider == "anthropic":
        from .anthropic import warm_up

        return warm_up
    return None


def _import_sdk(
    module: str, future: Future[ModuleType], warmer: Callable[[ModuleType], None] | None
) -> None:
    try:
        sdk = importlib.import_module(module)
    except BaseException as exc:  # ImportError above all: reported where the SDK is needed
        future.set_exception(exc)
        return
    if warmer is not None:
        try:
            warmer(sdk)  # before the result: the SDK's lazy imports stay on this thread too
        except Exception:
            pass  # only a head start; the real request does the same work and reports errors
    future.set_result(sdk)


def sdk_loading(provider: str) -> bool:
    """True while `provider`'s SDK is being imported (or warmed) on the import thread."""
    future = _SDKS.get(provider)
    return future is not None and not future.done()


def load_sdk(provider: str) -> ModuleType:
    """`provider`'s SDK module, waiting for the import thread (started now if need be)."""
    return preload_sdk(provider).result()


async def aload_sdk(provider: str) -> ModuleType:
    """`load_sdk` without blocking the event loop while the import runs."""
    future = preload_sdk(provider)
    if future.done():
        return future.result()
    return await asyncio.wrap_future(future)


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
