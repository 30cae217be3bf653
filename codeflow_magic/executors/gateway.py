"""`--backend gateway`: kernels on a Jupyter Kernel Gateway or Enterprise Gateway.

REST (`/api/kernels`) starts, interrupts, restarts and deletes the kernel; one websocket
(`/api/kernels/<id>/channels`) carries the messages. The token goes both as an
`Authorization: token` header and as a `?token=` query, because proxies in front of gateways
strip one or the other. Outputs, caps, Bash and the state summary use the same helpers as the
local kernel, and the same supervisor (`supervisor.py`) runs it, so a run behaves the same
wherever the kernel lives: a timeout interrupts (state kept) and restarts only if ignored; a
kernel that dies (the websocket closes, the server reports `restarting`/`dead`, or REST answers
404) is noticed and replaced.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from ..errors import BackendError, BackendUnavailable, UsageError
from ..models import ExecutionResult
from .base import OutputCallback
from .messaging import SnippetExecutorMixin
from .outputs import OutputCollector
from .snippets import fd_capture_snippet
from .supervisor import Death, Lost, Message, message, supervise

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["GatewayExecutor"]

_REST_POLL_S = 2.0
_PROTOCOL_VERSION = "5.3"
_SETUP_TIMEOUT_S = 10.0
_CLOSED = object()


class GatewayExecutor(SnippetExecutorMixin):
    """Runs code on one kernel of a remote Jupyter (Kernel|Enterprise) Gateway."""

    supports_install = False
    """A gateway's environment is shared and administered elsewhere: never pip-install into it."""

    def __init__(
        self,
        *,
        url: str,
        token: str = "",
        work_dir: Path | None = None,
        kernel_name: str = "python3",
        name: str = "gateway",
        timeout: float = 60.0,
        interrupt_grace: float = 3.0,
        max_output_chars: int = 200_000,
        connect_timeout: float = 10.0,
        startup_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"gateway URL {url!r} is not an http(s) URL (for example http://127.0.0.1:8888)"
            )
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.token = token
        self.work_dir = work_dir
        self.kernel_name = kernel_name
        self.name = name
        self.timeout = float(timeout)
        self.interrupt_grace = float(interrupt_grace)
        self.max_output_chars = int(max_output_chars)
        self.connect_timeout = float(connect_timeout)
        self.startup_timeout = float(startup_timeout)
        self.kernel_id: str | None = None
        self._session = uuid.uuid4().hex
        self._ws: WebSocketClientConnection | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._http = AsyncHTTPClient(force_instance=True)
        self._interrupted_id: str | None = None
        self._start_lock = asyncio.Lock()
        self._exec_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, work_dir: Path) -> GatewayExecutor:
        ex = settings.execution
        if not ex.gateway_url:
            raise BackendUnavailable(
                "--backend gateway needs a gateway URL: pass --gateway-url or set "
                "execution.gateway_url"
            )
        return cls(
            url=ex.gateway_url,
            token=ex.gateway_token,
            work_dir=work_dir,
            kernel_name=ex.kernel_name,
            timeout=ex.timeout,
            interrupt_grace=ex.interrupt_grace,
            max_output_chars=ex.max_output_chars,
        )

    async def __aenter__(self) -> GatewayExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- REST ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    def _with_token(self, url: str) -> str:
        if not self.token:
            return url
        return f"{url}{'&' if '?' in url else '?'}token={quote(self.token, safe='')}"

    async def _rest(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, ok404: bool = False
    ) -> Any:
        request = HTTPRequest(
            self._with_token(self.url + path),
            method=method,
            headers=self._headers(),
            body=json.dumps(body) if body is not None else ("{}" if method == "POST" else None),
            connect_timeout=self.connect_timeout,
            request_timeout=max(self.startup_timeout, 30.0),
            allow_nonstandard_methods=True,
        )
        try:
            response: HTTPResponse = await self._http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 404 and ok404:
                return None
            if exc.code in (401, 403):
                raise BackendUnavailable(
                    f"the gateway at {self.url} rejected the token (HTTP {exc.code}); check "
                    "--gateway-token / execution.gateway_token"
                ) from None
            if exc.code == 599:
                raise BackendUnavailable(
                    f"the gateway at {self.url} is unreachable ({exc.message})"
                ) from None
            raise BackendError(
                f"gateway {method} {path} failed: HTTP {exc.code} {exc.message}"
            ) from None
        except OSError as exc:
            raise BackendUnavailable(
                f"the gateway at {self.url} is unreachable ({exc.strerror or exc})"
            ) from None
        if not response.body:
            return None
        return json.loads(response.body)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._ws is not None

    async def start(self) -> None:
        if self._ws is not None:
            return
        async with self._start_lock:
            if self._ws is not None:
                return
            model = await self._rest("POST", "/api/kernels", {"name": self.kernel_name})
            if not isinstance(model, dict) or "id" not in model:
                raise BackendError(f"the gateway at {self.url} returned no kernel id")
            self.kernel_id = str(model["id"])
            try:
                await self._connect()
            except BaseException:
                await self._delete_kernel()
                raise

    async def _connect(self) -> None:
        assert self.kernel_id is not None
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = urlunsplit(
            (scheme, parts.netloc, f"{parts.path}/api/kernels/{self.kernel_id}/channels", "", "")
        )
        ws_url = self._with_token(f"{ws_url}?session_id={self._session}")
        request = HTTPRequest(ws_url, headers=self._headers(), connect_timeout=self.connect_timeout)
        try:
            ws = await websocket_connect(request)
        except HTTPClientError as exc:
            if exc.code in (401, 403):
                raise BackendUnavailable(
                    f"the gateway at {self.url} rejected the token (HTTP {exc.code})"
                ) from None
            raise BackendError(f"cannot open the kernel websocket: {exc}") from None
        except OSError as exc:
            raise BackendUnavailable(f"the gateway at {self.url} is unreachable ({exc})") from None
        # Small request frames: without TCP_NODELAY each waits for a delayed ACK (~40 ms).
        stream = getattr(ws, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        self._ws = ws
        self._queue = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read(ws, self._queue))
        language = await self._wait_ready()
        if language == "python":
            await self._install_fd_capture()

    @staticmethod
    async def _read(ws: WebSocketClientConnection, queue: asyncio.Queue[Any]) -> None:
        while True:
            raw = await ws.read_message()
            if raw is None:
                queue.put_nowait(_CLOSED)
                return
            if isinstance(raw, bytes):
                continue  # binary protocol frames are never requested
            try:
                queue.put_nowait(json.loads(raw))
            except ValueError:
                continue

    async def _wait_ready(self) -> str:
        """kernel_info until answered: the first reply proves the kernel is up and connected.
        Returns the kernel's language."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            msg_id = self._send("shell", "kernel_info_request", {})
            msg = await self._start_reply(msg_id, "kernel_info_reply", time.monotonic() + 1.0)
            if msg is not None:
                await self._drain(0.1)
                info = msg.get("content", {}).get("language_info") or {}
                return str(info.get("name", "")).lower()
        raise BackendError(f"the gateway kernel did not become ready in {self.startup_timeout:g}s")

    async def _install_fd_capture(self) -> None:
        """Make output written to fds 1 and 2 in the kernel (children, C code) stream output
        of the request that caused it: the gateway launched the kernel, with whatever fd
        capture its ipykernel has (none under pytest, and one that races `print`)."""
        msg_id = self._send(
            "shell",
            "execute_request",
            {
                "code": fd_capture_snippet(),
                "silent": True,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": False,
            },
        )
        await self._start_reply(msg_id, "execute_reply", time.monotonic() + _SETUP_TIMEOUT_S)

    async def _start_reply(self, msg_id: str, msg_type: str, until: float) -> dict[str, Any] | None:
        """The `msg_type` reply to `msg_id` while the kernel starts, or None at `until` (other
        messages are passed over); a socket closed meanwhile is a failed start."""
        while time.monotonic() < until:
            msg = await self._next(until - time.monotonic())
            if msg is _CLOSED:
                raise BackendError("the gateway closed the kernel websocket during start")
            if (
                isinstance(msg, dict)
                and msg.get("msg_type") == msg_type
                and msg.get("parent_header", {}).get("msg_id") == msg_id
            ):
                return msg
        return None

    async def _drain(self, quiet: float) -> None:
        while True:
            msg = await self._next(quiet)
            if msg is None or msg is _CLOSED:
                if msg is _CLOSED:
                    self._queue.put_nowait(_CLOSED)
                return

    async def _next(self, wait: float) -> Any:
        try:
            return await asyncio.wait_for(self._queue.get(), max(0.0, wait))
        except asyncio.TimeoutError:
            return None

    def _send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        assert self._ws is not None
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "session": self._session,
                "username": "codeflow",
                "date": datetime.now(timezone.utc).isoformat(),
                "version": _PROTOCOL_VERSION,
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        self._ws.write_message(json.dumps(msg))
        return msg_id

    def _close_ws(self) -> None:
        self._interrupted_id = None  # a new connection or kernel never answers the old one
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    async def restart(self) -> None:
        async with self._exec_lock:
            await self._restart()

    async def _restart(self) -> None:
        """Restart the kernel (a new one when the old is gone) and reconnect."""
        self._close_ws()
        if self.kernel_id is not None:
            model = await self._rest(
                "POST", f"/api/kernels/{self.kernel_id}/restart", {}, ok404=True
            )
            if model is None:
                self.kernel_id = None
        if self.kernel_id is None:
            model = await self._rest("POST", "/api/kernels", {"name": self.kernel_name})
            self.kernel_id = str(model["id"])
        await self._connect()

    async def _reconnect_after_death(self) -> None:
        """The server's own restarter may already have replaced the process: reuse it if so."""
        self._close_ws()
        alive = (
            await self._rest("GET", f"/api/kernels/{self.kernel_id}", ok404=True)
            if self.kernel_id
            else None
        )
        if alive is None:
            self.kernel_id = None
            model = await self._rest("POST", "/api/kernels", {"name": self.kernel_name})
            self.kernel_id = str(model["id"])
            await self._connect()
            return
        try:
            await self._connect()
        except BackendError:
            await self._restart()

    async def interrupt(self) -> None:
        if self.kernel_id is not None:
            await self._rest("POST", f"/api/kernels/{self.kernel_id}/interrupt", {}, ok404=True)

    async def _delete_kernel(self) -> None:
        if self.kernel_id is not None:
            kernel_id, self.kernel_id = self.kernel_id, None
            try:
                await self._rest("DELETE", f"/api/kernels/{kernel_id}", ok404=True)
            except BackendError:
                pass  # the gateway is gone; nothing is left to delete

    async def shutdown(self) -> None:
        async with self._start_lock:
            self._close_ws()
            self._queue.put_nowait(_CLOSED)  # wakes a run waiting for messages: it ends now
            await self._delete_kernel()

    # -- execution -----------------------------------------------------------------------

    @property
    def _connected(self) -> bool:
        return self._ws is not None

    async def _run(
        self,
        code: str,
        limit: float,
        on_output: OutputCallback | None,
        silent: bool,
        store_history: bool,
    ) -> ExecutionResult:
        collector = OutputCollector(self.max_output_chars, on_output)
        return await supervise(
            _GatewayTransport(self),
            code,
            limit,
            collector,
            silent=silent,
            store_history=store_history,
        )

    async def _recover(self, how: str) -> Death:
        await self._reconnect_after_death()
        return Death(cause=f": {how}" if how else "", detail=how)


class _GatewayTransport:
    """One run's link to a gateway kernel: every channel comes through the one websocket,
    life from the REST API."""

    what = "the gateway kernel"
    poll_interval = _REST_POLL_S
    caps_output = False  # the gateway launched the kernel: no cap of ours inside it

    def __init__(self, executor: GatewayExecutor) -> None:
        self.executor = executor
        self.interrupt_grace = executor.interrupt_grace
        self._ws = executor._ws  # replaced or cleared when the kernel is shut down

    def gone(self) -> bool:
        return self.executor._ws is not self._ws or self._ws is None

    def take_abandoned(self) -> str | None:
        ex = self.executor
        msg_id, ex._interrupted_id = ex._interrupted_id, None
        return msg_id

    def expect_reply(self, msg_id: str) -> None:
        pass  # the reply comes through the websocket with everything else

    async def send(self, code: str, *, silent: bool, store_history: bool) -> str:
        return self.executor._send(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": False,
            },
        )

    def take_reply(self) -> dict[str, Any] | None:
        return None  # the reply comes through the websocket with everything else

    async def next_message(self, wait: float, *, idle: bool) -> Message | Lost | None:
        msg = await self.executor._next(wait)
        if msg is None:
            return None
        if msg is _CLOSED:
            self.executor._queue.put_nowait(_CLOSED)  # closed stays closed for later reads
            return Lost("the connection closed")
        found = message(msg)
        if found.msg_type == "status" and found.content.get("execution_state") in (
            "restarting",
            "dead",
        ):
            return Lost("")
        return found

    def release(self) -> None:
        pass

    def abandon(self, msg_id: str) -> None:
        self.executor._interrupted_id = msg_id

    async def interrupt(self) -> None:
        await self.executor.interrupt()

    async def restart(self, cause: str) -> None:
        await self.executor._restart()

    async def dead(self) -> str | None:
        ex = self.executor
        model = await ex._rest("GET", f"/api/kernels/{ex.kernel_id}", ok404=True)
        if model is None or model.get("execution_state") == "dead":
            return "the kernel is gone"
        return None

    async def unresponsive_reason(self) -> str | None:
        return None  # the gateway does not show the kernel's process

    async def recover(self, how: str) -> Death:
        return await self.executor._recover(how)
