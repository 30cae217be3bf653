"""Safe on a real notebook, through `codeflow run`: failed attempts leave no trace in the
kernel, code held for review does not run, a hand-edited linked cell is never overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from cliharness import codeflow, write_notebook
from modelserver import ModelServer

from codeflow_magic.models import RECORD_MIME
from codeflow_magic.notebook import source_hash

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
PY = "```python\n{}\n```"

SETUP = "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3, 4]})\nn = 4"
STATE = "print(sorted(df.columns), len(df), n, 'tmp' in dir())"

A_FIRST = (
    "df['b'] = df['a'] * 2\n"
    "df.drop(index=[0, 1], inplace=True)\n"
    "n = 99\n"
    "tmp = 1\n"
    "open('side.txt', 'w').write('x')\n"
    "raise ValueError('halfdone-A')"
)
A_FIX = "df['c'] = df['a'] + 1\nprint('rows', len(df), 'n', n)"


def stream_text(cell: Any) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"
    )


def record_of(cell: Any) -> dict[str, Any]:
    return next(o["data"][RECORD_MIME] for o in cell.outputs if RECORD_MIME in o.get("data", {}))


def test_failed_attempts_leave_no_trace_and_review_runs_nothing(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "trust.ipynb",
        [
            "%load_ext codeflow_magic",
            SETUP,
            "%%codeflow\nclean df",
            STATE,
            "%%codeflow improvement.max_attempts=2\nbreak df",
            STATE,
            "%%codeflow --review\nshow marker",
            "print('marker_c' in dir())",
        ],
    )
    with ModelServer() as server:
        server.add_rule("halfdone-A", PY.format(A_FIX))
        server.add_rule(
            "first-B", PY.format("df.drop(columns=['a'], inplace=True)\nraise KeyError('second-B')")
        )
        server.add_rule("Request:\nclean df", PY.format(A_FIRST))
        server.add_rule(
            "Request:\nbreak df",
            PY.format("df['d'] = 0\nn = -1\ntmp = 2\nraise RuntimeError('first-B')"),
        )
        server.add_rule("Request:\nshow marker", PY.format("print('MARKER-C')\nmarker_c = 1"))
        done = codeflow("run", str(nb), "--report", "report.html", env=server.env(), cwd=tmp_path)
    assert done.code == 1, done.stderr  # request B failed for good
    out = nbformat.read(tmp_path / "trust.out.ipynb", as_version=4)
    by_source = {c.source: i for i, c in enumerate(out.cells)}

    # A: as if only the working attempt had ran (df kept its 4 rows, n is 4, no tmp, no b)
    a = by_source["%%codeflow\nclean df"]
    assert "rows 4 n 4" in stream_text(out.cells[a])
    assert stream_text(out.cells[a + 2]) == "['a', 'c'] 4 4 False\n"
    record = record_of(out.cells[a])
    first = record["attempts"][0]
    assert first["rolled_back"] and not first["success"]
    assert "wrote side.txt" in first["kept_changes"]  # a file cannot be rolled back: named
    history = out.cells[a].metadata["codeflow"]["history"]
    assert history[0]["rolled_back"] and "wrote side.txt" in history[0]["kept_changes"]
    # B: every attempt failed, so the state is as before the request
    b = by_source["%%codeflow improvement.max_attempts=2\nbreak df"]
    assert not record_of(out.cells[b])["success"]
    assert stream_text(out.cells[b + 1]) == "['a', 'c'] 4 4 False\n"
    # C: held for review: the code is in the linked cell, and it never ran
    c = by_source["%%codeflow --review\nshow marker"]
    linked = out.cells[c + 1]
    assert linked.metadata["codeflow"]["generated_from"] == out.cells[c].id
    assert linked.metadata["codeflow"]["review"] == "pending"
    assert linked.source == "print('MARKER-C')\nmarker_c = 1"
    assert linked.outputs == [] and linked.execution_count is None
    printed = [line for cell in out.cells for line in stream_text(cell).splitlines()]
    assert "MARKER-C" not in printed  # (the review text shows the code, never its output)
    assert "print('MARKER-C')" in printed
    assert stream_text(out.cells[c + 2]) == "False\n"
    assert out.cells[c].metadata["codeflow"]["review"] == "pending"
    assert "awaiting review" in done.stderr
    assert "awaiting review" in (tmp_path / "report.html").read_text()


def test_a_hand_edited_linked_cell_is_kept_and_the_new_code_goes_below(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "edit.ipynb", ["%load_ext codeflow_magic", "%%codeflow\nmake x", "print(x)"]
    )
    with ModelServer() as server:
        server.add_rule("Request:\nmake x", PY.format("x = 1"))
        first = codeflow("run", str(nb), "--inplace", env=server.env(), cwd=tmp_path)
        assert first.code == 0, first.stderr
        written = nbformat.read(nb, as_version=4)
        linked = written.cells[2]
        assert linked.metadata["codeflow"]["written_hash"] == source_hash("x = 1")
        linked.source = "x = 1  # mine\nmine = True"  # the user's edit
        nbformat.write(written, nb)
        second = codeflow("run", str(nb), "--inplace", env=server.env(), cwd=tmp_path)
    assert second.code == 0, second.stderr
    assert "edited by hand" in second.stderr
    after = nbformat.read(nb, as_version=4)
    sources = [c.source for c in after.cells]
    assert sources[2] == "x = 1  # mine\nmine = True"  # kept, word for word
    assert "codeflow" not in after.cells[2].metadata  # now the user's own cell
    assert sources[3] == "x = 1" and after.cells[3].metadata["codeflow"]["generated_from"]
    assert after.cells[1].metadata["codeflow"]["linked_cell_id"] == after.cells[3].id
    assert stream_text(after.cells[2]) == ""  # ran as a plain cell: no output of its own
    assert stream_text(after.cells[4]) == "1\n"


def test_run_review_writes_every_request_unrun(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "review.ipynb", ["%load_ext codeflow_magic", "%%codeflow\nmake y", "1 + 1"]
    )
    with ModelServer() as server:
        server.add_rule("Request:\nmake y", PY.format("print('RAN-Y')\ny = 2"))
        done = codeflow("run", str(nb), "--review", env=server.env(), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "awaiting review" in done.stderr
    out = nbformat.read(tmp_path / "review.out.ipynb", as_version=4)
    linked = out.cells[2]
    assert linked.source == "print('RAN-Y')\ny = 2" and linked.outputs == []
    assert linked.metadata["codeflow"]["review"] == "pending"
    printed = [line for cell in out.cells for line in stream_text(cell).splitlines()]
    assert "RAN-Y" not in printed
    assert out.cells[3].outputs[0]["data"]["text/plain"] == "2"  # the rest of the notebook ran
