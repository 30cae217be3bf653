"""Anthropic Claude through the official SDK, streaming.

The SDK reads `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` itself (and its other credential
sources); we pass values only when given explicitly, and retries of 429/529/5xx are the SDK's.
SDK exceptions are mapped to ours at this boundary so the flow never sees an SDK type.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import AuthenticationError, ProviderError, ProviderUnavailable
from . import CLIENTS
from .base import DeltaCallback, DispatchCallback, LLMRequest, LLMResponse

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

NO_KEY = "no API key: set ANTHROPIC_API_KEY (or use the recorded cache: CODEFLOW_CACHE=replay)"
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


def translate_sdk_error(
    exc: Exception, sdk: Any, *, url: str, timeout: float, key_var: str
) -> Exception | None:
    """Our error for an exception of an SDK (`anthropic` or `openai`: their exception classes
    share names and shapes), or None when it is none of the SDK's own."""
    if isinstance(exc, sdk.AuthenticationError):
        message = api_error_message(exc.body, exc.message)
        return AuthenticationError(
            f"the API key was rejected by {url} (401): {message}; check {key_var}"
        )
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderUnavailable(
            f"cannot reach the model server at {url}: no answer within {timeout:g} s"
        )
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProviderUnavailable(f"cannot reach the model server at {url}: {cause}")
    if isinstance(exc, sdk.APIStatusError):
        message = api_error_message(exc.body, exc.message)
        return ProviderError(f"the model server at {url} answered {exc.status_code}: {message}")
    if isinstance(exc, sdk.APIError):
        return ProviderError(f"bad reply from the model server at {url}: {exc}")
    if is_transport_error(exc):
        return ProviderUnavailable(f"connection to the model server at {url} failed: {exc}")
    return None


def is_transport_error(exc: BaseException) -> bool:
    """An HTTP-library error that escaped the SDK (e.g. the peer closed mid-stream)."""
    module = type(exc).__module__
    return module.startswith(("httpx", "httpcore", "h11"))


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
    ) -> None:
        self.model = model
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

    def _new_client(self) -> AsyncAnthropic:
        import anthropic

        kwargs: dict[str, Any] = {"timeout": self.timeout, "max_retries": self.max_retries}
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        try:
            client = anthropic.AsyncAnthropic(**kwargs)
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
        import anthropic

        client = self.client()
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.system:
            params["system"] = request.system
        if request.temperature is not None and _sdk_takes_temperature():
            params["temperature"] = request.temperature
        url = str(client.base_url).rstrip("/")
        if on_dispatch is not None:
            on_dispatch()
        try:
            async with client.messages.stream(**params) as stream:
                async for text in stream.text_stream:
                    if on_delta is not None and text:
                        on_delta(text)
                final = await stream.get_final_message()
        except Exception as exc:
            mapped = translate_sdk_error(
                exc, anthropic, url=url, timeout=self.timeout, key_var="ANTHROPIC_API_KEY"
            )
            if mapped is None:
                raise
            raise mapped from None
        text = "".join(block.text for block in final.content if block.type == "text")
        return LLMResponse(
            text=text,
            model=final.model or self.model,
            input_tokens=int(final.usage.input_tokens or 0),
            output_tokens=int(final.usage.output_tokens or 0),
            stop_reason=final.stop_reason,
            extra={"id": final.id},
        )

    async def aclose(self) -> None:
        """Close the pooled client when this was its last user on the running loop."""
        for key in list(self._pool_keys):
            client = CLIENTS.release(key, self)
            self._pool_keys.discard(key)
            if client is not None:
                await client.close()
