"""Knowing when a model request has left: a hook for the SDKs' HTTP clients.

A cold first request is CPU-bound until its bytes are on the wire (importing the SDK, building
the client and the request), and then waits a second or more for the model. Work that can
overlap that wait (starting a kernel, importing the scanner) should begin only once the body
is sent, or it slows the request itself down. httpx's transport reports the moment through
its `trace` extension; `on_request` installs a tracer that calls the running request's
callback, which `dispatching` sets for the current task only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .base import DispatchCallback

if TYPE_CHECKING:
    import httpx

_CURRENT: ContextVar[DispatchCallback | None] = ContextVar("codeflow_dispatch", default=None)


@contextmanager
def dispatching(callback: DispatchCallback | None) -> Iterator[None]:
    """Within this block, requests made by this task call `callback` once their body is sent."""
    token = _CURRENT.set(callback)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _tracer(callback: DispatchCallback) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            callback()

    return trace


async def on_request(request: httpx.Request) -> None:
    """httpx `request` event hook: ask the transport to report when the body is sent."""
    callback = _CURRENT.get()
    if callback is not None and "trace" not in request.extensions:
        request.extensions["trace"] = _tracer(callback)


def http_client_kwargs(sdk: Any) -> dict[str, Any]:
    """Constructor arguments giving an SDK client the hook, on the SDK's own httpx defaults."""
    return {"http_client": sdk.DefaultAsyncHttpxClient(event_hooks={"request": [on_request]})}
