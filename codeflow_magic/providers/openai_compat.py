"""OpenAI-compatible chat servers (Ollama, vLLM, llama.cpp, OpenAI) through the `openai` SDK.

Local servers need no key, so a placeholder is sent when a base URL is set and no key is;
without either the SDK would send requests to the public API with no key, so we stop early.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import AuthenticationError, UsageError
from .anthropic import _fingerprint, translate_sdk_error
from .base import DeltaCallback, DispatchCallback, LLMRequest, LLMResponse
from .dispatch import dispatching, http_client_kwargs
from .sdk import CLIENTS, aload_sdk, load_sdk

if TYPE_CHECKING:
    from openai import AsyncOpenAI

PLACEHOLDER_KEY = "local-server-needs-no-key"
MISSING_PACKAGE = (
    "the openai provider needs the openai package: pip install 'codeflow-magic[openai]'"
)
NO_KEY = (
    "no API key for the openai provider: set OPENAI_API_KEY, or set generation.base_url "
    "(or OPENAI_BASE_URL) to a local server"
)


def _import_openai() -> Any:
    try:
        return load_sdk("openai")
    except ImportError:
        raise UsageError(MISSING_PACKAGE) from None


async def _aimport_openai() -> Any:
    """`_import_openai` without blocking the event loop while the import thread works."""
    try:
        return await aload_sdk("openai")
    except ImportError:
        raise UsageError(MISSING_PACKAGE) from None


class OpenAICompatProvider:
    """The `openai:<model>` provider."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self._pool_keys: set[tuple[Any, ...]] = set()

    def _resolved(self) -> tuple[str | None, str | None]:
        base_url = self.base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = self._api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None and base_url is not None:
            api_key = PLACEHOLDER_KEY
        return base_url, api_key

    def client(self) -> AsyncOpenAI:
        """The shared client for these settings on the running loop (made on first use)."""
        base_url, api_key = self._resolved()
        if api_key is None:
            raise AuthenticationError(NO_KEY)
        key = ("openai", _fingerprint(api_key), base_url, self.timeout, self.max_retries)

        def factory() -> AsyncOpenAI:
            openai = _import_openai()
            client: AsyncOpenAI = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
                **http_client_kwargs(openai),
            )
            return client

        client: AsyncOpenAI = CLIENTS.acquire(key, self, factory)
        self._pool_keys.add(key)
        return client

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
        openai = await _aimport_openai()
        client = self.client()
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        url = str(client.base_url).rstrip("/")
        pieces: list[str] = []
        finish: str | None = None
        usage: Any = None
        model = self.model
        streamed: int | None = None  # None until the answer begins
        try:
            with dispatching(on_dispatch):
                stream = await client.chat.completions.create(**params)
            if on_dispatch is not None:
                on_dispatch()  # the answer has begun: at the latest now
            streamed = 0
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        pieces.append(text)
                        streamed += len(text)
                        if on_delta is not None:
                            on_delta(text)
                    if choice.finish_reason is not None:
                        finish = choice.finish_reason
        except Exception as exc:
            mapped = translate_sdk_error(
                exc,
                openai,
                url=url,
                timeout=self.timeout,
                key_var="OPENAI_API_KEY",
                streamed=streamed,
            )
            if mapped is None:
                raise
            raise mapped from None
        text = "".join(pieces)
        extra: dict[str, Any] = {}
        cache_read = 0
        if usage is not None:
            input_tokens = int(usage.prompt_tokens or 0)
            details = getattr(usage, "prompt_tokens_details", None)
            cache_read = int(getattr(details, "cached_tokens", 0) or 0)  # servers that cache
            output_tokens = int(usage.completion_tokens or 0)
        else:  # servers that ignore stream_options: estimate, and say so
            prompt_chars = sum(len(m["content"]) for m in messages)
            input_tokens = max(1, prompt_chars // 4)
            output_tokens = max(1, len(text) // 4)
            extra["usage_estimated"] = True
        return LLMResponse(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=min(cache_read, input_tokens),
            stop_reason=finish,
            extra=extra,
        )

    async def aclose(self) -> None:
        """Close the pooled client when this was its last user on the running loop."""
        for key in list(self._pool_keys):
            client = CLIENTS.release(key, self)
            self._pool_keys.discard(key)
            if client is not None:
                await client.close()
