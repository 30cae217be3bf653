"""The model port: one small protocol for every model provider and for the cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..errors import ProviderUnavailable

DeltaCallback = Callable[[str], None]
DispatchCallback = Callable[[], None]


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class LLMRequest:
    system: str
    messages: tuple[Message, ...]
    max_tokens: int = 4096
    temperature: float | None = None
    purpose: str = "generate"
    """Why the call is made (`generate`, `fix`, `improve`, `verify`); not part of the cache key."""

    def cache_payload(self) -> dict[str, Any]:
        """What identifies the request for the cache (everything the model sees)."""
        return {
            "system": self.system,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }


@dataclass(frozen=True)
class LLMResponse:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    cached: bool = False
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
