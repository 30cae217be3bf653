"""The notebook edits of the MCP notebook tools (`write_cell`, `run_cell`).

Plain functions on an nbformat notebook, run inside the session's locked read-change-write
(`McpSession._edit`); they do the same write-back as the `%%codeflow` magic, so a cell written
by an agent looks exactly like one the magic wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .mcp_tools import ToolError

if TYPE_CHECKING:
    from .models import Output


def new_notebook() -> Any:
    """An empty Python notebook: what the notebook tools start from when the file is missing."""
    import nbformat

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def find_cell(nb: Any, cell_id: str | None, index: int | None) -> int:
    """The position of a cell by id (stable across edits), else by index; a miss is refused."""
    cells = nb["cells"]
    if cell_id is not None:
        for position, cell in enumerate(cells):
            if str(cell.get("id")) == cell_id:
                return position
        raise ToolError(f"no cell with id {cell_id!r} (see list_cells)")
    if index is not None:
        if 0 <= index < len(cells):
            return index
        raise ToolError(f"no cell at index {index}: the notebook has {len(cells)} cells")
    raise ToolError("give cell_id or index")


def write_back(
    nb: Any, record: dict[str, Any], request: str | None, cell_id: str | None, index: int | None
) -> dict[str, Any]:
    """Put `record` into `nb` as the magic's write-back does: the request cell (found by id,
    or through its linked code cell, or new) shows the record; its code goes below it."""
    import nbformat

    from .notebook import (
        MAGIC,
        META_KEY,
        apply_writeback,
        cell_source,
        ensure_cell_ids,
        new_cell_id,
        split_request,
    )
    from .report import record_bundle

    ensure_cell_ids(nb)
    cells = nb["cells"]
    if cell_id is not None:
        position = find_cell(nb, cell_id, None)
        meta = cells[position].get("metadata", {}).get(META_KEY, {})
        origin = meta.get("generated_from") if isinstance(meta, Mapping) else None
        if origin:
            position = find_cell(nb, str(origin), None)
        parts = split_request(cell_source(cells[position]))
        if parts is None or cells[position].get("cell_type") != "code":
            raise ToolError(
                f"cell {cell_id} is no %%codeflow request cell nor code linked to one; "
                "leave cell_id out to add a new request cell"
            )
        if request is not None:  # the new request, under the cell's own magic line
            cells[position]["source"] = f"{MAGIC} {parts[0]}".rstrip() + f"\n{request.strip()}"
    else:
        cell = nbformat.v4.new_code_cell(source=f"{MAGIC}\n{(request or '').strip()}")  # type: ignore[no-untyped-call]
        existing = {str(c.get("id")) for c in cells}
        cell["id"] = new_cell_id()
        while cell["id"] in existing:
            cell["id"] = new_cell_id()
        position = len(cells) if index is None else min(index, len(cells))
        cells.insert(position, cell)
    target = cells[position]
    bundle = record_bundle(record)
    target["outputs"] = [
        nbformat.v4.new_output(  # type: ignore[no-untyped-call]
            "display_data",
            data=json.loads(json.dumps(bundle)),
            metadata={},  # plain JSON types
        )
    ]
    target["execution_count"] = None
    code_cell = apply_writeback(nb, position, record, mode="below")
    return {"request_cell": str(target["id"]), "code_cell": code_cell}


def set_outputs(nb: Any, cell_id: str, position: int, outputs: list[Output]) -> None:
    """The outputs of a code cell just run (found again by id: the file may have changed)."""
    import nbformat

    if cell_id:
        position = find_cell(nb, cell_id, None)
    cell = nb["cells"][position]
    cell["outputs"] = [nbformat.from_dict(dict(o)) for o in outputs]  # type: ignore[no-untyped-call]
    cell["execution_count"] = None
