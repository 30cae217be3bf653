"""Model API faults through the real SDKs: which are retried, how often, how long the SDK waits,
and the error each leaves behind when it persists (its class, exit status and message)."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelserver import PROSE_TEXT, ModelServer, Reply

from codeflow_magic.errors import AuthenticationError, ProviderError, ProviderUnavailable
from codeflow_magic.providers.anthropic import AnthropicProvider
from codeflow_magic.providers.base import LLMRequest, Message, Provider, StreamInterrupted
from codeflow_magic.providers.cache import CachedProvider
from codeflow_magic.providers.openai_compat import OpenAICompatProvider

REQUEST = LLMRequest(system="s", messages=(Message("user", "add two numbers"),), max_tokens=64)
KINDS = ("anthropic", "openai")


def make(kind: str, server: ModelServer, *, max_retries: int = 2, timeout: float = 30) -> Provider:
    if kind == "anthropic":
        return AnthropicProvider(
            "claude-test",
            api_key="k",
            base_url=server.url,
            max_retries=max_retries,
            timeout=timeout,
        )
    return OpenAICompatProvider(
        "gpt-test",
        api_key="k",
        base_url=server.openai_url,
        max_retries=max_retries,
        timeout=timeout,
    )


def base_url(kind: str, server: ModelServer) -> str:
    return server.url if kind == "anthropic" else server.openai_url


TRANSIENT = {
    "429": (Reply(status=429), "is unavailable: 429 rate_limit_error: scripted rate_limit_error"),
    "529": (Reply(status=529), "is unavailable: 529 overloaded_error: scripted overloaded_error"),
    "500": (Reply(status=500), "is unavailable: 500 api_error: scripted api_error (500)"),
    "reset": (Reply(fault="reset"), "cannot reach the model server at {url}: connection reset"),
    "hang": (Reply(fault="hang"), "cannot reach the model server at {url}: no answer within 0.5 s"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", sorted(TRANSIENT))
async def test_a_persistent_transient_fault_is_retried_then_unavailable(
    model_server: ModelServer, kind: str, fault: str
) -> None:
    reply, expected = TRANSIENT[fault]
    model_server.add_rule(contains="", reply=reply)
    provider = make(kind, model_server, max_retries=2, timeout=0.5 if fault == "hang" else 30)
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    await provider.aclose()
    message = str(info.value)
    assert expected.format(url=base_url(kind, model_server)) in message
    assert message.endswith("(gave up after 3 tries)")
    assert info.value.exit_status == 5
    counts = [r.retry_count for r in model_server.requests]
    # a hung first try may be given up on before a busy server has read it; its retries count
    assert counts == [0, 1, 2] or (fault == "hang" and counts == [1, 2]), counts
    assert all(r.fault == reply.fault or r.status == reply.status for r in model_server.requests)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", sorted(TRANSIENT))
async def test_a_transient_fault_once_is_invisible(
    model_server: ModelServer, kind: str, fault: str
) -> None:
    model_server.enqueue(TRANSIENT[fault][0], "the answer")
    provider = make(kind, model_server, timeout=0.5 if fault == "hang" else 30)
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "the answer"
    assert [r.retry_count for r in model_server.requests] == [0, 1]


NOT_RETRIED = {
    400: (ProviderError, "answered 400 invalid_request_error: scripted invalid_request_error"),
    401: (AuthenticationError, "the API key was rejected by {url} (401): invalid x-api-key"),
    403: (ProviderError, "answered 403 permission_error: scripted permission_error (403); check"),
    404: (ProviderError, "answered 404 not_found_error: scripted not_found_error (404); check"),
    413: (ProviderError, "answered 413 request_too_large: scripted request_too_large (413); the"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", sorted(NOT_RETRIED))
async def test_client_errors_fail_at_once_without_retry(
    model_server: ModelServer, kind: str, status: int
) -> None:
    cls, expected = NOT_RETRIED[status]
    model_server.add_rule(contains="", reply=Reply(status=status))
    provider = make(kind, model_server, max_retries=3)
    with pytest.raises(ProviderError) as info:
        await provider.complete(REQUEST)
    await provider.aclose()
    assert type(info.value) is cls and info.value.exit_status == 3
    assert expected.format(url=base_url(kind, model_server)) in str(info.value)
    assert len(model_server.requests) == 1


async def test_a_server_error_marked_not_to_retry_is_a_provider_error(
    model_server: ModelServer,
) -> None:
    """The model server's own reply to an unscripted prompt: a 500 with x-should-retry: false."""
    provider = make("anthropic", model_server, max_retries=3)
    with pytest.raises(ProviderError, match="answered 500 api_error: modelserver: no scripted"):
        await provider.complete(REQUEST)
    await provider.aclose()
    assert len(model_server.requests) == 1


async def test_the_sdk_waits_the_retry_after_the_api_asks_for(model_server: ModelServer) -> None:
    model_server.enqueue(
        Reply(status=429, retry_after=1), Reply(status=529, retry_after=2), "after waiting"
    )
    provider = make("anthropic", model_server, max_retries=3)
    response = await provider.complete(REQUEST)
    await provider.aclose()
    assert response.text == "after waiting"
    first, second, third = model_server.requests
    assert (first.retry_after, second.retry_after) == ("1", "2")
    # measured by the server: from the end of each error answer to the arrival of the retry
    assert first.answered_at is not None and second.answered_at is not None
    assert second.received_at - first.answered_at >= 1.0
    assert third.received_at - second.answered_at >= 2.0


async def test_rate_limit_that_persists_names_the_wait_it_asked_for(
    model_server: ModelServer,
) -> None:
    model_server.add_rule(contains="", reply=Reply(status=429, retry_after=1, text="slow down"))
    provider = make("anthropic", model_server, max_retries=1)
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(REQUEST)
    await provider.aclose()
    assert str(info.value) == (
        f"the model API at {model_server.url} is unavailable: 429 rate_limit_error: slow down "
        "(gave up after 2 tries; it asked to wait 1 s)"
    )
    first, second = model_server.requests
    assert first.answered_at is not None and second.received_at - first.answered_at >= 1.0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_cut_before_any_text_is_a_broken_stream(
    model_server: ModelServer, kind: str
) -> None:
    model_server.add_rule(contains="", reply=Reply(fault="cut_start"))
    provider = make(kind, model_server, max_retries=3)
    deltas: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        await provider.complete(REQUEST, deltas.append)
    await provider.aclose()
    assert deltas == [] and info.value.chars == 0
    assert "ended mid-message after 0 characters: the server closed the connection" in str(
        info.value
    )
    assert len(model_server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_empty_and_prose_answers_are_answers_not_errors(
    model_server: ModelServer, kind: str
) -> None:
    model_server.enqueue(Reply(fault="empty"), Reply(fault="prose"))
    provider = make(kind, model_server)
    empty = await provider.complete(REQUEST)
    prose = await provider.complete(REQUEST)
    await provider.aclose()
    assert empty.text == "" and prose.text == PROSE_TEXT
    assert len(model_server.requests) == 2


async def test_an_empty_answer_is_not_recorded_in_the_cache(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.enqueue(Reply(fault="empty"), "```python\nprint(3)\n```")
    cached = CachedProvider(make("anthropic", model_server), tmp_path, "rw")
    first = await cached.complete(REQUEST)
    assert first.text == "" and first.cache_key is None
    assert list(tmp_path.rglob("*.json")) == []
    second = await cached.complete(REQUEST)  # asked again, not replayed
    third = await cached.complete(REQUEST)  # now from the recording
    await cached.aclose()
    assert second.text == third.text == "```python\nprint(3)\n```"
    assert not second.cached and third.cached
    assert len(model_server.requests) == 2 and len(list(tmp_path.rglob("*.json"))) == 1
