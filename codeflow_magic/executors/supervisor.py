"""The one supervisor of a run on a kernel that speaks the Jupyter messaging protocol.

What a kernel cannot report itself is watched for here, the same way for every backend (the
local kernel and the sandbox and docker backends built on it, and the gateway): the time
limit interrupts first (state kept) and restarts only if the interrupt is ignored for the
grace period; death is noticed by polling, because a dead kernel simply stops sending
messages; a shutdown that pulls the kernel from under a run ends it as "shut down"; a
cancelled run leaves its request behind, and the next run settles it (`settle`) before it
sends its own. The results of all of these are built here too.

Each backend supplies a `Transport` for one run: how a request is sent, how the next message
arrives, how the kernel is interrupted, restarted and polled for life, and how a death is
explained and recovered from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..models import ExecutionResult, Output
from .outputs import OutputCollector, marked_drops

__all__ = ["Death", "Lost", "Message", "Transport", "settle", "supervise"]

IDLE_AFTER_REPLY_S = 2.0
"""How long to wait for the idle status after the reply: past it the status was lost."""


class Message(NamedTuple):
    """One message of the run, as the supervisor needs it."""

    channel: str
    msg_type: str
    parent_id: str
    content: dict[str, Any]


@dataclass(frozen=True)
class Lost:
    """The connection to the kernel ended, or the server reported the kernel dead."""

    how: str


@dataclass(frozen=True)
class Death:
    """How a death reads in the result, after the backend brought a new kernel up."""

    cause: str
    """Appended to "the kernel died" (" (exit code 9): killed by SIGKILL", ": the kernel is
    gone")."""
    detail: str
    traceback: tuple[str, ...] = ()


class Transport(Protocol):
    """One run's link to the kernel; the supervisor decides, the transport carries out."""

    what: str
    """How messages name the kernel: `the kernel`, `the sandbox kernel`."""
    interrupt_grace: float
    poll_interval: float
    """Seconds between checks that the kernel is still alive."""
    caps_output: bool
    """True when the kernel caps its own output (its marker says how much it dropped)."""

    def gone(self) -> bool:
        """Whether the kernel was shut down (or disconnected) since the run began."""

    def take_abandoned(self) -> str | None:
        """The request an earlier cancelled run left the kernel busy with (then forgotten)."""

    def expect_reply(self, msg_id: str) -> None:
        """Watch for the execute reply to `msg_id` (`take_reply` hands it over)."""

    async def send(self, code: str, *, silent: bool, store_history: bool) -> str:
        """Send an execute request (its reply expected); returns its message id."""

    def take_reply(self) -> dict[str, Any] | None:
        """The execute reply when it arrives on a channel of its own (else None)."""

    async def next_message(self, wait: float, *, idle: bool) -> Message | Lost | None:
        """The next message (None when `wait` seconds passed without one)."""

    def release(self) -> None:
        """The run is over: stop waiting for anything of it."""

    def abandon(self, msg_id: str) -> None:
        """The run was cancelled while the kernel is still busy with `msg_id`: the next run
        settles it first (`take_abandoned`)."""

    async def interrupt(self) -> None: ...

    async def restart(self, cause: str) -> None:
        """Restart the kernel with empty state (raises `BackendError` if it cannot)."""

    async def dead(self) -> str | None:
        """None while the kernel lives; else how it was found dead."""

    async def unresponsive_reason(self) -> str | None:
        """Why the kernel ignored the interrupt (None: this backend cannot tell)."""

    async def recover(self, how: str) -> Death:
        """Explain a death and bring a new kernel up."""


async def supervise(
    t: Transport,
    code: str,
    limit: float,
    collector: OutputCollector,
    *,
    silent: bool,
    store_history: bool,
) -> ExecutionResult:
    """Run `code` within `limit` seconds; never raises for failures of the code or the kernel
    it can recover from (they are in the result)."""
    began = time.monotonic()
    try:
        await settle(t)
    except Exception:
        if t.gone():
            return shutdown_result(t, collector, began)
        raise
    if t.gone():
        return shutdown_result(t, collector, began)
    msg_id = await t.send(code, silent=silent, store_history=store_history)
    reply: dict[str, Any] | None = None
    idle = False
    replied_at = 0.0
    deadline = began + limit
    interrupted = False
    next_alive = began + t.poll_interval
    # The reply and the idle status may arrive in either order (on different sockets): wait
    # for both, event-driven, so a finished run costs no polling delay.
    try:
        while True:
            if t.gone():
                return shutdown_result(t, collector, began)
            if reply is None:
                reply = t.take_reply()
                if reply is not None:
                    replied_at = time.monotonic()
            if reply is not None and idle:
                break
            now = time.monotonic()
            if reply is not None and now - replied_at > IDLE_AFTER_REPLY_S:
                break  # the idle status was lost; the reply is what counts
            if now >= deadline:
                if interrupted:
                    why = await t.unresponsive_reason()
                    await t.restart("the run ignored the interrupt")
                    return timeout_result(t, collector, reply, began, limit, False, why)
                interrupted = True
                await t.interrupt()
                deadline = now + t.interrupt_grace
                continue
            if now >= next_alive:
                next_alive = now + t.poll_interval
                how = await t.dead()
                if how is not None:
                    if t.gone():
                        return shutdown_result(t, collector, began)
                    return await died_result(t, collector, began, how)
            msg = await t.next_message(max(0.0, min(deadline, next_alive) - now), idle=idle)
            if msg is None:
                continue
            if isinstance(msg, Lost):
                if t.gone():
                    return shutdown_result(t, collector, began)
                return await died_result(t, collector, began, msg.how)
            if msg.parent_id != msg_id:
                continue  # left over from an earlier, interrupted request
            if msg.channel == "shell":
                if msg.msg_type == "execute_reply":
                    reply = dict(msg.content)
                    replied_at = time.monotonic()
            elif msg.channel == "iopub":
                if msg.msg_type == "status":
                    idle = msg.content.get("execution_state") == "idle"
                else:
                    collector.feed({"msg_type": msg.msg_type, "content": msg.content})
    except asyncio.CancelledError:
        if t.gone() and not _cancelling():
            # Shutting down closed the sockets under us: nobody cancelled this run.
            return shutdown_result(t, collector, began)
        # The kernel is still busy with this request: the next run waits for its end.
        t.abandon(msg_id)
        await asyncio.shield(_quietly(t.interrupt()))
        raise
    except Exception:
        if t.gone():
            return shutdown_result(t, collector, began)
        raise
    finally:
        t.release()
    if interrupted:
        return timeout_result(t, collector, reply, began, limit, True)
    return finished_result(t, collector, reply, began)


async def settle(t: Transport) -> None:
    """Wait (bounded) until the request a cancelled run left behind has replied and gone idle.

    Its KeyboardInterrupt, reply and idle status are still on the way when the next request is
    sent right after the cancel; sending only after them keeps every message of the new request
    after the old one's. A kernel that ignores the interrupt is left to the new run's time
    limit, and one that died (or whose connection closed) to the new run's death handling.
    """
    msg_id = t.take_abandoned()
    if msg_id is None:
        return
    deadline = time.monotonic() + t.interrupt_grace + IDLE_AFTER_REPLY_S
    replied = idle = False
    t.expect_reply(msg_id)
    try:
        while True:
            replied = replied or t.take_reply() is not None
            if replied and idle:
                return
            left = deadline - time.monotonic()
            if left <= 0 or t.gone():
                return  # it ignores the interrupt: the new run's time limit deals with it
            # Once idle only the reply is still to come: no need to watch for death meanwhile.
            msg = await t.next_message(left if idle else min(left, t.poll_interval), idle=idle)
            if msg is None:
                if not idle and await t.dead() is not None:
                    return  # it died: the new run notices and reports that
                continue
            if isinstance(msg, Lost):
                return  # the new run notices the closed connection and reports it
            if msg.parent_id != msg_id:
                continue
            if msg.msg_type == "execute_reply":
                replied = True
            elif msg.msg_type == "status":
                idle = msg.content.get("execution_state") == "idle"
    except asyncio.CancelledError:
        t.abandon(msg_id)  # still unsettled for whoever runs next
        raise
    finally:
        t.release()


async def _quietly(step: Awaitable[None]) -> None:
    try:
        await step
    except Exception:
        pass  # cancelling must not fail because the kernel is gone


def _cancelling() -> bool:
    """Whether the running task is being cancelled (not merely handed a CancelledError by a
    future that was cancelled when its socket closed)."""
    task = asyncio.current_task()
    counter = getattr(task, "cancelling", None)
    if counter is None:  # Python 3.10: cannot tell; treat it as a cancel
        return True
    return bool(counter())


# -- results ---------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _dropped(t: Transport, collector: OutputCollector, outputs: Sequence[Output]) -> int:
    """Characters cut by our collector, or by the kernel's own cap (its marker says how many)."""
    if not t.caps_output:
        return collector.dropped_chars
    return max(collector.dropped_chars, marked_drops(outputs))


def _first_error(outputs: Sequence[Output]) -> Output | None:
    for out in outputs:
        if out.get("output_type") == "error":
            return out
    return None


def shutdown_result(t: Transport, collector: OutputCollector, began: float) -> ExecutionResult:
    return ExecutionResult(
        outputs=collector.outputs(),
        status="died",
        ename="KernelShutdown",
        evalue=f"{t.what} was shut down while the code ran",
        duration_s=time.monotonic() - began,
        dropped_chars=collector.dropped_chars,
        state_kept=False,
        detail="kernel was shut down",
    )


def finished_result(
    t: Transport, collector: OutputCollector, reply: dict[str, Any] | None, began: float
) -> ExecutionResult:
    outputs = collector.outputs()
    duration = time.monotonic() - began
    content = reply or {}
    status = content.get("status")
    if status == "ok" or (status is None and not _first_error(outputs)):
        return ExecutionResult(
            outputs=outputs, duration_s=duration, dropped_chars=_dropped(t, collector, outputs)
        )
    err = _first_error(outputs) or {}
    ename = str(content.get("ename") or err.get("ename") or "Error")
    if status == "aborted":
        ename = "Aborted"
    return ExecutionResult(
        outputs=outputs,
        status="error",
        ename=ename,
        evalue=str(content.get("evalue") or err.get("evalue") or ""),
        traceback=tuple(
            str(line) for line in (content.get("traceback") or err.get("traceback") or ())
        ),
        duration_s=duration,
        dropped_chars=_dropped(t, collector, outputs),
    )


def timeout_result(
    t: Transport,
    collector: OutputCollector,
    reply: dict[str, Any] | None,
    began: float,
    limit: float,
    state_kept: bool,
    why: str | None = None,
) -> ExecutionResult:
    outputs = tuple(
        o
        for o in collector.outputs()
        if not (o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt")
    )
    what = "interrupted, state kept" if state_kept else "kernel restarted, state lost"
    traceback = tuple(str(line) for line in ((reply or {}).get("traceback") or ()))
    ignored = f"the run ignored the interrupt for {_seconds(t.interrupt_grace)}"
    if why is not None:
        ignored += ": " + (why or "it catches KeyboardInterrupt or is busy inside native code")
    return ExecutionResult(
        outputs=outputs,
        status="timeout",
        ename="TimeoutError",
        evalue=f"execution exceeded {_seconds(limit)}; {what}",
        traceback=traceback if state_kept else (),
        duration_s=time.monotonic() - began,
        dropped_chars=_dropped(t, collector, outputs),
        restarted=not state_kept,
        state_kept=state_kept,
        detail="the run was interrupted after the time limit" if state_kept else ignored,
    )


async def died_result(
    t: Transport, collector: OutputCollector, began: float, how: str
) -> ExecutionResult:
    death = await t.recover(how)
    return ExecutionResult(
        outputs=collector.outputs(),
        status="died",
        ename="KernelDied",
        evalue=(
            f"the kernel died{death.cause}; "
            "it was restarted with empty state (variables and imports are gone)"
        ),
        traceback=death.traceback,
        duration_s=time.monotonic() - began,
        dropped_chars=collector.dropped_chars,
        restarted=True,
        state_kept=False,
        detail=death.detail,
    )


def message(msg: dict[str, Any], channel: str | None = None) -> Message:
    """A protocol message as the supervisor reads it."""
    return Message(
        channel=str(channel if channel is not None else msg.get("channel") or ""),
        msg_type=str(msg.get("msg_type") or msg.get("header", {}).get("msg_type") or ""),
        parent_id=str(msg.get("parent_header", {}).get("msg_id") or ""),
        content=msg.get("content") or {},
    )
