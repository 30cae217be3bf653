"""The command line's progress on stderr."""

from __future__ import annotations

import time
from typing import TextIO

from ..events import FlowEvent, ProgressState, activity_line, initial_state, reduce


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
        the run is doing now (`events.activity_line`)."""
        self.state = reduce(self.state, event)
        if self.state.last_kind == "delta" and not self.tty:
            return  # a line per streamed chunk would flood a log
        line = activity_line(self.state, event.attempt, self.max_attempts)
        if line is not None:
            self._show(line, final=self.state.last_kind == "finished")
