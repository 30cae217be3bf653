"""Anthropic Claude through the official SDK, streaming.

The SDK reads `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` itself (and its other credential
sources); we pass values only when given explicitly. Retries are the SDK's: 408, 409, 429 and
5xx answers, timeouts and failed connections are tried again with backoff (honouring the API's
`retry-after`/`retry-after-ms`) up to `max_retries` times. A stream that breaks after the
answer began is not retried by the SDK; it becomes `StreamInterrupted` for the caller to
decide. SDK exceptions are mapped to ours at this boundary so the flow never sees an SDK type:
`ProviderUnavailable` (exit 5) when the API stayed unavailable, `ProviderError` (exit 3) when
asking again as is would not help (bad request, rejected key, unknown model).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import socket
import sys
import warnings
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import AuthenticationError, ProviderError, ProviderUnavailable
from .base import (
    DeltaCallback,
    DispatchCallback,
    LLMRequest,
    LLMResponse,
    Message,
    StreamInterrupted,
)
from .catalogue import deprecation_notice
from .dispatch import dispatching, hooks, http_client_kwargs, make_spare
from .sdk import CLIENTS, aload_sdk, load_sdk

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

NO_KEY = (
    "no API key for the Anthropic API (neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN is "
    "set). To go on, either:\n"
    "  - set the key: export ANTHROPIC_API_KEY=<your key>\n"
    "  - use recorded responses only: CODEFLOW_CACHE=replay (or --cache-mode replay)\n"
    "  - pick another provider: --model openai:<model> with OPENAI_API_KEY set, or with "
    "OPENAI_BASE_URL set to a local OpenAI-compatible server"
)
STATUS_HINTS: dict[int, str] = {
    403: "; check that {key_var} may use this model",
    404: "; check the model name (--model)",
    413: "; the request is too large for the model",
}
ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE")


def _fingerprint(value: str | None) -> str | None:
    """Keys identify a pooled client without keeping the secret itself in the pool's keys."""
    if value is None:
        return None
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def api_error_message(body: object, fallback: str) -> str:
    """The human message inside an API error body, else `fallback`."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return fallback


def api_error_type(body: object) -> str:
    """The error type inside an API error body (`overloaded_error`, ...), else ""."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return str(err["type"])
    return ""


def is_retryable_status(status: int) -> bool:
    """The statuses the SDKs retry: worth trying again later when retries ran out."""
    return status in (408, 409, 429) or status >= 500


def tries_of(exc: BaseException) -> int | None:
    """How many times the SDK sent the request, from the retry count it stamps on each try."""
    try:
        request = exc.request  # type: ignore[attr-defined]
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None  # httpx raises RuntimeError for an error that carries no request


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A few words on why a connection failed: the SDKs' own messages say only "Connection
    error.", while the cause (reset, refused, closed) is what tells a user what happened."""
    chain = _chain(exc)
    for err in chain:
        if isinstance(err, ConnectionResetError):
            return "connection reset"
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, socket.gaierror):
            return f"unknown host ({err})"
        if isinstance(err, TimeoutError) or type(err).__name__.endswith("Timeout"):
            return f"no answer within {timeout:g} s"
    text = " ".join(str(err) for err in chain).lower()
    if "without sending a response" in text:
        return "the server closed the connection without answering"
    if "peer closed connection" in text or "incomplete chunked read" in text:
        return "the server closed the connection"
    for err in reversed(chain):
        if str(err).strip():
            return str(err).strip()
    return type(exc).__name__


def _notes(tries: int | None, *more: str) -> str:
    """` (gave up after N tries; ...)`, or "" with nothing to say."""
    notes = [] if tries is None else [f"gave up after {tries} {'try' if tries == 1 else 'tries'}"]
    notes += [m for m in more if m]
    return f" ({'; '.join(notes)})" if notes else ""


def translate_sdk_error(
    exc: Exception,
    sdk: Any,
    *,
    url: str,
    timeout: float,
    key_var: str,
    streamed: int | None = None,
) -> Exception | None:
    """Our error for an exception of an SDK (`anthropic` or `openai`: their exception classes
    share names and shapes), or None when it is none of the SDK's own.

    `streamed` is the number of text characters received when the answer had already begun
    (None before): a failure then is a broken stream, which the SDK never retries.
    """
    if not isinstance(exc, sdk.APIError) and not is_transport_error(exc):
        return None
    if streamed is not None:
        if isinstance(exc, sdk.APIStatusError):  # an error event inside the stream
            kind = api_error_type(exc.body)
            message = api_error_message(exc.body, exc.message)
            cause = f"{kind}: {message}" if kind else message
        else:
            cause = describe_failure(exc, timeout)
        return StreamInterrupted(
            f"the answer from the model server at {url} ended mid-message after {streamed} "
            f"characters: {cause}",
            chars=streamed,
        )
    tries = tries_of(exc)
    if isinstance(exc, sdk.AuthenticationError):
        message = api_error_message(exc.body, exc.message)
        return AuthenticationError(
            f"the API key was rejected by {url} (401): {message}; check {key_var}"
        )
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderUnavailable(
            f"cannot reach the model server at {url}: no answer within {timeout:g} s"
            + _notes(tries)
        )
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderUnavailable(
            f"cannot reach the model server at {url}: {describe_failure(exc, timeout)}"
            + _notes(tries)
        )
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        kind = api_error_type(exc.body)
        message = api_error_message(exc.body, exc.message)
        what = f"{status} {kind}: {message}" if kind else f"{status}: {message}"
        headers = exc.response.headers
        if is_retryable_status(status) and headers.get("x-should-retry") != "false":
            wait = headers.get("retry-after")
            return ProviderUnavailable(
                f"the model API at {url} is unavailable: {what}"
                + _notes(tries, f"it asked to wait {wait} s" if wait else "")
            )
        hint = STATUS_HINTS.get(status, "").format(key_var=key_var)
        return ProviderError(f"the model server at {url} answered {what}{hint}")
    if isinstance(exc, sdk.APIError):
        return ProviderError(f"bad reply from the model server at {url}: {exc}")
    return ProviderUnavailable(
        f"connection to the model server at {url} failed: {describe_failure(exc, timeout)}"
    )


def is_transport_error(exc: BaseException) -> bool:
    """An HTTP-library error that escaped the SDK (e.g. the peer closed mid-stream)."""
    module = type(exc).__module__
    return module.startswith(("httpx", "httpcore", "h11"))


CACHE_MARK: dict[str, str] = {"type": "ephemeral"}
"""Anthropic's prompt-cache breakpoint: the prefix up to here is cached for five minutes."""


def message_param(message: Message) -> dict[str, Any]:
    """A message for the Messages API; its stable prefix ends in a cache breakpoint, so the
    later requests of a run read it from the cache (the text is the same as unmarked)."""
    stable, rest = message.parts
    if not stable:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": stable, "cache_control": dict(CACHE_MARK)}
    ]
    if rest:
        blocks.append({"type": "text", "text": rest})
    return {"role": message.role, "content": blocks}


@lru_cache(maxsize=1)
def _sdk_takes_temperature() -> bool:
    """Newer SDKs dropped `temperature` from the Messages API; send it only where it exists."""
    from anthropic.resources.messages import AsyncMessages

    return "temperature" in inspect.signature(AsyncMessages.stream).parameters


class AnthropicProvider:
    """The `anthropic:<model>` provider."""

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        named: bool = True,
    ) -> None:
        self.model = model
        self.named = named
        """False when the user named no model and `model` is codeflow's default."""
        self._api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._pool_keys: set[tuple[Any, ...]] = set()

    def _pool_key(self) -> tuple[Any, ...]:
        env = tuple(_fingerprint(os.environ.get(v) or None) for v in ENV_VARS)
        return (
            "anthropic",
            _fingerprint(self._api_key),
            self.base_url,
            env,
            self.timeout,
            self.max_retries,
        )

    def client(self) -> AsyncAnthropic:
        """The shared client for these settings on the running loop (made on first use)."""
        key = self._pool_key()
        client: AsyncAnthropic = CLIENTS.acquire(key, self, self._new_client)
        self._pool_keys.add(key)
        return client

    async def _sdk(self) -> ModuleType:
        return await aload_sdk("anthropic")

    def _new_client(self) -> AsyncAnthropic:
        anthropic = load_sdk("anthropic")
        kwargs: dict[str, Any] = {"timeout": self.timeout, "max_retries": self.max_retries}
        kwargs.update(http_client_kwargs(anthropic))
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        try:
            client: AsyncAnthropic = anthropic.AsyncAnthropic(**kwargs)
        except anthropic.AnthropicError as exc:  # e.g. an unreadable credentials profile
            raise AuthenticationError(f"cannot set up Anthropic credentials: {exc}") from None
        if client.api_key is None and client.auth_token is None and client.credentials is None:
            raise AuthenticationError(NO_KEY)
        return client

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
        anthropic = await self._sdk()  # imported on its own thread; the loop stays free
        client = self.client()
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [message_param(m) for m in request.messages],
        }
        if request.system:
            params["system"] = request.system
        if request.temperature is not None and _sdk_takes_temperature():
            params["temperature"] = request.temperature
        url = str(client.base_url).rstrip("/")
        streamed: int | None = None  # None until the answer begins
        try:
            with dispatching(on_dispatch):
                manager, notices = self._open_stream(client, params)
                async with manager as stream:
                    if on_dispatch is not None:
                        on_dispatch()  # the answer has begun: at the latest now
                    streamed = 0
                    async for text in stream.text_stream:
                        if text:
                            streamed += len(text)
                            if on_delta is not None:
                                on_delta(text)
                    final = await stream.get_final_message()
        except Exception as exc:
            mapped = translate_sdk_error(
                exc,
                anthropic,
                url=url,
                timeout=self.timeout,
                key_var="ANTHROPIC_API_KEY",
                streamed=streamed,
            )
            if mapped is None:
                raise
            raise mapped from None
        text = "".join(block.text for block in final.content if block.type == "text")
        usage = final.usage
        # The API counts cached prompt tokens apart from `input_tokens`; ours are all of them.
        written = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        return LLMResponse(
            text=text,
            model=final.model or self.model,
            input_tokens=int(usage.input_tokens or 0) + written + read,
            output_tokens=int(usage.output_tokens or 0),
            cache_write_tokens=written,
            cache_read_tokens=read,
            stop_reason=final.stop_reason,
            extra={"id": final.id, "warnings": notices} if notices else {"id": final.id},
        )

    def _open_stream(self, client: AsyncAnthropic, params: dict[str, Any]) -> tuple[Any, list[str]]:
        """Open the stream, turning the SDK's deprecation warning for our model into a notice.

        The SDK warns (a `DeprecationWarning`) when a request names a model it calls
        deprecated: that public behaviour, not its private tables, is how codeflow learns it.
        Other warnings are passed on as they were.
        """
        notices: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            manager = client.messages.stream(**params)
        for item in caught:
            text = str(item.message)
            if issubclass(item.category, DeprecationWarning) and f"'{self.model}'" in text:
                notices.append(deprecation_notice(self.model, text, named=self.named))
            else:
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        return manager, notices

    async def aclose(self) -> None:
        """Close the pooled client when this was its last user on the running loop."""
        for key in list(self._pool_keys):
            client = CLIENTS.release(key, self)
            self._pool_keys.discard(key)
            if client is not None:
                await client.close()


# -- warm-up -------------------------------------------------------------------------------------

WARM_UP_MODEL = "codeflow-warm-up"
_WARM_UP_EVENTS: tuple[tuple[str, str], ...] = (
    (
        "message_start",
        '{"type":"message_start","message":{"id":"msg_warm_up","type":"message",'
        '"role":"assistant","model":"codeflow-warm-up","content":[],"stop_reason":null,'
        '"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1,'
        '"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}',
    ),
    (
        "content_block_start",
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
    ),
    (
        "content_block_delta",
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}',
    ),
    ("content_block_stop", '{"type":"content_block_stop","index":0}'),
    (
        "message_delta",
        '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        '"usage":{"output_tokens":1}}',
    ),
    ("message_stop", '{"type":"message_stop"}'),
)
WARM_UP_STREAM = "".join(f"event: {e}\ndata: {d}\n\n" for e, d in _WARM_UP_EVENTS).encode()
"""A complete streamed answer, as the Messages API sends it."""


def _http_module(sdk: ModuleType) -> ModuleType:
    """The HTTP library the SDK is built on (its default client's base class's package)."""
    for cls in sdk.DefaultAsyncHttpxClient.__mro__[1:]:
        root = cls.__module__.partition(".")[0]
        if root != sdk.__name__ and root in sys.modules:
            return sys.modules[root]
    raise RuntimeError("the SDK's HTTP library was not found")


class _WarmUpProvider(AnthropicProvider):
    """The provider over an SDK client whose transport answers from memory."""

    def __init__(self, sdk: ModuleType) -> None:
        super().__init__(WARM_UP_MODEL, api_key="codeflow-warm-up", max_retries=0)
        http = _http_module(sdk)

        def answer(request: Any) -> Any:
            headers = {"content-type": "text/event-stream"}
            return http.Response(200, headers=headers, content=WARM_UP_STREAM)

        self._sdk_module = sdk
        self._client: Any = sdk.AsyncAnthropic(
            api_key="codeflow-warm-up",
            base_url="http://codeflow-warm-up.invalid",
            max_retries=0,
            http_client=sdk.DefaultAsyncHttpxClient(
                transport=http.MockTransport(answer), event_hooks=hooks()
            ),
        )

    async def _sdk(self) -> ModuleType:
        return self._sdk_module  # the import thread itself: its future is not done yet

    def client(self) -> AsyncAnthropic:
        client: AsyncAnthropic = self._client
        return client

    async def aclose(self) -> None:
        await self._client.close()


def warm_up(sdk: ModuleType) -> None:
    """One request through codeflow's provider and the SDK to a transport in memory.

    The SDK builds much on its first request (the request's type adapters, the stream's
    event models) and a default HTTP client loads the system's certificates: 30-90 ms that a
    user's first request would pay before its bytes leave. Nothing goes over the network;
    the HTTP client is made here and kept for the first real SDK client to take.
    """
    from .base import LLMRequest, Message

    async def dry_run() -> None:
        provider = _WarmUpProvider(sdk)
        try:
            request = LLMRequest(
                system="codeflow warm-up",
                messages=(Message("user", "warm-up request", stable=6),),
                max_tokens=8,
                temperature=0.0,
            )
            await asyncio.wait_for(provider.complete(request, on_dispatch=lambda: None), 30)
        finally:
            await provider.aclose()

    asyncio.run(dry_run())
    make_spare(sdk)  # the first real client's HTTP client, TLS context and all
