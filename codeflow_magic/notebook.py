"""Pure nbformat edits: find request cells, read their run records, write the final code back.

Everything here works on an in-memory notebook (`nbformat.NotebookNode`), so the headless
runner, the magic and the tests share one definition of what write-back means:

* default ("below"): the final code becomes an ordinary code cell right below the request cell,
  linked by `metadata.codeflow.generated_from = <request cell id>`; a re-run updates that cell
  in place instead of adding another one.
* "replace": the request cell itself becomes plain code. The magic line and the request are kept
  as a `# ` comment header (and in `metadata.codeflow`), so the cell runs without codeflow and
  the request can be restored by uncommenting the header.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .models import RECORD_MIME

MAGIC = "%%codeflow"
META_KEY = "codeflow"
REPLACED_HEADER = "# %%codeflow"
"""A replaced request cell starts with this commented magic line."""

WRITEBACK_MODES: tuple[str, ...] = ("below", "replace", "off")

Cell = Any
Notebook = Any


def cell_source(cell: Mapping[str, Any]) -> str:
    """The cell's source as one string (nbformat allows a list of lines on disk)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def split_request(source: str) -> tuple[str, str] | None:
    """`%%codeflow --opts\\nbody` -> ("--opts", "body"); None when it is no request cell."""
    stripped = source.lstrip()
    if not stripped.startswith(MAGIC):
        return None
    first, _, body = stripped.partition("\n")
    rest = first[len(MAGIC) :]
    if rest and not rest[0].isspace():
        return None  # e.g. `%%codeflowx`: another magic
    return rest.strip(), body


def is_request_cell(cell: Mapping[str, Any]) -> bool:
    return cell.get("cell_type") == "code" and split_request(cell_source(cell)) is not None


def is_generated_cell(cell: Mapping[str, Any]) -> bool:
    meta = cell.get("metadata", {}).get(META_KEY, {})
    return isinstance(meta, Mapping) and bool(meta.get("generated_from"))


def is_replaced_cell(cell: Mapping[str, Any]) -> bool:
    """A request cell that `--replace` turned into code: it links to itself."""
    meta = cell.get("metadata", {}).get(META_KEY, {})
    return (
        cell.get("cell_type") == "code"
        and isinstance(meta, Mapping)
        and bool(meta.get("request"))
        and "generated_from" not in meta
        and meta.get("linked_cell_id") == cell.get("id")
    )


def new_cell_id() -> str:
    return uuid.uuid4().hex[:8]


def ensure_cell_ids(nb: Notebook) -> None:
    """Give every cell an id (nbformat 4.5), since write-back links cells by id."""
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5
    seen: set[str] = set()
    for cell in nb["cells"]:
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = new_cell_id()
            while cid in seen:
                cid = new_cell_id()
            cell["id"] = cid
        seen.add(str(cid))


def find_record(outputs: Any, mime: str = RECORD_MIME) -> dict[str, Any] | None:
    """The last run record (or other JSON bundle of type `mime`) among a cell's outputs."""
    found: dict[str, Any] | None = None
    for out in outputs or ():
        data = out.get("data") if isinstance(out, Mapping) else None
        if isinstance(data, Mapping) and isinstance(data.get(mime), Mapping):
            found = dict(data[mime])
    return found


def find_linked_cell(nb: Notebook, request_id: str) -> int | None:
    """Index of the code cell generated from `request_id`, if any."""
    for index, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get(META_KEY, {})
        if isinstance(meta, Mapping) and meta.get("generated_from") == request_id:
            return index
    return None


def generated_source(record: Mapping[str, Any]) -> str:
    """The code as a notebook cell runs it without codeflow (bash gets `%%bash`)."""
    code = str(record.get("final_code", "")).rstrip("\n")
    if record.get("language") == "bash" and not code.startswith("%%bash"):
        return "%%bash\n" + code
    return code


def source_hash(source: str) -> str:
    """`fnv1a32:<8 hex>` of the UTF-8 source: how codeflow recognises a cell the user edited.

    FNV-1a rather than a cryptographic hash because the sidebar computes the same value in
    the browser, where `crypto.subtle` is missing outside secure contexts; it only has to
    tell an edit from the text codeflow wrote.
    """
    value = 0x811C9DC5
    for byte in source.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"fnv1a32:{value:08x}"


def is_edited(cell: Mapping[str, Any]) -> bool:
    """True when a generated cell's source is no longer what codeflow wrote into it (a cell
    written before codeflow kept the hash counts as not edited)."""
    meta = cell.get("metadata", {}).get(META_KEY, {})
    written = meta.get("written_hash") if isinstance(meta, Mapping) else None
    return isinstance(written, str) and bool(written) and source_hash(cell_source(cell)) != written


def attempts_summary(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One short line of facts per attempt (no code, no timings: metadata must stay small)."""
    rows: list[dict[str, Any]] = []
    for attempt in record.get("attempts", ()):
        err = attempt.get("error") or {}
        rows.append(
            {
                "number": attempt.get("number"),
                "kind": attempt.get("kind", "generate"),
                "success": bool(attempt.get("success")),
                "category": err.get("category"),
                "ename": err.get("ename"),
                "evalue": str(err.get("evalue", ""))[:300] if err else None,
                "rolled_back": bool(attempt.get("rolled_back")),
                "kept_changes": [str(k)[:300] for k in attempt.get("kept_changes", ())][:10],
            }
        )
    return rows


REQUEST_METADATA_KEYS: tuple[str, ...] = (
    "request",
    "model",
    "success",
    "attempts",
    "history",
    "run_id",
    "cache_keys",
    "linked_cell_id",
    "review",
    "undone",
    "steps",
)
"""The one shape of a request cell's `metadata.codeflow` (the labextension reads the same)."""

CODE_METADATA_KEYS: tuple[str, ...] = ("generated_from", "run_id", "written_hash", "review")
"""The one shape of a written-back code cell's `metadata.codeflow`."""


def request_metadata(
    record: Mapping[str, Any],
    *,
    request: str | None = None,
    linked_cell_id: str | None = None,
    undone: bool = False,
) -> dict[str, Any]:
    """`metadata.codeflow` of a request cell: what was asked, what came of it, where it went.

    `attempts` is the count and `history` the short per-attempt facts; the full record stays in
    the cell's output. `linked_cell_id` is the cell holding the code (the request cell itself
    after `--replace`), None until something was written. `review` is `pending` while the
    code waits for approval (`approved` once an approved run went through), `undone` says
    the user undid the run.
    """
    summary = attempts_summary(record)
    keys = [a.get("cache_key") for a in record.get("attempts", ()) if a.get("cache_key")]
    return {
        "request": request if request is not None else str(record.get("request", "")),
        "model": str(record.get("model", "")),
        "success": bool(record.get("success")),
        "attempts": len(summary),
        "history": summary,
        "run_id": str(record.get("run_id", "")),
        "cache_keys": keys,
        "linked_cell_id": linked_cell_id,
        "review": review_state(record),
        "undone": undone,
        "steps": None,
    }


def review_state(record: Mapping[str, Any]) -> str | None:
    """`pending` for code held for review, `approved` for a run of approved code, else None."""
    if record.get("stop_reason") == "awaiting_review":
        return "pending"
    attempts = record.get("attempts") or ()
    if attempts and attempts[0].get("kind") == "approved":
        return "approved"
    return None


def writes_code(record: Mapping[str, Any]) -> bool:
    """Whether a run has code to write back: a working result, or code awaiting review."""
    if not record.get("final_code"):
        return False
    return bool(record.get("success")) or review_state(record) == "pending"


def code_metadata(
    request_id: str, record: Mapping[str, Any], source: str | None = None
) -> dict[str, Any]:
    """`metadata.codeflow` of a generated cell: the link back to its request and run, and the
    hash of what was written (so a later write can tell the user's edits apart)."""
    written = generated_source(record) if source is None else source
    return {
        "generated_from": request_id,
        "run_id": str(record.get("run_id", "")),
        "written_hash": source_hash(written),
        "review": "pending" if review_state(record) == "pending" else None,
    }


def replaced_source(record: Mapping[str, Any], magic_args: str, request: str) -> str:
    """The body of a request cell after `--replace`: commented request header, then the code."""
    args = " ".join(a for a in magic_args.split() if a != "--replace")
    header = [f"{REPLACED_HEADER} {args}".rstrip()]
    header.extend(("# " + line).rstrip() for line in request.rstrip("\n").splitlines())
    return "\n".join([*header, generated_source(record)])


def restore_request(source: str) -> str | None:
    """Turn a replaced cell back into its `%%codeflow` request (None if it is not one)."""
    lines = source.splitlines()
    if not lines or not lines[0].startswith(REPLACED_HEADER):
        return None
    out = [lines[0][2:]]
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        out.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(out)


def apply_writeback(
    nb: Notebook,
    index: int,
    record: Mapping[str, Any],
    *,
    mode: str = "below",
) -> str | None:
    """Write the final code of the request cell at `index` back into `nb`.

    Returns the id of the cell that now holds the code (None when nothing was written: write-back
    off, a failed run, or no code). Code awaiting review is written too (unrun). A linked cell
    the user edited since codeflow wrote it is never overwritten: it stays, unlinked, and the
    code goes into a new linked cell below it. The request cell's metadata is updated in every
    case, so the notebook always says what the last run did.
    """
    import nbformat

    if mode not in WRITEBACK_MODES:
        raise ValueError(f"unknown write-back mode {mode!r}")
    ensure_cell_ids(nb)
    cell = nb["cells"][index]
    parts = split_request(cell_source(cell))
    magic_args, request = parts if parts is not None else ("", str(record.get("request", "")))
    request = request.strip("\n") or str(record.get("request", ""))
    request_id = str(cell["id"])
    cell.setdefault("metadata", {})
    writes = mode != "off" and writes_code(record)

    if not writes:
        linked = find_linked_cell(nb, request_id)
        linked_id = str(nb["cells"][linked]["id"]) if linked is not None else None
        cell["metadata"][META_KEY] = request_metadata(
            record, request=request, linked_cell_id=linked_id
        )
        return None

    if mode == "replace":
        cell["source"] = replaced_source(record, magic_args, request)
        cell["metadata"][META_KEY] = request_metadata(
            record, request=request, linked_cell_id=request_id
        )
        return request_id

    source = generated_source(record)
    linked = find_linked_cell(nb, request_id)
    if linked is not None and is_edited(nb["cells"][linked]):
        # The user's edits win: their cell stays (now plain code, no longer linked) and the
        # new code goes right below it.
        nb["cells"][linked]["metadata"].pop(META_KEY, None)
        index, linked = linked, None
    if linked is None:
        new = nbformat.v4.new_code_cell(source=source)  # type: ignore[no-untyped-call]
        new["id"] = new_cell_id()
        existing = {str(c.get("id")) for c in nb["cells"]}
        while new["id"] in existing:
            new["id"] = new_cell_id()
        new["metadata"][META_KEY] = code_metadata(request_id, record)
        nb["cells"].insert(index + 1, new)
        target = new
    else:
        target = nb["cells"][linked]
        target["source"] = source
        target["outputs"] = []
        target["execution_count"] = None
        target.setdefault("metadata", {})[META_KEY] = code_metadata(request_id, record)
        target["metadata"].pop("execution", None)  # an earlier run's timings
    cell["metadata"][META_KEY] = request_metadata(
        record, request=request, linked_cell_id=str(target["id"])
    )
    return str(target["id"])


def history(nb: Notebook) -> list[dict[str, Any]]:
    """Every request cell with its record (or None when it has not run yet), in order."""
    rows: list[dict[str, Any]] = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        parts = split_request(cell_source(cell))
        meta = cell.get("metadata", {}).get(META_KEY, {})
        if parts is None and not is_replaced_cell(cell):
            continue
        request = parts[1].strip() if parts else str(meta.get("request", ""))
        rows.append(
            {
                "index": index,
                "cell_id": cell.get("id"),
                "request": request,
                "record": find_record(cell.get("outputs")),
            }
        )
    return rows


RUN_KEY = "run"
"""`metadata.codeflow.run` of a notebook written by a stopped `codeflow run`."""


def mark_not_run(nb: Notebook, start: int, reason: str) -> list[str]:
    """Mark the code cells from `start` on as not run, and say so in the notebook's metadata.

    A stopped run leaves the cells it finished as they are. The others lose their outputs,
    execution counts and timings (`metadata.execution`), the way Jupyter shows a cell that has
    not run, so nothing from an earlier run passes for this run's; `metadata.codeflow.run`
    names the stop and lists the ids of the cells not run. Returns those ids.
    """
    ensure_cell_ids(nb)
    ids: list[str] = []
    for cell in nb["cells"][start:]:
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        ids.append(str(cell["id"]))
    meta = nb["metadata"].setdefault(META_KEY, {})
    meta[RUN_KEY] = {"status": "stopped", "reason": reason, "not_run": ids}
    return ids


def mark_finished(nb: Notebook) -> None:
    """A complete run: drop the note an earlier stopped run left in the metadata."""
    meta = nb["metadata"].get(META_KEY)
    if isinstance(meta, dict):
        meta.pop(RUN_KEY, None)
        if not meta:
            nb["metadata"].pop(META_KEY, None)


# -- step plans ---------------------------------------------------------------------------------

PLAN_CELL_KEYS: tuple[str, ...] = (
    "plan_of",
    "step",
    "role",
    "run_id",
    "state",
    "written_hash",
    "history",
)
"""The one shape of `metadata.codeflow` of a plan's step cells (a markdown and a code cell per
step, below their request cell)."""


def find_plan(outputs: Any) -> dict[str, Any] | None:
    """The last plan record among a cell's outputs."""
    from .models import PLAN_MIME

    return find_record(outputs, PLAN_MIME)


def plan_summary(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One short line of facts per step (no code: metadata must stay small)."""
    rows = []
    for step in plan.get("steps", ()):
        record = step.get("record") or {}
        rows.append(
            {
                "number": step.get("number"),
                "title": str(step.get("title", ""))[:200],
                "state": step.get("state", "not_run"),
                "attempts": len(record.get("attempts", ())),
                "history": attempts_summary(record) if record else [],
            }
        )
    return rows


def plan_request_metadata(plan: Mapping[str, Any], *, request: str) -> dict[str, Any]:
    """`metadata.codeflow` of a `--steps` request cell: the usual shape, with `steps`."""
    steps = plan_summary(plan)
    meta: dict[str, Any] = {key: None for key in REQUEST_METADATA_KEYS}
    meta.update(
        {
            "request": request,
            "model": str(plan.get("model", "")),
            "success": bool(plan.get("success")),
            "attempts": sum(int(s["attempts"]) for s in steps),
            "history": [],
            "run_id": str(plan.get("run_id", "")),
            "cache_keys": [
                a.get("cache_key")
                for s in plan.get("steps", ())
                for a in (s.get("record") or {}).get("attempts", ())
                if a.get("cache_key")
            ],
            "undone": False,
            "steps": steps,
        }
    )
    if plan.get("error"):
        meta["error"] = str(plan["error"])
        meta["stop_reason"] = str(plan.get("stop_reason", ""))
    return meta


def plan_cells(plan: Mapping[str, Any], request_id: str) -> list[dict[str, Any]]:
    """The cells a plan puts below its request, as plain dicts (markdown, then code, per
    step): a step that ran carries the outputs of its working (or last) attempt."""
    from .plan import Step, step_markdown

    cells: list[dict[str, Any]] = []
    for step in plan.get("steps", ()):
        record = step.get("record") or {}
        number = int(step.get("number", len(cells) // 2 + 1))
        state = str(step.get("state", "not_run"))
        title = str(step.get("title", f"Step {number}"))
        prose = str(step.get("prose", ""))
        text = step_markdown(Step(number, title, prose, "", ""))
        code = str(record.get("final_code") or step.get("code", "")).rstrip("\n")
        if step.get("language") == "bash" and not code.startswith("%%bash"):
            code = "%%bash\n" + code
        base = {"plan_of": request_id, "step": number, "run_id": str(record.get("run_id", ""))}
        cells.append(
            {
                "cell_type": "markdown",
                "source": text,
                "metadata": {META_KEY: {**base, "role": "markdown", "state": state, "history": []}},
            }
        )
        cells.append(
            {
                "cell_type": "code",
                "source": code,
                "outputs": [_cell_output(o) for o in record.get("outputs", ())]
                if state == "ok"
                else [],
                "metadata": {
                    META_KEY: {
                        **base,
                        "role": "code",
                        "state": state,
                        "written_hash": source_hash(code),
                        "history": attempts_summary(record) if record else [],
                    }
                },
            }
        )
    return cells


def _cell_output(out: Mapping[str, Any]) -> dict[str, Any]:
    """A run's output as a notebook cell holds it (an execute_result needs its count)."""
    cell = dict(out)
    if cell.get("output_type") == "execute_result":
        cell.setdefault("execution_count", None)
        cell.setdefault("metadata", {})
    elif cell.get("output_type") == "display_data":
        cell.setdefault("metadata", {})
    return cell


def _plan_cell_ids(nb: Notebook, request_id: str) -> list[int]:
    return [
        i
        for i, cell in enumerate(nb["cells"])
        if isinstance(meta := cell.get("metadata", {}).get(META_KEY), Mapping)
        and meta.get("plan_of") == request_id
    ]


def apply_plan(nb: Notebook, index: int, plan: Mapping[str, Any]) -> list[str]:
    """Write a plan's steps below the request cell at `index`; returns the ids of the cells
    that now hold them.

    A re-run replaces the earlier steps' cells where they were (never duplicates them). A
    step code cell the user edited is kept, unlinked, and the new code goes right below it.
    """
    import nbformat

    ensure_cell_ids(nb)
    request = nb["cells"][index]
    request_id = str(request["id"])
    parts = split_request(cell_source(request))
    text = parts[1].strip("\n") if parts else str(plan.get("request", ""))
    request.setdefault("metadata", {})[META_KEY] = plan_request_metadata(plan, request=text)
    old = _plan_cell_ids(nb, request_id)
    at = old[0] if old else index + 1
    kept: list[Any] = []
    for i in reversed(old):
        cell = nb["cells"][i]
        if cell.get("cell_type") == "code" and is_edited(cell):
            cell["metadata"].pop(META_KEY, None)  # the user's own cell now; it stays
            kept.append(cell)
        else:
            del nb["cells"][i]
    if kept:  # the new steps go below the last cell the user edited
        at = 1 + max(i for i, c in enumerate(nb["cells"]) if any(c is k for k in kept))
    existing = {str(c.get("id")) for c in nb["cells"]}
    ids: list[str] = []
    for offset, spec in enumerate(plan_cells(plan, request_id)):
        if spec["cell_type"] == "markdown":
            cell = nbformat.v4.new_markdown_cell(spec["source"])  # type: ignore[no-untyped-call]
        else:
            cell = nbformat.v4.new_code_cell(spec["source"])  # type: ignore[no-untyped-call]
            cell["outputs"] = [nbformat.from_dict(o) for o in spec["outputs"]]  # type: ignore[no-untyped-call]
            if cell["outputs"]:  # it ran as part of the request cell's execution
                cell["execution_count"] = request.get("execution_count")
        cell["metadata"] = spec["metadata"]
        cell["id"] = new_cell_id()
        while cell["id"] in existing:
            cell["id"] = new_cell_id()
        existing.add(cell["id"])
        nb["cells"].insert(at + offset, cell)
        ids.append(str(cell["id"]))
    return ids
