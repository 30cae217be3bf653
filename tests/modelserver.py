"""A loopback HTTP server speaking the Anthropic Messages API and OpenAI chat completions.

Tests point the real `anthropic` / `openai` SDKs at it, so everything from the HTTP client to
SSE parsing and retries runs for real; only the model is scripted. Replies come, in order of
priority, from a FIFO queue (`enqueue`), from rules matched against the last user message
(`add_rule`), or from the default; with no default an unmatched prompt gets a 500 that names
the prompt (and tells the SDK not to retry) so a test can never pass by accident.

API faults, per reply: `status` (an error body of the API's shape; 429, 500, 529 and the other
retryable statuses carry `retry-after-ms: 20` unless `retry_after` sets a `retry-after` header
or `headers` name one), `latency` (seconds before answering), `abort_after` (drop the
connection after N streamed text pieces), and `fault`, one of FAULTS:

- `reset`: the connection is reset (RST, SO_LINGER 0) before any byte of the answer;
- `hang`: no byte at all until the client gives up (or `hang_s`/`--hang` passes, or the
  server stops), so a client's timeout decides how long it lasts;
- `cut`: the stream stops mid-message, after half of the text pieces (or `abort_after`);
- `cut_start`: the stream stops right after `message_start`, before any text;
- `empty`: a complete 200 answer with no text at all;
- `prose`: a complete answer in words with no code block (`text`, or a stock sentence).

Seeded random faults for soak tests: with `fault_rate` p (constructor, `set_faults`, `--fault-rate`
with `--seed`), each model request independently gets, with probability p, one of
RANDOM_FAULTS (or the given `fault_kinds`; a random 429 asks to wait RANDOM_RETRY_AFTER
seconds) instead of its scripted reply, which then stays in
place for the retry: a faulted request consumes no queue entry and no rule use. The draws come
from one `random.Random(seed)` in arrival order. Every recorded request notes the fault it got
(`fault`), the status sent, and when it arrived and was answered (monotonic clock), so tests can
check retry timing from the server's side.

Prompt caching is accounted as Anthropic does (`PromptCache`): a prefix that ends at a
`cache_control` breakpoint and is at least CACHE_MIN_TOKENS long (this server's own count) is
written, and read by later requests within CACHE_TTL_S; the usage of every answer reports
`cache_creation_input_tokens` and `cache_read_input_tokens` beside `input_tokens`, and
`billed_input` weighs them (writes 1.25x, reads 0.1x) so tests and benchmarks can compare.

In-process::

    with ModelServer() as server:
        server.add_rule(contains="add two numbers", reply="```python\\nprint(1 + 2)\\n```")
        client = anthropic.Anthropic(base_url=server.url, api_key="test-key")

As a subprocess (browser tests, CLI runs, notebooks)::

    python tests/modelserver.py --port 0 --rules rules.json --port-file url.txt [--latency 0.5]

    python tests/modelserver.py --rules rules.json --fault-rate 0.2 --seed 7 [--faults reset,529]

The rules file is a JSON list of `{"contains": ..., "text": ..., "status": ..., "latency": ...,
"chunk_delay": ..., "chunks": [...], "fault": ..., "retry_after": ..., "times": N}` objects (an
entry with `"default": true` is the default reply), or an object `{"rules": [...], "default":
{...}}`. The URL is printed on stdout and written to the port file. At runtime:
`POST /_control/rules` (one rule or a list), `POST /_control/enqueue`, `POST /_control/reset`,
`POST /_control/faults` (`{"rate": p, "seed": n, "kinds": [...]}`), `GET /_control/requests`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}
TEST_API_KEY = "sk-ant-test-loopback-key"

FAULTS = ("reset", "hang", "cut", "cut_start", "empty", "prose")
"""Values of `Reply.fault` (see the module docstring)."""
RANDOM_FAULTS = ("reset", "hang", "cut", "cut_start", "empty", "prose", "429", "529", "500")
"""What the random fault mode draws from: the faults above and three error statuses."""
PROSE_TEXT = "I would add the two numbers with the plus operator and print the sum."
CUT_TEXT = "Here is the code:\n```python\nvalues = [1, 2, 3]\nprint(sum(val"
RANDOM_RETRY_AFTER = "1"
"""The `retry-after` a random 429 carries (seconds)."""


def fault_reply(kind: str) -> Reply:
    """The reply the random fault mode sends for one of RANDOM_FAULTS."""
    if kind.isdigit():
        status = int(kind)
        return Reply(status=status, retry_after=RANDOM_RETRY_AFTER if status == 429 else None)
    if kind == "cut":
        return Reply(text=CUT_TEXT, fault="cut")
    if kind in FAULTS:
        return Reply(fault=kind)
    raise ValueError(f"unknown fault {kind!r}; use one of: {', '.join(RANDOM_FAULTS)}")


@dataclass
class Reply:
    """One scripted answer; `status` other than 200 gives the API's error body for it."""

    text: str = ""
    status: int = 200
    latency: float = 0.0
    chunk_delay: float = 0.0
    chunks: list[str] | None = None
    error_type: str | None = None
    headers: dict[str, str] | None = None
    stop_reason: str = "end_turn"
    abort_after: int | None = None
    """Drop the connection after this many streamed text pieces (a dying server)."""
    fault: str | None = None
    """One of FAULTS: how the answer goes wrong at the transport or content level."""
    retry_after: float | str | None = None
    """With an error status: the `retry-after` header (seconds, or an HTTP date)."""

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; use one of: {', '.join(FAULTS)}")
        if self.fault == "prose" and not self.text and self.chunks is None:
            self.text = PROSE_TEXT

    @classmethod
    def from_obj(cls, obj: str | Reply | Mapping[str, Any]) -> Reply:
        if isinstance(obj, Reply):
            return obj
        if isinstance(obj, str):
            return cls(text=obj)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(obj) - known - {"contains", "times", "default"}
        if unknown:
            raise ValueError(f"unknown reply keys: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in obj.items() if k in known})

    def pieces(self) -> list[str]:
        """The streamed text pieces: `chunks` as given, else the text cut into small pieces."""
        if self.fault == "empty":
            return []
        if self.chunks is not None:
            return list(self.chunks)
        size = 24
        return [self.text[i : i + size] for i in range(0, len(self.text), size)] or [""]

    @property
    def full_text(self) -> str:
        if self.fault == "empty":
            return ""
        return "".join(self.chunks) if self.chunks is not None else self.text

    @property
    def cut_at(self) -> int | None:
        """After how many text pieces the stream is dropped (None: it completes)."""
        if self.fault == "cut_start":
            return 0
        if self.fault == "cut" and self.abort_after is None:
            return max(1, len(self.pieces()) // 2)
        return self.abort_after

    def error_headers(self) -> dict[str, str]:
        """Headers of an error answer: the given ones, plus when to retry."""
        headers = dict(self.headers or {})
        names = {k.lower() for k in headers}
        if self.retry_after is not None:
            value = self.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            headers["retry-after"] = str(value)
        elif self.status in RETRYABLE and not names & {"retry-after", "retry-after-ms"}:
            headers["retry-after-ms"] = "20"
        return headers


@dataclass
class Rule:
    contains: str
    reply: Reply
    times: int | None = None
    """How many requests the rule may answer; None is unlimited."""
    used: int = 0


@dataclass
class RecordedRequest:
    """One request as received: path, parsed JSON body, headers (lower-case names)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float = field(default_factory=time.time)
    received_at: float = field(default_factory=time.monotonic)
    """Arrival on the monotonic clock (for intervals: retry timing)."""
    answered_at: float | None = None
    """When the answer was complete, cut, reset or abandoned (monotonic clock)."""
    fault: str | None = None
    """The fault this request got (`reset`, `cut`, ..., or `status 529`), None for a plain answer."""
    status: int = 200
    retry_after: str | None = None
    """The `retry-after` header sent with the answer, if any."""
    usage: dict[str, int] = field(default_factory=dict)
    """The usage reported for a complete answer (prompt-cache fields for the Messages API)."""

    @property
    def api(self) -> str:
        return "openai" if self.path.endswith("/chat/completions") else "anthropic"

    @property
    def api_key(self) -> str | None:
        """The credential the client sent (`x-api-key` or a bearer token)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def last_user(self) -> str:
        return last_user_text(self.body)

    @property
    def system(self) -> str:
        if self.api == "openai":
            return "\n".join(
                _content_text(m.get("content"))
                for m in self.body.get("messages", [])
                if isinstance(m, dict) and m.get("role") == "system"
            )
        return _content_text(self.body.get("system"))

    @property
    def all_text(self) -> str:
        """Everything the model would see: system prompt and every message."""
        parts = [self.system]
        for m in self.body.get("messages", []):
            if isinstance(m, dict):
                parts.append(_content_text(m.get("content")))
        return "\n".join(parts)

    @property
    def retry_count(self) -> int:
        """How many times the SDK had already tried this request (its `x-stainless-retry-count`)."""
        try:
            return int(self.headers.get("x-stainless-retry-count", "0"))
        except ValueError:
            return 0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "body": self.body,
            "headers": self.headers,
            "fault": self.fault,
            "status": self.status,
            "usage": self.usage,
        }


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return str(content)


def last_user_text(body: Mapping[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return _content_text(m.get("content"))
    return ""


def count_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


CACHE_MIN_TOKENS = 1024
"""The shortest prefix the prompt cache keeps, in this server's tokens (Anthropic's for Sonnet)."""
CACHE_TTL_S = 300.0
"""How long a cached prefix lives after its last use (Anthropic's ephemeral cache: 5 minutes)."""
CACHE_WRITE_RATE = 1.25
CACHE_READ_RATE = 0.1
"""What a cache write and a cache read cost, as a multiple of an ordinary input token."""


def billed_input(usage: Mapping[str, Any]) -> float:
    """Input tokens as billed, in ordinary input tokens: writes at 1.25x, reads at 0.1x."""
    return (
        int(usage.get("input_tokens") or 0)
        + CACHE_WRITE_RATE * int(usage.get("cache_creation_input_tokens") or 0)
        + CACHE_READ_RATE * int(usage.get("cache_read_input_tokens") or 0)
    )


def _blocks(content: Any) -> list[tuple[str, bool]]:
    """(text, carries a cache breakpoint) for each block of a system prompt or a message."""
    if isinstance(content, str):
        return [(content, False)] if content else []
    if isinstance(content, list):
        return [
            (str(b.get("text", "")), isinstance(b.get("cache_control"), dict))
            for b in content
            if isinstance(b, dict)
        ]
    return []


class PromptCache:
    """Anthropic's prompt-cache accounting: a prefix ending at a `cache_control` breakpoint is
    written when it is at least `min_tokens` long, and read by a later request that starts
    with it (looked up at every block boundary up to the last breakpoint) within `ttl`
    seconds of its last use; the rest is ordinary input."""

    def __init__(self, min_tokens: int = CACHE_MIN_TOKENS, ttl: float = CACHE_TTL_S) -> None:
        self.min_tokens = min_tokens
        self.ttl = ttl
        self.offset = 0.0
        """Seconds added to the clock (`advance`), so a test can outlive the cache."""
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def account(self, body: Mapping[str, Any], total: int) -> dict[str, int]:
        """The usage fields of one Messages API request whose prompt is `total` tokens."""
        blocks = [(str(body.get("model", "")), False), *_blocks(body.get("system"))]
        for m in body.get("messages") or []:
            if isinstance(m, dict):
                blocks.extend(_blocks(m.get("content")))
        digest = hashlib.sha256()
        chars = 0
        bounds: list[tuple[str, int, bool]] = []  # (prefix hash, tokens, breakpoint)
        for i, (text, marked) in enumerate(blocks):
            digest.update(text.encode() + b"\x00")
            chars += len(text) if i else 0  # the model name is part of the key, not the prompt
            bounds.append((digest.hexdigest(), min(total, (chars + 3) // 4), marked))
        marks = [i for i, b in enumerate(bounds) if b[2]]
        read = written = 0
        if marks:
            now = self.now()
            with self._lock:
                for key, tokens, _ in reversed(bounds[: marks[-1] + 1]):
                    if self._expiry.get(key, 0.0) > now:
                        read = tokens
                        self._expiry[key] = now + self.ttl  # a read refreshes the lifetime
                        break
                for i in marks:
                    key, tokens, _ = bounds[i]
                    if tokens >= self.min_tokens and tokens > read:
                        self._expiry[key] = now + self.ttl
                        written = max(written, tokens - read)
        return {
            "input_tokens": max(0, total - read - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }


class ModelServer:
    """The scripted model; start with `start()` or use as a context manager."""

    def __init__(
        self,
        port: int = 0,
        *,
        default: str | Reply | None = None,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        seed: int | None = None,
        fault_kinds: tuple[str, ...] | list[str] | None = None,
        hang_s: float = 600.0,
    ) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._rules: list[Rule] = []
        self.default: Reply | None = Reply.from_obj(default) if default is not None else None
        self.latency = latency
        self.hang_s = hang_s
        """The longest a `hang` lasts when the client never gives up."""
        self.requests: list[RecordedRequest] = []
        self.fault_rate = 0.0
        self.fault_kinds: tuple[str, ...] = RANDOM_FAULTS
        self._rng = random.Random(seed)
        self._stopping = threading.Event()
        self.prompt_cache = PromptCache()
        """Anthropic's prompt-cache accounting (`min_tokens`, `ttl`, `advance`, `clear`)."""
        self.set_faults(fault_rate, seed, fault_kinds)
        self._httpd = _QuietServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- scripting -------------------------------------------------------------------------

    def enqueue(self, *replies: str | Reply) -> None:
        """Answer the next requests with these replies, in order, before any rule."""
        with self._lock:
            self._queue.extend(Reply.from_obj(r) for r in replies)

    def add_rule(
        self,
        contains: str = "",
        reply: str | Reply | None = None,
        *,
        times: int | None = None,
        **reply_fields: Any,
    ) -> None:
        """Answer requests whose last user message contains `contains` (rules match in order)."""
        if reply is None:
            reply = Reply(**reply_fields)
        elif reply_fields:
            raise TypeError("give either a reply or reply fields, not both")
        with self._lock:
            self._rules.append(Rule(contains, Reply.from_obj(reply), times))

    def load_rules(self, data: Any) -> None:
        """Rules from parsed JSON: a list of rule objects, or {"rules": [...], "default": ...}."""
        if isinstance(data, dict):
            if "default" in data and data["default"] is not None:
                self.default = Reply.from_obj(data["default"])
            data = data.get("rules", [])
        if not isinstance(data, list):
            raise ValueError("rules must be a JSON list of objects")
        for item in data:
            if not isinstance(item, dict):
                raise ValueError(f"a rule must be an object, got {item!r}")
            if item.get("default"):
                self.default = Reply.from_obj(item)
                continue
            self.add_rule(
                str(item.get("contains", "")), Reply.from_obj(item), times=item.get("times")
            )

    def set_faults(
        self,
        rate: float,
        seed: int | None = None,
        kinds: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        """Random faults: each request gets one of `kinds` with probability `rate`."""
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate!r} must be between 0 and 1")
        chosen = tuple(kinds) if kinds else RANDOM_FAULTS
        for kind in chosen:
            fault_reply(kind)  # raises for an unknown name
        with self._lock:
            self.fault_rate = rate
            self.fault_kinds = chosen
            self._rng = random.Random(seed)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self.requests.clear()
        self.prompt_cache.clear()

    def next_reply(self, prompt: str) -> tuple[Reply, str | None]:
        """The reply for a request and the random fault drawn for it (None: none drawn)."""
        with self._lock:
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                kind = self._rng.choice(self.fault_kinds)
                return fault_reply(kind), kind
        return self.pick(prompt), None

    def pick(self, prompt: str) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            for rule in self._rules:
                if rule.contains in prompt and (rule.times is None or rule.used < rule.times):
                    rule.used += 1
                    return rule.reply
            if self.default is not None:
                return self.default
        return Reply(
            text="modelserver: no scripted reply for prompt: " + prompt[:200],
            status=500,
            headers={"x-should-retry": "false"},
        )

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    # --- inspection ------------------------------------------------------------------------

    def prompts(self) -> list[str]:
        """The last user message of every model request received so far."""
        with self._lock:
            return [r.last_user for r in self.requests]

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for the Anthropic SDK (`ANTHROPIC_BASE_URL`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (it appends `/chat/completions`)."""
        return self.url + "/v1"

    def env(self, api_key: str = TEST_API_KEY) -> dict[str, str]:
        """Environment for a subprocess that should talk to this server."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": api_key,
            "OPENAI_BASE_URL": self.openai_url,
        }

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> ModelServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"modelserver-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends hanging answers
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """A client that resets or drops its connection is part of the tests, not a server error."""

    request_queue_size = 128
    """The listen backlog. socketserver's default of 5 drops the connections of a burst of
    requests (a batch sends 16 at once), which the client's TCP stack then retries only after
    a second: a delay no model API adds."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _error_body(api: str, reply: Reply) -> dict[str, Any]:
    kind = reply.error_type or ERROR_TYPES.get(reply.status, "api_error")
    default = "invalid x-api-key" if reply.status == 401 else f"scripted {kind} ({reply.status})"
    message = reply.full_text or default
    if api == "openai":
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return {"type": "error", "error": {"type": kind, "message": message}}


def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Small SSE writes on a kept-alive connection otherwise meet the client's delayed ACK
        # (about 40 ms a reply): an "instant" model must be instant.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # --- plumbing ----------------------------------------------------------------------

        def _read_json(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw or b"null")

        def _send_json(
            self, status: int, payload: Any, headers: Mapping[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def _start_stream(self, headers: Mapping[str, str] | None) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _abort(self) -> None:
            self._done()
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _reset(self) -> None:
            """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
            self._done()
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the reader holds a reference that would delay the close
            self.connection.close()

        def _hang(self) -> None:
            """Send nothing until the client closes its end, the server stops or `hang_s`."""
            self.close_connection = True
            conn = self.connection
            deadline = time.monotonic() + server.hang_s
            while not server._stopping.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select([conn], [], [], 0.05)
                if not readable:
                    continue
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return  # the client gave up
                except OSError:
                    return
                time.sleep(0.05)

        def _end_stream(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        # --- routes ------------------------------------------------------------------------

        def do_GET(self) -> None:
            if self.path.startswith("/_control/requests"):
                with server._lock:
                    items = [r.as_json() for r in server.requests]
                self._send_json(200, items)
                return
            self._send_json(
                404,
                {
                    "type": "error",
                    "error": {"type": "not_found_error", "message": f"no route {self.path}"},
                },
            )

        def do_POST(self) -> None:
            try:
                body = self._read_json()
            except ValueError:
                self._send_json(
                    400,
                    {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "body is not JSON"},
                    },
                )
                return
            path = self.path.split("?", 1)[0]
            try:
                if path.startswith("/_control/"):
                    self._control(path, body)
                elif path.endswith("/v1/messages"):
                    self._model("anthropic", path, body)
                elif path.endswith("/chat/completions"):
                    self._model("openai", path, body)
                else:
                    self._send_json(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": f"no route {path}"},
                        },
                    )
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _control(self, path: str, body: Any) -> None:
            try:
                if path == "/_control/rules":
                    single = isinstance(body, dict) and not (
                        "rules" in body or isinstance(body.get("default"), dict)
                    )
                    server.load_rules([body] if single else body)
                elif path == "/_control/enqueue":
                    items = body if isinstance(body, list) else [body]
                    server.enqueue(*(Reply.from_obj(i) for i in items))
                elif path == "/_control/reset":
                    server.reset()
                elif path == "/_control/faults":
                    if not isinstance(body, dict):
                        raise ValueError('faults: expected {"rate": p, "seed": n, "kinds": [...]}')
                    server.set_faults(
                        float(body.get("rate", 0.0)), body.get("seed"), body.get("kinds")
                    )
                else:
                    self._send_json(404, {"error": f"no control route {path}"})
                    return
            except (TypeError, ValueError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, {"ok": True})

        def _model(self, api: str, path: str, body: Any) -> None:
            if not isinstance(body, dict):
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = RecordedRequest(path, body, headers)
            server.record(recorded)
            self._recorded: RecordedRequest | None = recorded
            try:
                self._answer(api, path, body, headers, recorded)
            finally:
                self._done()
                self._recorded = None

        def _done(self) -> None:
            """Note when the answer ended (before a reset or cut becomes visible to the client)."""
            recorded = getattr(self, "_recorded", None)
            if recorded is not None and recorded.answered_at is None:
                recorded.answered_at = time.monotonic()

        def _answer(
            self,
            api: str,
            path: str,
            body: dict[str, Any],
            headers: dict[str, str],
            recorded: RecordedRequest,
        ) -> None:
            prompt = last_user_text(body)
            reply, _ = server.next_reply(prompt)
            recorded.status = reply.status
            recorded.fault = reply.fault or (
                f"status {reply.status}" if reply.status != 200 else None
            )
            delay = reply.latency + server.latency
            if delay > 0:
                time.sleep(delay)
            if reply.fault == "reset":
                self._reset()
                return
            if reply.fault == "hang":
                self._hang()
                return
            extra = dict(reply.headers or {})
            if reply.status != 200:
                extra = reply.error_headers()
                recorded.retry_after = extra.get("retry-after")
                self._send_json(reply.status, _error_body(api, reply), extra)
                self._done()
                return
            prompt_chars = len(RecordedRequest(path, body, headers).all_text)
            input_tokens = count_tokens(" " * prompt_chars)
            output_tokens = count_tokens(reply.full_text)
            usage: dict[str, int] = {"input_tokens": input_tokens}
            if api == "anthropic":
                usage = server.prompt_cache.account(body, input_tokens)
            recorded.usage = {**usage, "output_tokens": output_tokens}
            model = str(body.get("model", "scripted-model"))
            if not body.get("stream") and reply.cut_at is not None:
                self._send_cut_json(extra)
                return
            if api == "anthropic":
                if body.get("stream"):
                    self._anthropic_stream(reply, model, usage, output_tokens, extra)
                else:
                    content = (
                        []
                        if reply.fault == "empty"
                        else [{"type": "text", "text": reply.full_text}]
                    )
                    self._send_json(
                        200,
                        {
                            "id": "msg_" + uuid.uuid4().hex[:24],
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": content,
                            "stop_reason": reply.stop_reason,
                            "stop_sequence": None,
                            "usage": {**usage, "output_tokens": output_tokens},
                        },
                        extra,
                    )
            else:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                if body.get("stream"):
                    self._openai_stream(
                        reply, model, input_tokens, output_tokens, include_usage, extra
                    )
                else:
                    self._send_json(
                        200,
                        {
                            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": reply.full_text},
                                    "finish_reason": _openai_finish(reply.stop_reason),
                                }
                            ],
                            "usage": {
                                "prompt_tokens": input_tokens,
                                "completion_tokens": output_tokens,
                                "total_tokens": input_tokens + output_tokens,
                            },
                        },
                        extra,
                    )

        def _send_cut_json(self, headers: Mapping[str, str]) -> None:
            """A non-streamed answer whose body stops halfway (the announced length is longer)."""
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "4096")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(b'{"id": "msg_cut", "type": "message", "content": [')
            self._abort()

        def _sse(self, event: str | None, data: Any) -> None:
            head = f"event: {event}\n" if event else ""
            self._chunk(f"{head}data: {json.dumps(data)}\n\n")

        def _anthropic_stream(
            self,
            reply: Reply,
            model: str,
            usage: Mapping[str, int],
            out: int,
            extra: Mapping[str, str],
        ) -> None:
            self._start_stream(extra)
            self._sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_" + uuid.uuid4().hex[:24],
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
            cut_at = reply.cut_at
            if cut_at == 0 and reply.fault == "cut_start":
                self._abort()
                return
            if reply.fault != "empty":
                self._sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            self._sse("ping", {"type": "ping"})
            pieces = reply.pieces()
            for i, piece in enumerate(pieces):
                if i and reply.chunk_delay > 0:
                    time.sleep(reply.chunk_delay)
                if cut_at is not None and i >= cut_at:
                    self._abort()
                    return
                self._sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            if reply.fault == "cut":  # every piece went out: still stop before the end
                self._abort()
                return
            if reply.fault != "empty":
                self._sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            self._sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": out},
                },
            )
            self._sse("message_stop", {"type": "message_stop"})
            self._end_stream()

        def _openai_stream(
            self,
            reply: Reply,
            model: str,
            inp: int,
            out: int,
            include_usage: bool,
            extra: Mapping[str, str],
        ) -> None:
            ident = "chatcmpl-" + uuid.uuid4().hex[:24]
            created = int(time.time())

            def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
                return {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                }

            self._start_stream(extra)
            self._sse(
                None,
                chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ]
                ),
            )
            cut_at = reply.cut_at
            for i, piece in enumerate(reply.pieces()):
                if i and reply.chunk_delay > 0:
                    time.sleep(reply.chunk_delay)
                if cut_at is not None and i >= cut_at:
                    self._abort()
                    return
                self._sse(
                    None, chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                )
            if reply.fault in ("cut", "cut_start"):
                self._abort()
                return
            self._sse(
                None,
                chunk(
                    [{"index": 0, "delta": {}, "finish_reason": _openai_finish(reply.stop_reason)}]
                ),
            )
            if include_usage:
                self._sse(
                    None,
                    chunk(
                        [],
                        {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
                    ),
                )
            self._chunk("data: [DONE]\n\n")
            self._end_stream()

    return Handler


def _openai_finish(stop_reason: str) -> str:
    return {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}.get(
        stop_reason, "stop"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted model server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rules", type=Path, help="JSON rules file")
    parser.add_argument("--port-file", type=Path, help="write the base URL here once serving")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="probability (0 to 1) that a request gets a random fault instead of its reply",
    )
    parser.add_argument("--seed", type=int, help="seed of the random faults (repeatable runs)")
    parser.add_argument(
        "--faults",
        help="comma-separated faults to draw from (default: " + ",".join(RANDOM_FAULTS) + ")",
    )
    parser.add_argument(
        "--hang", type=float, default=600.0, help="longest a hang lasts, in seconds (default 600)"
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()] if args.faults else None
    try:
        server = ModelServer(
            args.port,
            latency=args.latency,
            fault_rate=args.fault_rate,
            seed=args.seed,
            fault_kinds=kinds,
            hang_s=args.hang,
        )
    except ValueError as exc:
        print(f"modelserver: {exc}", file=sys.stderr)
        return 2
    if args.rules is not None:
        try:
            server.load_rules(json.loads(args.rules.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            print(f"modelserver: cannot load rules from {args.rules}: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    if args.port_file is not None:
        tmp = args.port_file.with_name(args.port_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(server.url + "\n", encoding="utf-8")
        os.replace(tmp, args.port_file)
    print(server.url, flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
