"""Where a `%%codeflow` cell sits: the notebook file the kernel runs and the cells above it.

Kernels are not told their notebook in a standard way; this module holds every way codeflow
finds out (the server's session name, VS Code's variable, the one notebook holding the
request), so the prompt's notebook context has one home.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def notebook_dir() -> Path | None:
    """The notebook's folder when the server told the kernel (jupyter_server sets this)."""
    name = os.environ.get("JPY_SESSION_NAME", "")
    if name.endswith(".ipynb"):
        path = Path(name)
        if path.is_file():
            return path.resolve().parent
    return None


NOTEBOOK_MAX_BYTES = 50 * 1024 * 1024
"""A notebook file larger than this (images in outputs) is not read for context."""


NOTEBOOK_SCAN = 20
"""Notebooks in the working folder looked at, at most, to find the one holding a request."""


def notebook_path(shell: Any, request: str) -> Path | None:
    """The notebook this kernel runs.

    `JPY_SESSION_NAME` (set by `codeflow run` and jupyter_server; the server's path may be
    relative to its root while the kernel runs in the notebook's folder), VS Code's
    `__vsc_ipynb_file__`, else the one notebook in the working folder that holds this request
    (nbval, papermill and other runners start the kernel there and say nothing).
    """
    names = [os.environ.get("JPY_SESSION_NAME", "")]
    user_ns = getattr(shell, "user_ns", None) or {}
    names.append(str(user_ns.get("__vsc_ipynb_file__", "")))
    for name in names:
        if name.endswith(".ipynb"):
            for path in (Path(name), Path.cwd() / Path(name).name):
                if path.is_file():
                    return path
    first = json.dumps(request.strip().split("\n", 1)[0], ensure_ascii=False)[1:-1]
    found: list[Path] = []
    try:
        candidates = sorted(Path.cwd().glob("*.ipynb"))[:NOTEBOOK_SCAN]
    except OSError:
        return None
    for path in candidates:
        try:
            if path.stat().st_size <= NOTEBOOK_MAX_BYTES and first in path.read_text("utf-8"):
                found.append(path)
        except (OSError, UnicodeDecodeError):
            continue
    return found[0] if len(found) == 1 else None


def cells_above(
    shell: Any, cell_id: str | None, request: str, occurrence: int
) -> tuple[tuple[str, str], ...]:
    """The cells above the request's cell, nearest first, from the notebook file on disk.

    The cell is found by its id (JupyterLab sends it) or, failing that, as the `occurrence`-th
    cell holding the request text. What is on disk is what counts: unsaved edits above the
    cell are not seen. An unreadable notebook only means no context.
    """
    path = notebook_path(shell, request)
    if path is None:
        return ()
    try:
        if path.stat().st_size > NOTEBOOK_MAX_BYTES:
            return ()
        # Plain JSON for nbformat 4 (no schema validation on every request); older
        # notebooks go through nbformat's conversion.
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = data.get("cells") if isinstance(data, dict) else None
        if not isinstance(cells, list):
            import nbformat

            cells = nbformat.read(str(path), as_version=4).cells  # type: ignore[no-untyped-call]
    except Exception:
        return ()
    from .context import preceding_cells

    found = preceding_cells(cells, cell_id=cell_id, request=request, occurrence=occurrence)
    return tuple(found)
