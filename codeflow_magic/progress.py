"""The live progress of a `%%codeflow` cell: one display updated in place, and the same
events forwarded to the JupyterLab sidebar (each with the state it led to).

The display renders `events.ProgressState` (built by the shared pure reducer); this module
only words it and throttles the updates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .events import FlowEvent, ProgressState, initial_state, reduce

PROGRESS_INTERVAL = 0.2
PROGRESS_DELAY = 0.3
"""A run that finishes sooner shows no progress display at all (no flicker, fewer messages)."""


def _without_outputs(plan: Any) -> Any:
    """A plan record with its steps' outputs left out."""
    if not isinstance(plan, Mapping):
        return plan
    steps = []
    for step in plan.get("steps") or ():
        record = step.get("record") if isinstance(step, Mapping) else None
        if isinstance(record, Mapping):
            attempts = [{**a, "outputs": []} for a in record.get("attempts") or ()]
            step = {**step, "record": {**record, "outputs": [], "attempts": attempts}}
        steps.append(step)
    return {**plan, "steps": steps}


def phase_words(state: ProgressState) -> str:
    """What the magic's display says the run is doing (the CLI and the sidebar word it their
    own way from the same state)."""
    if state.activity == "planning":
        return "asking the model for a plan"
    if state.activity == "generating":
        words = "asking the model" + (" for a fix" if state.purpose == "fix" else "")
        # An outage: say why it takes long, and that it goes on.
        return words + (f" again: {state.retry}" if state.retry else "")
    if state.activity == "scanning":
        return "checking the code"
    if state.activity == "executing":
        return "running the code"
    if state.activity == "installing":
        return f"installing {state.package}"
    return "starting"


class Progress:
    """The live progress display: one display id, updated in place at most ~5 times a second.

    `on_event` may be called from any thread; it only folds the event into the state
    (`events.reduce`). `tick` runs on the main thread (from the pump) and renders the state
    when it changed.
    """

    def __init__(
        self, request: str, max_attempts: int, link: Any = None, cell_id: str = ""
    ) -> None:
        self.request = request.strip().splitlines()[0][:80] if request.strip() else ""
        self.started = time.monotonic()
        self.state = initial_state(max_attempts)
        self._lock = threading.Lock()
        self._dirty = True
        self._last_render = 0.0
        self._handle: Any = None
        self._link = link
        self._cell_id = cell_id
        self._events: deque[tuple[dict[str, Any], ProgressState]] = deque(maxlen=500)
        self.updates = 0

    # What the display shows, read from the state (kept as attributes for callers and tests).

    @property
    def phase(self) -> str:
        return phase_words(self.state)

    @property
    def attempt(self) -> int:
        return self.state.attempt

    @property
    def max_attempts(self) -> int:
        return self.state.max_attempts

    @property
    def last_error(self) -> str:
        err = self.state.last_error
        return f"{err.category} error: {err.ename}" if err is not None else ""

    @property
    def tail(self) -> str:
        return self.state.tail

    @property
    def steps(self) -> int:
        return len(self.state.steps)

    @property
    def step(self) -> str:
        """`step k of N: title` while a plan runs its steps."""
        current = self.state.current_step
        if current is None:
            return ""
        return f"step {current.number} of {len(self.state.steps)}: {current.title}"

    def on_event(self, event: FlowEvent) -> None:
        with self._lock:
            self.state = state = reduce(self.state, event)
            self._dirty = True
            kind, data = event.kind, event.data
            if self._link is None or kind in ("finished", "output"):
                return
            if kind == "plan_finished":  # the sidebar needs no outputs (images can be large)
                data = {"plan": _without_outputs(data.get("plan"))}
            last = self._events[-1][0] if self._events else None
            if kind == "delta" and last is not None and last["kind"] == "delta":
                last["data"]["text"] += str(data.get("text", ""))
                self._events[-1] = (last, state)
            else:
                self._events.append(
                    ({"kind": kind, "attempt": event.attempt, "data": dict(data)}, state)
                )

    def text(self) -> str:
        elapsed = time.monotonic() - self.started
        head = "codeflow: " + (f"{self.step} · " if self.step else "") + self.phase
        if self.attempt:
            head += f" · attempt {self.attempt} of {self.max_attempts}"
        head += f" · {elapsed:.1f} s"
        if self.last_error:
            head += f" · last: {self.last_error}"
        tail = "\n".join(self.tail.splitlines()[-8:])
        return head + ("\n" + tail if tail else "")

    def bundle(self) -> dict[str, str]:
        import html

        text = self.text()
        head, _, tail = text.partition("\n")
        # Colours come from the theme (the extension styles these classes with JupyterLab's
        # CSS variables); without it the text keeps the output area's own colour.
        body = (
            '<div class="jp-codeflow-progress" style="font-family:sans-serif;font-size:13px">'
            f"{html.escape(head)}</div>"
        )
        if tail:
            body += (
                '<pre class="jp-codeflow-progress-tail" style="font-size:11px;max-height:10em;'
                f'overflow:hidden;margin:2px 0">{html.escape(tail)}</pre>'
            )
        return {"text/plain": text, "text/html": body}

    def tick(self, force: bool = False, render: bool = True) -> None:
        """Render if due (and send pending events to the panel); main thread only."""
        now = time.monotonic()
        if not force and now - self._last_render < PROGRESS_INTERVAL:
            return
        if self._handle is None and now - self.started < PROGRESS_DELAY:
            render = False
        with self._lock:
            events = list(self._events)
            self._events.clear()
            dirty = self._dirty or now - self._last_render >= 1.0  # keep the clock moving
            self._dirty = False
            bundle = self.bundle() if dirty else None
        if self._link is not None:
            for ev, state in events:
                try:
                    self._link.send_event(self._cell_id, ev, state)
                except Exception:
                    break
        if bundle is None or not render:
            if not render:
                self._dirty = self._dirty or bundle is not None
            return
        from IPython.display import display

        self._last_render = now
        self.updates += 1
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(bundle, raw=True)

    @property
    def display_id(self) -> str | None:
        return getattr(self._handle, "display_id", None)
