"""A notebook's codeflow session: its flows (one per backend, model and cache setup, so a
kernel backend persists between cells), its runs and plans, and where each run came from
(for approve and undo). No IPython here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cellsettings import cache_dir_for
from .models import PlanRecord, RunRecord
from .review import Origin
from .where import cells_above


class Session:
    """What one kernel's `%%codeflow` cells share."""

    def __init__(self) -> None:
        self.history: list[RunRecord] = []
        self.plans: list[PlanRecord] = []
        self.origins: dict[str, Origin] = {}
        """run id → where the run came from (for approve and undo)."""
        self.closed: set[str] = set()
        """Runs already approved, discarded or undone."""
        self.flows: dict[str, Any] = {}
        self._occurrences: dict[str, int] = {}

    def flow_for(self, settings: Any, backend: str, cache_mode: str | None, shell: Any) -> Any:
        """One CodeFlow per backend/model/cache/execution setup: a kernel backend persists."""
        from .api import CodeFlow

        cache_dir = cache_dir_for(settings)
        key = json.dumps(
            [
                str(Path.cwd()),
                backend,
                settings.model,
                str(cache_dir),
                cache_mode,
                settings.as_dict()["cache"],
                settings.as_dict()["execution"],
                settings.generation.base_url,
            ],
            sort_keys=True,
            default=str,
        )
        flow = self.flows.get(key)
        if flow is None:
            flow = CodeFlow(
                settings,
                work_dir=Path.cwd(),
                backend=backend,
                shell=shell,
                cache_dir=cache_dir,
                cache_mode=cache_mode,
            )
            self.flows[key] = flow
        flow.settings = settings
        return flow

    def running(self) -> int:
        """How many flows have started their executor."""
        return sum(1 for f in self.flows.values() if getattr(f, "_executor", None) is not None)

    def closed_runs(self, link: Any) -> set[str]:
        """Runs approved, discarded (in the sidebar, told over the comm) or undone."""
        discarded: set[str] = getattr(link, "discarded", None) or set()
        for cell in list(discarded):
            for record in reversed(self.history):
                origin = self.origins.get(record.run_id)
                if origin is not None and origin.cell_id == cell:
                    if record.stop_reason == "awaiting_review":
                        self.closed.add(record.run_id)
                    break
            discarded.discard(cell)
        return self.closed

    def notebook_cells(
        self, shell: Any, settings: Any, cell_id: str | None, request: str
    ) -> tuple[tuple[str, str], ...]:
        """The cells above this one, nearest first (`where.cells_above`); the n-th run of
        the same request text counts as the n-th such cell when no cell id comes."""
        occurrence = self._occurrences.get(request, 0)
        self._occurrences[request] = occurrence + 1
        if settings.generation.notebook_chars <= 0:
            return ()
        return cells_above(shell, cell_id, request, occurrence)

    @staticmethod
    def in_flow(flow: Any, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the flow's loop while this thread serves the notebook's shell."""
        from .executors.inline import InlineExecutor, MainThreadPump

        pump = MainThreadPump()
        executor = flow.executor
        if isinstance(executor, InlineExecutor):
            executor.pump = pump
        try:
            future = flow.submit(make())
            pump.run_until(future)
            return future.result()
        finally:
            if isinstance(executor, InlineExecutor):
                executor.pump = None

    def close(self) -> None:
        for flow in self.flows.values():
            try:
                flow.close()
            except Exception:
                pass
        self.flows.clear()
