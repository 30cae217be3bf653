"""The recorded-response cache: re-running a notebook replays the model's answers, offline.

An entry is keyed by what the model sees (provider, model, system prompt, messages, limits),
never by why it was asked. Entries are small JSON files safe to commit; they never hold a key
or a header. An empty answer is never recorded. Writes go to a temporary file in the same
folder and are renamed into place, so concurrent writers of one key leave one complete file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import CacheMiss, UsageError
from .base import DeltaCallback, DispatchCallback, LLMRequest, LLMResponse, Provider
from .catalogue import DEFAULT_KEY_MODEL

MODES = ("rw", "replay", "off")
CHUNK_CHARS = 256


def cache_key(provider: str, model: str, request: LLMRequest) -> str:
    """sha256 of the canonical JSON of everything that decides the answer."""
    payload = {"provider": provider, "model": model, "request": request.cache_payload()}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """A replayed answer streams in a few line-aligned pieces, like a live one."""
    out: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if current and len(current) + len(line) > size:
            out.append(current)
            current = ""
        current += line
    if current:
        out.append(current)
    return out


def _warn(message: str) -> None:
    print(f"codeflow: warning: {message}", file=sys.stderr)


class CachedProvider:
    """A Provider that answers from `cache_dir` when it can and records what it asks."""

    def __init__(
        self,
        inner: Provider | None,
        cache_dir: Path,
        mode: str = "rw",
        *,
        name: str | None = None,
        model: str | None = None,
        named: bool = True,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"cache mode {mode!r} is not allowed; expected one of rw, replay, off")
        if inner is None and mode != "replay":
            raise UsageError(
                f"cache mode {mode!r} needs a model provider; only replay works without"
            )
        resolved_name = name if name is not None else (inner.name if inner else None)
        resolved_model = model if model is not None else (inner.model if inner else None)
        if resolved_name is None or resolved_model is None:
            raise UsageError("a replay-only cache needs the provider name and model")
        self.inner = inner
        self.cache_dir = Path(cache_dir)
        self.mode = mode
        self.name = resolved_name
        self.model = resolved_model
        self.named = named
        """False when the request named no model: it is keyed by the default's placeholder,
        so a notebook recorded under another default replays the answers it recorded."""
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def key_for(self, request: LLMRequest) -> str:
        return cache_key(self.name, self.model if self.named else DEFAULT_KEY_MODEL, request)

    def _legacy_key(self, request: LLMRequest) -> str | None:
        """Where an entry recorded before default placeholders would be (by the model name)."""
        return None if self.named else cache_key(self.name, self.model, request)

    def _count(self, attr: str) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)

    def lookup(self, key: str) -> LLMResponse | None:
        """The recorded response for `key`; a corrupt entry counts as absent (with a warning)."""
        path = self.path_for(key)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn(f"cannot read cache entry {path}: {exc.strerror}; asking the model")
            return None
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict) or entry.get("key") != key:
                raise ValueError("key mismatch")
            text = entry["response"]["text"]
            usage = entry.get("usage") or {}
            if not isinstance(text, str):
                raise ValueError("text is not a string")
            return LLMResponse(
                text=text,
                model=str(entry["response"].get("model") or entry.get("model") or self.model),
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
                cache_write_tokens=int(usage.get("cache_write_tokens", 0)),
                cache_read_tokens=int(usage.get("cache_read_tokens", 0)),
                stop_reason=entry.get("stop_reason"),
                cached=True,
                cache_key=key,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            _warn(f"ignoring corrupt cache entry {path}")
            return None

    def store(self, key: str, request: LLMRequest, response: LLMResponse) -> Path | None:
        """Write the entry atomically; a failed write is reported, never fatal."""
        path = self.path_for(key)
        entry: dict[str, Any] = {
            "key": key,
            "provider": self.name,
            "model": self.model,
            "request": {
                "system": request.system,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages],
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
            },
            "response": {"text": response.text, "model": response.model},
            "usage": {
                "input_tokens": response.input_tokens,
                "output_tokens": response.output_tokens,
                "cache_write_tokens": response.cache_write_tokens,
                "cache_read_tokens": response.cache_read_tokens,
            },
            "stop_reason": response.stop_reason,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        data = json.dumps(entry, indent=2, ensure_ascii=False) + "\n"
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            _warn(f"cannot write cache entry {path}: {exc.strerror or exc}")
            return None
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass
        self._count("writes")
        return path

    async def complete(
        self,
        request: LLMRequest,
        on_delta: DeltaCallback | None = None,
        on_dispatch: DispatchCallback | None = None,
    ) -> LLMResponse:
        if self.mode == "off":
            if self.inner is None:  # unreachable: the constructor refuses it
                raise UsageError("no model provider")
            return await self.inner.complete(request, on_delta, on_dispatch)
        key = self.key_for(request)
        hit = self.lookup(key)
        legacy = self._legacy_key(request)
        if hit is None and legacy is not None:
            hit = self.lookup(legacy)
        if hit is not None:
            self._count("hits")
            if on_dispatch is not None:
                on_dispatch()
            if on_delta is not None:
                for piece in _chunks(hit.text):
                    on_delta(piece)
            return hit
        self._count("misses")
        if self.mode == "replay" or self.inner is None:
            raise CacheMiss(
                f"no recorded response for this request in {self.cache_dir}; "
                "run once with a model (CODEFLOW_CACHE=rw) to record it"
            )
        response = await self.inner.complete(request, on_delta, on_dispatch)
        if not response.text.strip():
            # An empty answer says nothing about the request: recording it would replay the
            # fault on every later run instead of asking again.
            return response
        self.store(key, request, response)
        return replace(response, cached=False, cache_key=key, extra=dict(response.extra))

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
