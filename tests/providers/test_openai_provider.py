"""OpenAICompatProvider with the real `openai` SDK against the loopback model server."""

from __future__ import annotations

import socket
import time

import pytest
from modelserver import ModelServer, Reply, count_tokens

from codeflow_magic.errors import AuthenticationError, ProviderError, ProviderUnavailable
from codeflow_magic.providers.base import LLMRequest, Message, Provider, StreamInterrupted
from codeflow_magic.providers.openai_compat import (
    NO_KEY,
    PLACEHOLDER_KEY,
    OpenAICompatProvider,
)

REQUEST = LLMRequest(
    system="You write Python.",
    messages=(
        Message("user", "load the csv"),
        Message("assistant", "```python\nimport pandas\n```"),
        Message("user", "now plot it"),
    ),
    max_tokens=128,
    temperature=0.0,
)


async def test_streamed_reply_with_usage_and_local_placeholder_key(
    model_server: ModelServer,
) -> None:
    chunks = ["```python\n", "df.plot()\n", "```"]
    model_server.add_rule(contains="plot", reply=Reply(chunks=chunks))
    provider = OpenAICompatProvider("llama3", base_url=model_server.openai_url)
    assert isinstance(provider, Provider) and provider.name == "openai"
    deltas: list[str] = []
    response = await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert deltas == chunks
    assert response.text == "".join(chunks)
    assert response.stop_reason == "stop"
    assert response.output_tokens == count_tokens("".join(chunks))
    assert response.input_tokens > 1
    assert "usage_estimated" not in response.extra
    (sent,) = model_server.requests
    assert sent.api == "openai"
    assert sent.api_key == PLACEHOLDER_KEY
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert sent.body["stream"] is True
    assert sent.body["max_tokens"] == 128
    assert sent.body["temperature"] == 0.0


async def test_key_and_base_url_from_environment(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env")
    model_server.enqueue("hello")
    provider = OpenAICompatProvider("gpt-test")
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "hello"
    assert model_server.requests[0].api_key == "sk-openai-env"


async def test_no_key_and_no_base_url_fails_early() -> None:
    provider = OpenAICompatProvider("gpt-test")
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(REQUEST)
    assert str(info.value) == NO_KEY


async def test_rejected_key_and_other_errors(model_server: ModelServer) -> None:
    model_server.enqueue(
        Reply(status=401, text="bad key"), Reply(status=404, text="model 'x' not found")
    )
    provider = OpenAICompatProvider("x", base_url=model_server.openai_url, api_key="k")
    with pytest.raises(AuthenticationError, match=r"rejected .*bad key"):
        await provider.complete(REQUEST)
    with pytest.raises(
        ProviderError,
        match=r"answered 404 not_found_error: model 'x' not found; check the model name",
    ):
        await provider.complete(REQUEST)
    await provider.aclose()


async def test_rate_limit_then_ok_through_sdk_retries(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=429), "after retry")
    provider = OpenAICompatProvider("x", base_url=model_server.openai_url, max_retries=2)
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "after retry"
    assert len(model_server.requests) == 2


async def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    provider = OpenAICompatProvider("x", base_url=url, max_retries=0)
    with pytest.raises(ProviderUnavailable, match="cannot reach the model server at"):
        await provider.complete(REQUEST)
    await provider.aclose()


async def test_connection_dropped_mid_stream_is_a_broken_stream(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(chunks=["one ", "two ", "three"], abort_after=1))
    provider = OpenAICompatProvider("x", base_url=model_server.openai_url, max_retries=2)
    deltas: list[str] = []
    with pytest.raises(StreamInterrupted, match="ended mid-message after 4 characters") as info:
        await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert deltas == ["one "]
    assert info.value.chars == 4 and info.value.exit_status == 5
    assert len(model_server.requests) == 1


async def test_dispatch_is_signalled_once_the_request_is_sent(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(text="```python\nprint(1)\n```", latency=1.0))
    provider = OpenAICompatProvider("llama3", base_url=model_server.openai_url)
    calls: list[float] = []
    await provider.complete(REQUEST, None, lambda: calls.append(time.monotonic()))
    await provider.aclose()
    (request,) = model_server.requests
    assert len(calls) == 2
    assert calls[0] < request.received_at + 0.5 < calls[1]
