"""Output written to file descriptors 1 and 2, delivered as stream text in order with `print`.

Child processes (`os.system`, `subprocess.run`) and C extensions write to the process's fds,
not to `sys.stdout`; without this their output would go wherever the kernel's own stdout goes
(codeflow's terminal, or a `--format json` document) and never reach the attempt's outputs.

`FdPump` points an fd at a pipe and hands what arrives to a text sink. A watcher thread moves
data that arrives while nothing else is written; every Python-level write first drains the pipe
under the same lock, so output of a child that has exited always comes before the next `print`
(a thread alone would race it). ipykernel's own fd watcher is such a thread, so it is replaced.

This module uses only the standard library: its source is also sent into kernels that do not
have codeflow installed (docker, gateway) and run there by `install_kernel_capture`.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

_CHUNK = 65536


class FdPump:
    """Redirects one fd into a pipe whose content goes to `sink` as decoded text."""

    def __init__(self, fd: int, sink: Callable[[str], Any], name: str = "") -> None:
        self.fd = fd
        self.sink = sink
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._closed = False
        self._draining: int | None = None  # the thread whose drain is calling the sink
        read_end, self._write_end = os.pipe()
        self.saved = os.dup(fd)
        os.dup2(self._write_end, fd)
        self.attached = True
        os.set_blocking(read_end, False)
        self._read_end = read_end
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._watch, name=f"codeflow-fd{fd}{'-' + name if name else ''}", daemon=True
        )
        self._thread.start()

    def detach(self) -> None:
        """Point the fd back where it was and deliver what is in the pipe; keep the pipe and
        its thread for the next `attach` (setting them up costs more than a short run does).

        A child still running keeps the pipe's write end: what it writes between runs goes
        where the fd points then, and during a later run into that run's output, as a child
        left running in a plain kernel does (it is no longer killed by a closed pipe).
        """
        if not self.attached or os.getpid() != self.pid:
            return
        with self.lock:
            os.dup2(self.saved, self.fd)
            self.attached = False
            self.drain()
            self.sink = self._passthrough

    def attach(self, sink: Callable[[str], Any]) -> None:
        """Point the fd at the pipe again, delivering to `sink`. Where the fd points is read
        anew: something may have moved it since the last run."""
        with self.lock:
            if self.attached or self._closed:
                raise RuntimeError(f"fd {self.fd} is already captured, or the pump is closed")
            self.drain()  # a detached child's last bytes go where they were going
            saved = os.dup(self.fd)
            os.close(self.saved)
            self.saved = saved
            os.dup2(self._write_end, self.fd)
            self.sink = sink
            self.attached = True

    def _passthrough(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            try:
                data = data[os.write(self.saved, data) :]
            except OSError:
                return

    def drain(self) -> None:
        """Deliver everything already in the pipe (only in the process that made the pump: a
        forked child shares the pipe but not the thread that may hold the lock)."""
        if os.getpid() != self.pid:
            return
        with self.lock:
            if self._closed and self._read_end < 0:
                return
            chunks: list[bytes] = []
            while True:
                try:
                    data = os.read(self._read_end, _CHUNK)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            if chunks:
                text = self._decoder.decode(b"".join(chunks))
                if text:
                    self._draining = threading.get_ident()
                    try:
                        self.sink(text)
                    finally:
                        self._draining = None

    @property
    def busy(self) -> bool:
        """True inside this thread's own drain: what the sink writes is already in order."""
        return self._draining == threading.get_ident()

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self._read_end, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            if any(fd == self._wake_r for fd, _ in events):
                return
            try:
                self.drain()
            except Exception:
                return  # the sink is gone (interpreter shutting down)

    def close(self) -> None:
        """Point the fd back where it was and deliver what is left in the pipe."""
        if self._closed or os.getpid() != self.pid:
            return
        with self.lock:
            if self.attached:
                os.dup2(self.saved, self.fd)
                self.attached = False
            os.close(self._write_end)  # a child still running may hold another copy
            self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=2.0)
        self.drain()
        with self.lock:
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self.sink(tail)
            for fd in (self._read_end, self._wake_r, self._wake_w, self.saved):
                os.close(fd)  # `saved` last: a detached pump's sink writes to it
            self._read_end = -1


def _stop_ipykernel_watcher(stream: Any) -> None:
    """End ipykernel's fd watcher thread (it would race ours for the same bytes)."""
    thread = getattr(stream, "watch_fd_thread", None)
    if not getattr(stream, "_should_watch", False) or thread is None:
        return
    stream._should_watch = False
    # Its thread blocks in read(); one byte wakes it, and with _should_watch off it neither
    # publishes nor echoes that byte. ipykernel's own close() stops it the same way.
    os.write(stream._original_stdstream_fd, b"\0")
    thread.join(timeout=2.0)


def install_kernel_capture() -> None:
    """In an ipykernel: fds 1 and 2 become stream output of the running request (idempotent)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name, None)
        if stream is None or type(stream).__name__ != "OutStream":
            continue
        if "_codeflow_pump" in vars(stream):
            continue
        _stop_ipykernel_watcher(stream)
        state = vars(stream)
        state["_codeflow_write"] = stream.write  # the class's, or a wrapper (the output cap)
        state.pop("write", None)
        # The sink is whatever `write` is at the time (IPython wraps it per cell to record
        # output history), minus the draining layer: fd text is capped and recorded too.
        pump = FdPump(fd, _current_write(state), name)
        state["_codeflow_pump"] = pump
        if fd == 2:
            _keep_faulthandler(stream, pump.saved)
        stream.__class__ = _ordered_class(type(stream))
        flush = stream.flush

        def ordered_flush(_flush: Any = flush, _pump: FdPump = pump) -> Any:
            _pump.drain()  # the request's end flushes: a child's last line is not left behind
            return _flush()

        stream.flush = ordered_flush
        # `subprocess.run(..., stdout=sys.stdout)` then writes into the pipe, like a child that
        # inherits fd 1, instead of onto the kernel's own stdout.
        stream.fileno = _fileno(fd)


def _current_write(state: dict[str, Any]) -> Callable[[str], Any]:
    def write(text: str) -> Any:
        return state["_codeflow_write"](text)

    return write


def _fileno(fd: int) -> Callable[[], int]:
    def fileno() -> int:
        return fd

    return fileno


def _ordered_class(cls: type) -> type:
    """A subclass (same name) whose `write` drains the pump first.

    `write` is a data descriptor, so it stays in front of whatever code assigns to
    `stream.write` later (IPython does, around every cell, and restores it after): such an
    assignment replaces the inner write, never the draining layer.
    """

    def get(self: Any) -> Callable[..., Any]:
        state = vars(self)
        inner = state["_codeflow_write"]
        pump: FdPump = state["_codeflow_pump"]

        def write(text: str, *args: Any, **kwargs: Any) -> Any:
            if os.getpid() != pump.pid:
                return inner(text, *args, **kwargs)
            with pump.lock:
                if pump.busy:  # written by the sink of a drain: already in order
                    return inner(text, *args, **kwargs)
                pump.drain()
                return inner(text, *args, **kwargs)

        write._codeflow_inner = inner  # type: ignore[attr-defined]
        return write

    def set_(self: Any, value: Any) -> None:
        vars(self)["_codeflow_write"] = getattr(value, "_codeflow_inner", value)

    return type(cls.__name__, (cls,), {"write": property(get, set_)})


def _keep_faulthandler(stream: Any, saved: int) -> None:
    """A fault handler writing to fd 2 would now write into the pipe, which dies with the
    process; keep it on the kernel's real stderr so a native crash stays explained."""
    import faulthandler

    if not faulthandler.is_enabled():
        return
    if getattr(stream, "_original_stdstream_copy", None) is not None:
        return  # enabled on ipykernel's copy of the real stderr, which is unchanged
    faulthandler.enable(file=saved)
