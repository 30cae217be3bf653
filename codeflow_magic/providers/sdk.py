"""The model SDKs, imported off the request path, and the SDK clients shared per event loop.

Below the providers: `anthropic` and `openai_compat` get their SDK and client from here, and
`providers.preload_sdk` starts the import with the provider's warm-up.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

SDK_MODULES: dict[str, str] = {"anthropic": "anthropic", "openai": "openai"}
"""The module each provider's SDK is imported as."""

_SDKS: dict[str, Future[ModuleType]] = {}
_SDKS_LOCK = threading.Lock()
_IMPORTERS: list[threading.Thread] = []
EXIT_WAIT_S = 10.0
"""How long an exiting process waits for codeflow's import threads."""


def import_in_background(target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
    """Run an import on a daemon thread that the process still waits for when it exits.

    A daemon thread that is still importing when the interpreter finalizes dies holding the
    import lock, and the exit then hangs for good in a module lock's clean-up callback. So an
    exiting process (a CLI run that never needed the scanner, a script that quits while the SDK
    loads) first lets these threads finish, for at most `EXIT_WAIT_S`.
    """
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    with _SDKS_LOCK:
        _IMPORTERS[:] = [t for t in _IMPORTERS if t.is_alive()]
        _IMPORTERS.append(thread)
    return thread


@atexit.register
def _wait_for_importers() -> None:
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread in list(_IMPORTERS):
        thread.join(max(0.0, deadline - time.monotonic()))


def start_import(
    provider: str, warmer: Callable[[ModuleType], None] | None = None
) -> Future[ModuleType]:
    """Start importing `provider`'s SDK on a daemon thread (once per process); its future.

    Importing an SDK is the largest one-time cost of a first request (seconds of CPU for
    `anthropic`), so front doors start it as early as they know a model will be asked: when
    the notebook extension loads, before the CLI reads its input or starts a kernel. With
    a `warmer`, the thread then sends one request through the SDK to a transport in memory, so
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
    import_in_background(_import_sdk, module, future, warmer, name=f"codeflow-import-{provider}")
    return future


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
    return start_import(provider).result()


async def aload_sdk(provider: str) -> ModuleType:
    """`load_sdk` without blocking the event loop while the import runs."""
    future = start_import(provider)
    if future.done():
        return future.result()
    return await asyncio.wrap_future(future)


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
