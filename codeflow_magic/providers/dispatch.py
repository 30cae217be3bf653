"""Knowing when a model request has left: a hook for the SDKs' HTTP clients.

A cold first request is CPU-bound until its bytes are on the wire (importing the SDK, building
the client and the request), and then waits a second or more for the model. Work that can
overlap that wait (starting a kernel, importing the scanner) should begin only once the body
is sent, or it slows the request itself down. httpx's transport reports the moment through
its `trace` extension; `on_request` installs a tracer that calls the running request's
callback, which `dispatching` sets for the current task only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .base import DispatchCallback, notify_retry

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


_LAST_FAILURE: ContextVar[list[str] | None] = ContextVar("codeflow_last_failure", default=None)
"""Why this task's last try failed, as its response said (set per request by `on_request`)."""

RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The header the official SDKs stamp on each try of a request (0 for the first)."""


async def on_request(request: httpx.Request) -> None:
    """httpx `request` event hook: ask the transport to report when the body is sent, and say
    when this is a retry (the SDKs retry 408/409/429/5xx, timeouts and lost connections)."""
    callback = _CURRENT.get()
    if callback is not None and "trace" not in request.extensions:
        request.extensions["trace"] = _tracer(callback)
    try:
        retry = int(request.headers.get(RETRY_COUNT_HEADER, "0"))
    except ValueError:
        retry = 0
    last = _LAST_FAILURE.get()
    if retry <= 0:
        _LAST_FAILURE.set([])
        return
    why = last[-1] if last else "the previous try got no answer (timeout or lost connection)"
    notify_retry(f"{why}; sending the request again (retry {retry})")


async def on_response(response: httpx.Response) -> None:
    """httpx `response` event hook: remember why a try failed, for the retry that follows."""
    if response.status_code < 400:
        return
    last = _LAST_FAILURE.get()
    if last is not None:
        wait = response.headers.get("retry-after")
        asked = f", asked to wait {wait} s" if wait else ""
        last.append(
            f"the model API answered {response.status_code} {response.reason_phrase}{asked}"
        )


def http_client_kwargs(sdk: Any) -> dict[str, Any]:
    """Constructor arguments giving an SDK client the hooks, on the SDK's own httpx defaults."""
    spare = _take_spare(sdk)
    if spare is not None:
        return {"http_client": spare}
    return {"http_client": sdk.DefaultAsyncHttpxClient(event_hooks=hooks())}


def hooks() -> dict[str, list[Callable[..., Awaitable[None]]]]:
    return {"request": [on_request], "response": [on_response]}


# A default HTTP client costs tens of milliseconds to make (its TLS context loads the system's
# certificates), so the SDK's warm-up makes the first one ahead, for the first request to take.
# It is taken only while the environment that shaped it (proxies, certificates) is unchanged.
_SPARES: dict[str, tuple[tuple[str | None, ...], Any]] = {}
_SPARES_LOCK = threading.Lock()
_HTTP_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def _http_env() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _HTTP_ENV)


def make_spare(sdk: Any) -> None:
    """Make a default HTTP client (with the hooks) for the next `http_client_kwargs(sdk)`."""
    client = sdk.DefaultAsyncHttpxClient(event_hooks=hooks())
    with _SPARES_LOCK:
        _SPARES[sdk.__name__] = (_http_env(), client)


def _take_spare(sdk: Any) -> Any | None:
    with _SPARES_LOCK:
        entry = _SPARES.pop(getattr(sdk, "__name__", ""), None)
    if entry is None:
        return None
    env, client = entry
    return client if env == _http_env() else None
