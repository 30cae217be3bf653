"""`--backend gateway`: kernels on a Jupyter Kernel Gateway or Enterprise Gateway.

REST (`/api/kernels`) starts, interrupts, restarts and deletes the kernel; one websocket
(`/api/kernels/<id>/channels`) carries the messages. The token goes both as an
`Authorization: token` header and as a `?token=` query, because proxies in front of gateways
strip one or the other. Outputs, caps, Bash and the state summary use the same helpers as the
local kernel, so a run behaves the same wherever the kernel lives: a timeout interrupts (state
kept) and restarts only if ignored; a kernel that dies (the websocket closes, the server reports
`restarting`/`dead`, or REST answers 404) is noticed and replaced.
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
from ..models import ExecutionResult, Output
from .base import OutputCallback
from .messaging import SnippetExecutorMixin
from .outputs import OutputCollector
from .snippets import fd_capture_snippet

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["GatewayExecutor"]

_IDLE_AFTER_REPLY_S = 2.0
_REST_POLL_S = 2.0
_PROTOCOL_VERSION = "5.3"
_SETUP_TIMEOUT_S = 10.0
_CLOSED = object()


def _seconds(value: float) -> str:
    return f"{value:g}s"


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
        began = time.monotonic()
        ws = self._ws
        await self._settle_interrupted()
        if self._ws is not ws or ws is None:
            return self._shutdown_result(collector, began)
        msg_id = self._send(
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
        reply: dict[str, Any] | None = None
        idle = False
        replied_at = 0.0
        deadline = began + limit
        interrupted = False
        next_rest = began + _REST_POLL_S
        try:
            while reply is None or not idle:
                if self._ws is not ws:
                    return self._shutdown_result(collector, began)
                now = time.monotonic()
                if reply is not None and now - replied_at > _IDLE_AFTER_REPLY_S:
                    break
                if now >= deadline:
                    if interrupted:
                        await self._restart()
                        return self._timeout_result(collector, reply, began, limit, False)
                    interrupted = True
                    await self.interrupt()
                    deadline = now + self.interrupt_grace
                    continue
                if now >= next_rest:
                    next_rest = now + _REST_POLL_S
                    model = await self._rest("GET", f"/api/kernels/{self.kernel_id}", ok404=True)
                    if model is None or model.get("execution_state") == "dead":
                        return await self._died_result(collector, began, "the kernel is gone")
                msg = await self._next(min(deadline, next_rest) - now)
                if msg is None:
                    continue
                if msg is _CLOSED:
                    if self._ws is not ws:
                        return self._shutdown_result(collector, began)
                    return await self._died_result(collector, began, "the connection closed")
                msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
                content = msg.get("content", {})
                if msg_type == "status" and content.get("execution_state") in (
                    "restarting",
                    "dead",
                ):
                    return await self._died_result(collector, began, "")
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                channel = msg.get("channel")
                if channel == "shell" and msg_type == "execute_reply":
                    reply = dict(content)
                    replied_at = time.monotonic()
                elif channel == "iopub":
                    if msg_type == "status":
                        idle = content.get("execution_state") == "idle"
                    else:
                        collector.feed({"msg_type": msg_type, "content": content})
        except asyncio.CancelledError:
            # The kernel is still busy with this request: the next run waits for its end.
            self._interrupted_id = msg_id
            try:
                await asyncio.shield(self.interrupt())
            except Exception:
                pass  # cancelling must not fail because the gateway is gone
            raise
        if interrupted:
            return self._timeout_result(collector, reply, began, limit, True)
        return self._finished_result(collector, reply, began)

    async def _settle_interrupted(self) -> None:
        """Wait (bounded) until a cancelled request has replied and gone idle, so that the
        next request's messages all come after the old one's."""
        msg_id, self._interrupted_id = self._interrupted_id, None
        if msg_id is None:
            return
        deadline = time.monotonic() + self.interrupt_grace + _IDLE_AFTER_REPLY_S
        replied = idle = False
        try:
            while not (replied and idle):
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # it ignores the interrupt: the new run's time limit deals with it
                msg = await self._next(left)
                if msg is None:
                    continue
                if msg is _CLOSED:
                    self._queue.put_nowait(_CLOSED)  # for the run, which reports it
                    return
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
                if msg_type == "execute_reply":
                    replied = True
                elif msg_type == "status":
                    idle = msg.get("content", {}).get("execution_state") == "idle"
        except asyncio.CancelledError:
            self._interrupted_id = msg_id
            raise

    def _shutdown_result(self, collector: OutputCollector, began: float) -> ExecutionResult:
        return ExecutionResult(
            outputs=collector.outputs(),
            status="died",
            ename="KernelShutdown",
            evalue="the gateway kernel was shut down while the code ran",
            duration_s=time.monotonic() - began,
            dropped_chars=collector.dropped_chars,
            state_kept=False,
            detail="kernel was shut down",
        )

    def _finished_result(
        self, collector: OutputCollector, reply: dict[str, Any] | None, began: float
    ) -> ExecutionResult:
        outputs = collector.outputs()
        duration = time.monotonic() - began
        content = reply or {}
        status = content.get("status")
        err = _first_error(outputs)
        if status == "ok" or (status is None and err is None):
            return ExecutionResult(
                outputs=outputs, duration_s=duration, dropped_chars=collector.dropped_chars
            )
        err = err or {}
        ename = (
            "Aborted"
            if status == "aborted"
            else str(content.get("ename") or err.get("ename") or "Error")
        )
        return ExecutionResult(
            outputs=outputs,
            status="error",
            ename=ename,
            evalue=str(content.get("evalue") or err.get("evalue") or ""),
            traceback=tuple(
                str(t) for t in (content.get("traceback") or err.get("traceback") or ())
            ),
            duration_s=duration,
            dropped_chars=collector.dropped_chars,
        )

    def _timeout_result(
        self,
        collector: OutputCollector,
        reply: dict[str, Any] | None,
        began: float,
        limit: float,
        state_kept: bool,
    ) -> ExecutionResult:
        outputs = tuple(
            o
            for o in collector.outputs()
            if not (o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt")
        )
        what = "interrupted, state kept" if state_kept else "kernel restarted, state lost"
        return ExecutionResult(
            outputs=outputs,
            status="timeout",
            ename="TimeoutError",
            evalue=f"execution exceeded {_seconds(limit)}; {what}",
            traceback=tuple(str(t) for t in ((reply or {}).get("traceback") or ()))
            if state_kept
            else (),
            duration_s=time.monotonic() - began,
            dropped_chars=collector.dropped_chars,
            restarted=not state_kept,
            state_kept=state_kept,
            detail=(
                "the run was interrupted after the time limit"
                if state_kept
                else f"the run ignored the interrupt for {_seconds(self.interrupt_grace)}"
            ),
        )

    async def _died_result(
        self, collector: OutputCollector, began: float, how: str
    ) -> ExecutionResult:
        await self._reconnect_after_death()
        reason = f": {how}" if how else ""
        return ExecutionResult(
            outputs=collector.outputs(),
            status="died",
            ename="KernelDied",
            evalue=(
                f"the kernel died{reason}; it was restarted with empty state "
                "(variables and imports are gone)"
            ),
            duration_s=time.monotonic() - began,
            dropped_chars=collector.dropped_chars,
            restarted=True,
            state_kept=False,
            detail=how,
        )


def _first_error(outputs: tuple[Output, ...]) -> Output | None:
    for out in outputs:
        if out.get("output_type") == "error":
            return out
    return None
