"""The model port: one small protocol for every model provider and for the cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import ProviderUnavailable

DeltaCallback = Callable[[str], None]
DispatchCallback = Callable[[], None]
RetryCallback = Callable[[str], None]
"""Told why a model request is being sent again (the reason, in words)."""

_RETRY: ContextVar[RetryCallback | None] = ContextVar("codeflow_retry", default=None)


@contextmanager
def retry_notices(callback: RetryCallback | None) -> Iterator[None]:
    """Within this block, a provider that sends this task's request again (its SDK retrying a
    rate limit, an overload, a timeout) says so to `callback`: an outage of several seconds is
    then shown as retries with their reason, not as a request that hangs."""
    token = _RETRY.set(callback)
    try:
        yield
    finally:
        _RETRY.reset(token)


def notify_retry(reason: str) -> None:
    """Called by providers when a request of the current task goes out again."""
    callback = _RETRY.get()
    if callback is not None:
        try:
            callback(reason)
        except Exception:  # a display must never break a request
            pass


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str
    stable: int = 0
    """How many leading characters of `content` are the same in every request of a run (the
    stable prefix); a provider that caches prompts marks the end of them, so later requests
    of the run read that prefix from the model's cache instead of paying for it again."""

    @property
    def parts(self) -> tuple[str, str]:
        """(stable prefix, the rest): the text is the same either way, only the mark differs."""
        cut = max(0, min(self.stable, len(self.content)))
        return self.content[:cut], self.content[cut:]


@dataclass(frozen=True)
class LLMRequest:
    system: str
    messages: tuple[Message, ...]
    max_tokens: int = 4096
    temperature: float | None = None
    purpose: str = "generate"
    """Why the call is made (`generate`, `fix`, `improve`, `verify`); not part of the cache key."""
    volatile: tuple[str, ...] = ()
    """Passages of the messages that describe the machine, not the request (the versions of
    installed libraries); not part of the cache key, so a recorded notebook still replays
    after a library update or on a colleague's machine."""

    def cache_payload(self) -> dict[str, Any]:
        """What identifies the request for the cache (everything the model sees but the
        `volatile` passages)."""

        def keyed(text: str) -> str:
            for passage in self.volatile:
                if passage:
                    text = text.replace(passage, "")
            return text

        return {
            "system": self.system,
            "messages": [{"role": m.role, "content": keyed(m.content)} for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }


@dataclass(frozen=True)
class LLMResponse:
    text: str
    model: str
    input_tokens: int = 0
    """Every prompt token, cached or not (so budgets mean the same with or without caching)."""
    output_tokens: int = 0
    stop_reason: str | None = None
    cached: bool = False
    cache_write_tokens: int = 0
    """Of `input_tokens`, those written to the model's prompt cache (billed above input)."""
    cache_read_tokens: int = 0
    """Of `input_tokens`, those read from the model's prompt cache (billed far below input)."""
    cache_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StreamInterrupted(ProviderUnavailable):
    """The answer started but its stream ended mid-message (a dropped connection, an error
    event). The SDK retries only before an answer starts, so the caller may ask once more."""

    def __init__(self, message: str, *, chars: int = 0) -> None:
        super().__init__(message)
        self.chars = chars
        """How many characters of text had arrived when the stream ended."""


@runtime_checkable
class Provider(Protocol):
    name: str
    """Provider prefix as in `anthropic:<model>`."""

    model: str

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
        """Ask the model; stream text pieces to `on_delta` as they arrive.

        `on_dispatch` is called once the request is ready to go out (the SDK is loaded and the
        request built), so that callers can start slower work that would otherwise compete
        with preparing the request for the CPU: it then overlaps the model's latency.
        """

    async def aclose(self) -> None:
        """Release connections."""
