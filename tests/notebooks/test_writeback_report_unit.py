"""Write-back edits and report rendering on in-memory notebooks (pure functions)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import nbformat

from codeflow_magic.models import RECORD_MIME, Attempt, AttemptError, Metrics, RunRecord
from codeflow_magic.notebook import (
    CODE_METADATA_KEYS,
    REQUEST_METADATA_KEYS,
    apply_writeback,
    find_linked_cell,
    history,
    mark_not_run,
    replaced_source,
    restore_request,
    source_hash,
)
from codeflow_magic.report import (
    notebook_report_html,
    notebook_report_markdown,
    record_bundle,
    status_line,
    summarize,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def record(code: str = "y = 2", success: bool = True, language: str = "python") -> RunRecord:
    failed = Attempt(
        number=1,
        code="y = x",
        success=False,
        error=AttemptError(
            "runtime", "NameError", "name 'x' is not defined", "Traceback\nNameError"
        ),
        generation_s=0.5,
        input_tokens=100,
        output_tokens=20,
        cache_key="k1",
    )
    good = Attempt(
        number=2,
        code=code,
        success=success,
        kind="fix",
        language=language,
        outputs=({"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}},),
        cache_key="k2",
    )
    return RunRecord(
        request="make y",
        language=language,
        model="m",
        success=success,
        final_code=code if success else "",
        outputs=good.outputs,
        attempts=(failed, good),
        metrics=Metrics(total_s=1.5, input_tokens=200, output_tokens=40, cache_hits=1),
        run_id="r1",
    )


def notebook_with(rec: RunRecord, magic: str = "%%codeflow") -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(f"{magic}\nmake y"),
        nbformat.v4.new_code_cell("print(y)"),
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("display_data", data=record_bundle(rec)),
    ]
    return nb


def test_below_inserts_once_then_updates_in_place() -> None:
    nb = notebook_with(record("y = 2"))
    first = apply_writeback(nb, 1, record("y = 2").to_dict())
    assert [c.source for c in nb.cells] == ["x = 1", "%%codeflow\nmake y", "y = 2", "print(y)"]
    assert nb.cells[2].metadata["codeflow"]["generated_from"] == nb.cells[1].id
    meta = nb.cells[1].metadata["codeflow"]
    assert tuple(meta) == REQUEST_METADATA_KEYS
    assert meta == {
        "request": "make y",
        "model": "m",
        "success": True,
        "attempts": 2,
        "history": [
            {
                "number": 1,
                "kind": "generate",
                "success": False,
                "category": "runtime",
                "ename": "NameError",
                "evalue": "name 'x' is not defined",
                "rolled_back": False,
                "kept_changes": [],
            },
            {
                "number": 2,
                "kind": "fix",
                "success": True,
                "category": None,
                "ename": None,
                "evalue": None,
                "rolled_back": False,
                "kept_changes": [],
            },
        ],
        "run_id": "r1",
        "cache_keys": ["k1", "k2"],
        "linked_cell_id": first,
        "review": None,
        "undone": False,
        "steps": None,
    }
    assert nb.cells[2].metadata["codeflow"] == {
        "generated_from": nb.cells[1].id,
        "run_id": "r1",
        "written_hash": source_hash("y = 2"),
        "review": None,
    }
    assert tuple(nb.cells[2].metadata["codeflow"]) == CODE_METADATA_KEYS
    second = apply_writeback(nb, 1, record("y = 3").to_dict())
    assert second == first and len(nb.cells) == 4 and nb.cells[2].source == "y = 3"
    assert find_linked_cell(nb, nb.cells[1].id) == 2
    nbformat.validate(nb)


def test_cells_that_did_not_run_lose_an_earlier_runs_timings() -> None:
    """A linked cell updated by write-back and cells a stopped run did not reach keep no
    `metadata.execution`: timestamps must belong to this run's outputs, like the outputs."""
    stale = {"iopub.status.busy": "2020-01-01T00:00:00.000000Z"}
    nb = notebook_with(record("y = 2"))
    apply_writeback(nb, 1, record("y = 2").to_dict())
    for cell in nb.cells:
        cell.metadata["execution"] = dict(stale)
    apply_writeback(nb, 1, record("y = 3").to_dict())
    assert "execution" not in nb.cells[2].metadata
    assert nb.cells[1].metadata["execution"] == stale  # the request cell is the runner's
    ids = mark_not_run(nb, 3, "stopped")
    assert ids == [nb.cells[3].id] and "execution" not in nb.cells[3].metadata
    assert nb.cells[0].metadata["execution"] == stale
    nbformat.validate(nb)


def test_failed_runs_and_off_write_no_code_but_record_metadata() -> None:
    nb = notebook_with(record(success=False))
    assert apply_writeback(nb, 1, record(success=False).to_dict()) is None
    meta = nb.cells[1].metadata["codeflow"]
    assert len(nb.cells) == 3 and meta["success"] is False and meta["attempts"] == 2
    assert meta["linked_cell_id"] is None and tuple(meta) == REQUEST_METADATA_KEYS
    assert apply_writeback(nb, 1, record().to_dict(), mode="off") is None
    assert len(nb.cells) == 3


def test_replace_keeps_the_request_as_a_comment_header_that_can_be_restored() -> None:
    nb = notebook_with(record(), "%%codeflow --replace --max-attempts 2")
    apply_writeback(nb, 1, record("y = 2").to_dict(), mode="replace")
    source = nb.cells[1].source
    assert source == "# %%codeflow --max-attempts 2\n# make y\ny = 2"
    assert restore_request(source) == "%%codeflow --max-attempts 2\nmake y"
    meta = nb.cells[1].metadata["codeflow"]
    assert meta["request"] == "make y" and meta["linked_cell_id"] == nb.cells[1].id
    assert tuple(meta) == REQUEST_METADATA_KEYS
    # still listed as a request (by its self-link), though its source is plain code now
    assert [row["request"] for row in history(nb)] == ["make y"]


def test_bash_code_is_written_back_as_a_bash_cell() -> None:
    rec = record("wc -l data.csv", language="bash").to_dict()
    assert replaced_source(rec, "--language bash", "count").endswith("%%bash\nwc -l data.csv")


def test_bundle_and_status_line() -> None:
    rec = record()
    bundle = record_bundle(rec)
    assert set(bundle) == {RECORD_MIME, "text/html", "text/plain"}
    # the stored record keeps the final outputs once; attempts keep all but their outputs
    stored = RunRecord.from_dict(bundle[RECORD_MIME])
    assert stored.outputs == rec.outputs and rec.attempts[1].outputs
    assert stored == replace(rec, attempts=tuple(replace(a, outputs=()) for a in rec.attempts))
    assert "<details" in bundle["text/html"] and "<script" not in bundle["text/html"]
    assert "<details open" not in bundle["text/html"]
    # the fallbacks carry the one status line; HTML uses a mark every text font has
    assert bundle["text/plain"].splitlines()[0] == status_line(rec)
    assert "✓ succeeded after 2 attempts" in re.sub(r"<[^>]+>", "", bundle["text/html"])
    assert "✅" not in bundle["text/html"] and "❌" not in bundle["text/html"]
    assert "NameError" in bundle["text/html"] and "y = x" in bundle["text/html"]
    assert status_line(rec) == "✅ succeeded after 2 attempts · 1.5 s · 240 tokens · 1 from cache"
    failed = status_line(record(success=False))
    assert failed.startswith("❌ failed after 2 attempts") and "NameError" in failed


def test_notebook_reports_embed_images_and_list_attempts() -> None:
    nb = notebook_with(record())
    summary = summarize(nb, "demo.ipynb")
    assert summary.succeeded == 1 and summary.totals()["attempts"] == 2
    page = notebook_report_html([summary])
    assert f"data:image/png;base64,{PNG}" in page
    assert "Attempt 1" in page and "Attempt 2" in page and "runtime" in page
    md = notebook_report_markdown([summary])
    assert "| demo.ipynb | 3 | 1 | 1/1 | 2 |" in md and "**Attempt 1** (generate): runtime" in md
