# IPython's display helpers carry no type hints.
# mypy: disable-error-code="no-untyped-call"
"""Where a `%%codeflow` cell's code goes: into the linked cell through the JupyterLab
extension (which carries cell metadata), else as the next input; a run that wrote no code
leaves its outcome in the request cell's metadata; a plan's steps become cells below."""

from __future__ import annotations

from typing import Any

from .display import show_outputs
from .models import PlanRecord, RunRecord


def save_metadata(link: Any, record: RunRecord, request: str, cell_id: str | None) -> None:
    """Record a run that wrote no code (failed, or write-back off) in the request cell's
    metadata, so its outcome and history survive Clear Outputs and a reload."""
    from .notebook import request_metadata

    if link is None or not cell_id or not hasattr(link, "save_metadata"):
        return
    data = record.to_dict()
    meta = request_metadata(data, request=request)
    if record.error:  # the model could not be asked: why, and which kind of failure
        meta["error"] = record.error
        meta["stop_reason"] = record.stop_reason
    try:
        link.save_metadata(cell_id, meta)
    except Exception:
        pass


def write_back(
    link: Any,
    shell: Any,
    record: RunRecord,
    request: str,
    line: str,
    mode: str,
    cell_id: str | None,
) -> None:
    """The final code below the request (or in its place, `replace`), or only metadata."""
    from .notebook import (
        code_metadata,
        generated_source,
        replaced_source,
        request_metadata,
        writes_code,
    )

    data = record.to_dict()
    if mode == "off" or not writes_code(data):
        save_metadata(link, record, request, cell_id)
        return
    code = generated_source(data)
    if mode == "replace":
        code = replaced_source(data, line, request)
    if link is not None and cell_id:
        # The frontend fills in the linked cell's id for "below": only it knows the new id.
        linked = cell_id if mode == "replace" else None
        try:
            done = bool(
                link.write_back(
                    cell_id,
                    code,
                    request_metadata(data, request=request, linked_cell_id=linked),
                    code_metadata(cell_id, data),
                    mode,
                )
            )
        except Exception:
            done = False
        if done:
            return
    if shell is not None:
        shell.set_next_input(code, replace=mode == "replace")


def finish_plan(link: Any, shell: Any, plan: PlanRecord, request: str, cell_id: str | None) -> None:
    """Show the plan under the request; its steps go into cells below it (through the
    extension, or by `codeflow run`), else the code comes back as the next input."""
    from IPython.core.display_functions import publish_display_data

    from .notebook import plan_cells, plan_request_metadata
    from .report import plan_bundle

    if link is None:  # nowhere to put the step cells: their outputs show here
        for step in plan.steps:
            if step.record is not None and step.state == "ok":
                show_outputs(step.record)
    publish_display_data(data=plan_bundle(plan))
    data = plan.to_dict()
    if link is not None and cell_id and hasattr(link, "write_plan"):
        try:
            cells = plan_cells(data, cell_id)
            count = getattr(shell, "execution_count", None)
            for cell in cells:  # they ran as part of this cell's execution
                if cell["cell_type"] == "code" and cell.get("outputs"):
                    cell["execution_count"] = count
            if link.write_plan(cell_id, cells, plan_request_metadata(data, request=request)):
                return
        except Exception:
            pass
    code = "\n\n".join((s.record.final_code if s.record else s.code).rstrip() for s in plan.steps)
    if code.strip() and shell is not None:
        shell.set_next_input(code)
