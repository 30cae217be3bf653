"""nbclient's `NotebookClient` with the two time limits of `codeflow run`.

nbclient has one whole-second timeout for every cell and, with `interrupt_on_timeout`, waits
for an interrupted kernel for as long as it takes. The runner needs more: `%%codeflow` cells
(whose generated code has its own `execution.timeout`) must not be interrupted mid-request, a
plain cell past `--cell-timeout` is interrupted the way nbclient's `interrupt_on_timeout` does
it, and a kernel that ignores the interrupt gets a grace period rather than a wait for ever.
Kept out of `runner` so that `codeflow --help` does not import nbclient.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError
from nbclient.util import ensure_async
from nbformat import NotebookNode
from traitlets import Float

from .notebook import is_request_cell

INTERRUPT_GRACE_S = 5.0
"""How long a cell interrupted at `--cell-timeout` gets to stop before the run gives up on it."""


class CellStuck(CellTimeoutError):
    """A cell interrupted at its time limit did not stop within the grace period."""


class RunClient(NotebookClient):
    """A `NotebookClient` whose cells get the runner's limits (seconds, fractions allowed)."""

    cell_limit = Float(
        None,
        allow_none=True,
        help="Seconds any cell may run before the run fails (nbclient's `timeout`).",
    )
    interrupt_after = Float(
        None,
        allow_none=True,
        help="Seconds a plain code cell may run before the kernel is interrupted; for plain "
        "cells it takes the place of `cell_limit`. `%%codeflow` cells are never interrupted.",
    )
    interrupt_grace = Float(
        INTERRUPT_GRACE_S,
        help="Seconds an interrupted cell gets to stop before the run gives up on it.",
    )

    def __init__(self, nb: NotebookNode, km: Any = None, **kw: Any) -> None:
        super().__init__(nb, km=km, **kw)
        # typed as whole seconds, but nbclient waits `float(timeout)`: fractions work
        self.timeout_func = self.limit_for  # type: ignore[assignment]
        self.interrupted_cell: NotebookNode | None = None
        """The cell last interrupted at `interrupt_after` (compared by identity)."""
        self._interrupted_at = 0.0

    def interrupts(self, cell: NotebookNode) -> bool:
        return self.interrupt_after is not None and not is_request_cell(cell)

    def limit_for(self, cell: NotebookNode) -> float | None:
        """nbclient's `timeout_func`: which limit this cell runs under."""
        limit: float | None = self.interrupt_after if self.interrupts(cell) else self.cell_limit
        return limit

    async def _async_handle_timeout(
        self, timeout: int, cell: NotebookNode | None = None
    ) -> dict[str, Any] | None:
        """Interrupt a plain cell once (nbclient then waits for its reply, an error such as
        KeyboardInterrupt); if no reply comes within the grace period, raise `CellStuck`.
        Any other cell fails the run with nbclient's own `CellTimeoutError`."""
        if cell is None or not self.interrupts(cell):
            return await super()._async_handle_timeout(timeout, cell)
        now = monotonic()
        if self.interrupted_cell is not cell:
            self.interrupted_cell, self._interrupted_at = cell, now
            assert self.km is not None
            await ensure_async(self.km.interrupt_kernel())
            return None
        left = self._interrupted_at + self.interrupt_grace - now
        if left > 0:
            await asyncio.sleep(left)  # then nbclient looks for the reply once more
            return None
        raise CellStuck(f"the cell did not stop within {self.interrupt_grace:g} s of the interrupt")
