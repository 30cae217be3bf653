"""The command line's progress on stderr."""

from __future__ import annotations

import time
from typing import TextIO

from ..events import FlowEvent, ProgressState, initial_state, reduce


class Progress:
    """A one-line progress display on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, stream: TextIO, max_attempts: int, enabled: bool = True) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.max_attempts = max_attempts
        self.enabled = enabled
        self.started = time.perf_counter()
        self.state: ProgressState = initial_state(max_attempts)

    def _show(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        line = f"codeflow: {text} [{elapsed:.1f}s]"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:200] + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, event: FlowEvent) -> None:
        """Reduce the event (`events.reduce`, as the magic and the sidebar do) and say what
        the run is doing now."""
        self.state = s = reduce(self.state, event)
        at = f"attempt {event.attempt}/{self.max_attempts}"
        if s.last_kind == "generating":
            verb = {
                "generate": "generating",
                "fix": "asking for a fix",
                "improve": "improving",
            }.get(s.purpose, s.purpose)
            again = f" again: {s.retry}" if s.retry else ""
            last = f" (last error: {s.last_error.category})" if s.last_error else ""
            self._show(f"{at}: {verb}{again}{last}")
        elif s.last_kind == "delta" and self.tty:
            self._show(f"{at}: receiving ({s.streamed_chars} chars)")
        elif s.last_kind == "executing":
            self._show(f"{at}: running")
        elif s.last_kind == "install":
            self._show(f"installing {s.package}")
        elif s.last_kind == "attempt":
            err = s.last_error
            if not s.last_attempt_ok and err is not None:
                self._show(f"{at}: {err.category} error: {err.ename}")
            else:
                self._show(f"{at}: succeeded")
        elif s.last_kind == "finished":
            self._show("done: success" if s.success else "done: failed", final=True)
