"""The live progress of a `%%codeflow` cell: one display updated in place, and the same
events forwarded to the JupyterLab sidebar."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from .models import FlowEvent

PROGRESS_INTERVAL = 0.2
PROGRESS_DELAY = 0.3
"""A run that finishes sooner shows no progress display at all (no flicker, fewer messages)."""
TAIL_CHARS = 600


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


class Progress:
    """The live progress display: one display id, updated in place at most ~5 times a second.

    `on_event` may be called from any thread; it only records state. `tick` runs on the main
    thread (from the pump) and renders when something changed.
    """

    def __init__(
        self, request: str, max_attempts: int, link: Any = None, cell_id: str = ""
    ) -> None:
        self.request = request.strip().splitlines()[0][:80] if request.strip() else ""
        self.max_attempts = max_attempts
        self.started = time.monotonic()
        self.attempt = 0
        self.phase = "starting"
        self.last_error = ""
        self.tail = ""
        self._lock = threading.Lock()
        self._dirty = True
        self._last_render = 0.0
        self._handle: Any = None
        self._link = link
        self._cell_id = cell_id
        self._events: deque[dict[str, Any]] = deque(maxlen=500)
        self.updates = 0
        self.steps = 0
        self.step = ""
        """`step k of N: title` while a plan runs its steps."""

    def on_event(self, event: FlowEvent) -> None:
        with self._lock:
            kind, data = event.kind, event.data
            if event.attempt and kind != "step":  # a step event's number is the step's
                self.attempt = event.attempt
            if kind == "start":
                self.max_attempts = int(data.get("max_attempts", self.max_attempts))
                self.last_error = ""
            elif kind == "plan_start":
                self.phase = "asking the model for a plan"
            elif kind == "plan":
                self.steps = len(data.get("steps") or ())
            elif kind == "step" and data.get("state") == "running":
                self.step = f"step {event.attempt} of {self.steps}: {data.get('title', '')}"
            elif kind == "generating":
                self.phase = "asking the model" + (
                    " for a fix" if data.get("phase") == "fix" else ""
                )
                if data.get("retry"):  # an outage: say why it takes long, and that it goes on
                    self.phase += f" again: {data['retry']}"
                self.tail = ""
            elif kind == "delta":
                self.tail = (self.tail + str(data.get("text", "")))[-TAIL_CHARS:]
            elif kind == "code":
                self.tail = str(data.get("code", ""))[-TAIL_CHARS:]
            elif kind == "scan":
                self.phase = "checking the code"
            elif kind == "executing":
                self.phase = "running the code"
            elif kind == "install":
                self.phase = f"installing {data.get('package')}"
            elif kind == "attempt":
                err = (data.get("attempt") or {}).get("error") or {}
                if err:
                    self.last_error = f"{err.get('category')} error: {err.get('ename')}"
            if kind == "plan_finished":  # the sidebar needs no outputs (images can be large)
                data = {"plan": _without_outputs(data.get("plan"))}
            if self._link is not None and kind not in ("finished", "output"):
                if kind == "delta" and self._events and self._events[-1]["kind"] == "delta":
                    self._events[-1]["data"]["text"] += str(data.get("text", ""))
                else:
                    self._events.append(
                        {"kind": kind, "attempt": event.attempt, "data": dict(data)}
                    )
            self._dirty = True

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
            for ev in events:
                try:
                    self._link.send_event(self._cell_id, ev)
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
