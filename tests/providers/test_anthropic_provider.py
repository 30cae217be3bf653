"""AnthropicProvider with the real SDK against the loopback model server."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from modelserver import ModelServer, Reply, count_tokens

from codeflow_magic.errors import AuthenticationError, ProviderError, ProviderUnavailable
from codeflow_magic.providers import CLIENTS
from codeflow_magic.providers.anthropic import NO_KEY, AnthropicProvider, _sdk_takes_temperature
from codeflow_magic.providers.base import LLMRequest, Message, Provider, StreamInterrupted

REQUEST = LLMRequest(
    system="You write Python.",
    messages=(Message("user", "add two numbers"),),
    max_tokens=256,
    temperature=0.2,
)


def _provider(server: ModelServer, **kwargs: object) -> AnthropicProvider:
    return AnthropicProvider("claude-test", api_key="test-key", base_url=server.url, **kwargs)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streamed_deltas_arrive_in_order_with_usage(model_server: ModelServer) -> None:
    chunks = ["```python\n", "print(1 + 2)\n", "```\n", "Adds two numbers."]
    model_server.enqueue(Reply(chunks=chunks))
    provider = _provider(model_server)
    assert isinstance(provider, Provider)
    deltas: list[str] = []
    response = await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert deltas == chunks
    assert response.text == "".join(chunks)
    assert response.stop_reason == "end_turn"
    assert response.model == "claude-test"
    prompt_chars = len(REQUEST.system) + 1 + len("add two numbers")
    assert response.input_tokens == count_tokens(" " * prompt_chars)
    assert response.output_tokens == count_tokens("".join(chunks))
    assert not response.cached
    (sent,) = model_server.requests
    assert sent.body["stream"] is True
    assert sent.body["system"] == "You write Python."
    assert sent.body.get("temperature") == (0.2 if _sdk_takes_temperature() else None)
    assert sent.body["max_tokens"] == 256
    assert sent.last_user == "add two numbers"


async def test_plain_text_reply_streams_in_pieces(model_server: ModelServer) -> None:
    text = "x = 1\n" * 20
    model_server.add_rule(contains="two numbers", reply=text)
    provider = _provider(model_server)
    deltas: list[str] = []
    response = await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert response.text == text
    assert len(deltas) > 1 and "".join(deltas) == text


async def test_overloaded_then_ok_succeeds_through_sdk_retries(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=529), Reply(status=500), "done")
    provider = _provider(model_server, max_retries=3)
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "done"
    assert len(model_server.requests) == 3


async def test_retries_exhausted_is_provider_unavailable(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=529), Reply(status=529))
    provider = _provider(model_server, max_retries=1)
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    await provider.aclose()
    assert str(info.value) == (
        f"the model API at {model_server.url} is unavailable: 529 overloaded_error: "
        "scripted overloaded_error (529) (gave up after 2 tries)"
    )
    assert info.value.exit_status == 5
    assert len(model_server.requests) == 2


async def test_rejected_key_is_an_authentication_error(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=401))
    provider = _provider(model_server)
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(REQUEST)
    await provider.aclose()
    message = str(info.value)
    assert "the API key was rejected" in message and "invalid x-api-key" in message
    assert "\n" not in message
    assert info.value.exit_status == 3
    assert len(model_server.requests) == 1  # a 401 is not retried


async def test_missing_key_fails_before_any_request(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    provider = AnthropicProvider("claude-test")
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(REQUEST)
    assert str(info.value) == NO_KEY
    assert model_server.requests == []


async def test_environment_key_and_base_url_are_honoured(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key-from-env")
    model_server.enqueue("from env")
    provider = AnthropicProvider("claude-test")
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "from env"
    assert model_server.requests[0].api_key == "key-from-env"


async def test_unreachable_server_is_provider_unavailable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    provider = AnthropicProvider("claude-test", api_key="k", base_url=url, max_retries=0)
    with pytest.raises(
        ProviderUnavailable,
        match=f"cannot reach the model server at {url}: connection refused "
        r"\(gave up after 1 try\)",
    ):
        await provider.complete(REQUEST)
    await provider.aclose()


async def test_slow_server_times_out_as_unavailable(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(text="late", latency=3.0))
    provider = _provider(model_server, timeout=1.0, max_retries=0)
    with pytest.raises(ProviderUnavailable, match="no answer within 1 s"):
        await provider.complete(REQUEST)
    await provider.aclose()


async def test_other_api_errors_name_status_and_message(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=400, text="max_tokens: too large"))
    provider = _provider(model_server)
    with pytest.raises(
        ProviderError, match=r"answered 400 invalid_request_error: max_tokens: too large$"
    ):
        await provider.complete(REQUEST)
    await provider.aclose()


async def test_one_client_per_loop_shared_and_closed_by_last_user(
    model_server: ModelServer,
) -> None:
    model_server.add_rule(contains="", reply="ok")
    first = _provider(model_server)
    second = _provider(model_server)
    await first.complete(REQUEST)
    client = first.client()
    await first.complete(REQUEST)
    assert first.client() is client
    await second.complete(REQUEST)
    assert second.client() is client
    other = _provider(model_server, max_retries=0)
    assert other.client() is not client
    await other.aclose()
    await first.aclose()
    assert not client.is_closed()  # `second` still holds it
    await second.aclose()
    assert client.is_closed()
    assert len(model_server.requests) == 3


def test_a_new_event_loop_gets_a_new_client(model_server: ModelServer) -> None:
    model_server.add_rule(contains="", reply="ok")
    provider = _provider(model_server)

    async def ask() -> object:
        await provider.complete(REQUEST)
        return provider.client()

    first = asyncio.run(ask())
    second = asyncio.run(ask())
    assert first is not second
    assert len(model_server.requests) == 2
    # both loops are closed now: their entries are dropped rather than kept forever
    assert len(CLIENTS) == 0


async def test_connection_dropped_mid_stream_is_a_broken_stream(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(chunks=["one ", "two ", "three"], abort_after=2))
    provider = _provider(model_server, max_retries=3)
    deltas: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert deltas == ["one ", "two "]
    assert info.value.chars == 8 and isinstance(info.value, ProviderUnavailable)
    assert str(info.value) == (
        f"the answer from the model server at {model_server.url} ended mid-message after 8 "
        "characters: the server closed the connection"
    )
    assert len(model_server.requests) == 1  # the SDK never retries a stream that began


async def test_dispatch_is_signalled_once_the_request_is_sent_not_when_the_answer_comes(
    model_server: ModelServer,
) -> None:
    """Work started at dispatch overlaps the model's latency: the signal must come while the
    server is still thinking, and once more (harmlessly) when the answer begins."""
    model_server.enqueue(Reply(text="```python\nprint(1)\n```", latency=1.0))
    provider = _provider(model_server)
    calls: list[tuple[float, int]] = []
    deltas: list[str] = []
    await provider.complete(
        REQUEST, deltas.append, lambda: calls.append((time.monotonic(), len(deltas)))
    )
    await provider.aclose()
    (request,) = model_server.requests
    assert len(calls) == 2 and calls[0][1] == 0 and calls[1][1] == 0
    # The first signal came before the server's 1 s latency was over (the body had been sent).
    assert calls[0][0] < request.received_at + 0.5 < calls[1][0]
