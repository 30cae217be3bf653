"""`codeflow run` end to end: a real nbclient kernel, the magic inside it, the loopback model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from cliharness import Result, write_notebook
from cliharness import codeflow as run_codeflow
from modelserver import ModelServer

from codeflow_magic.models import RECORD_MIME
from codeflow_magic.notebook import CODE_METADATA_KEYS, REQUEST_METADATA_KEYS

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
PY = "```python\n{}\n```"


def make_notebook(path: Path, cells: list[str]) -> Path:
    return write_notebook(path, cells)


def codeflow(*args: str, env: dict[str, str], cwd: Path) -> Result:
    return run_codeflow("run", *args, env=env, cwd=cwd)


def stream_text(cell: Any) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"
    )


@pytest.fixture()
def notebook(tmp_path: Path) -> Path:
    return make_notebook(
        tmp_path / "analysis.ipynb",
        [
            "%load_ext codeflow_magic",
            "%%codeflow\nbuild a list called squares of the squares of 1 to 4",
            "%%codeflow\nadd up squares into total",
            "print('total is', total)",
        ],
    )


def test_run_writes_back_reports_and_replays_offline(notebook: Path, tmp_path: Path) -> None:
    original = notebook.read_bytes()
    with ModelServer() as server:
        # anchored on "Request:": a later prompt quotes the cells above it (notebook context)
        server.add_rule("NameError", PY.format("squares = [n * n for n in range(1, 5)]\nsquares"))
        server.add_rule(
            "Request:\nbuild a list called squares",
            PY.format("squares = [n * n for n in rnge(1, 5)]"),
        )
        server.add_rule("Request:\nadd up squares", PY.format("total = sum(squares)\nprint(total)"))
        done = codeflow(str(notebook), "--report", "report.html", env=server.env(), cwd=tmp_path)
        prompts = server.prompts()
    assert done.code == 0, done.stderr
    assert "without encryption" not in done.stderr
    assert notebook.read_bytes() == original  # never over the input without --inplace
    out = nbformat.read(tmp_path / "analysis.out.ipynb", as_version=4)
    assert [c.get("id") for c in out.cells][:2] == ["cell-0", "cell-1"]
    request, linked = out.cells[1], out.cells[2]
    assert linked.metadata["codeflow"]["generated_from"] == "cell-1"
    assert linked.source == "squares = [n * n for n in range(1, 5)]\nsquares"
    assert linked.execution_count is None and linked.outputs == []  # skipped, not re-run
    meta = request.metadata["codeflow"]
    assert set(meta) == set(REQUEST_METADATA_KEYS)  # (saved with sorted keys)
    assert meta["success"] and meta["linked_cell_id"] == linked.id and meta["attempts"] == 2
    assert meta["history"][0]["ename"] == "NameError" and meta["history"][1]["success"]
    assert set(linked.metadata["codeflow"]) == set(CODE_METADATA_KEYS)
    record_out = [o for o in request.outputs if RECORD_MIME in o.get("data", {})]
    assert len(record_out) == 1
    # one status line: the record's; no other output repeats it
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in request.outputs]
    assert sum("succeeded after" in t for t in texts) == 1
    html = record_out[0]["data"]["text/html"]
    assert "<details" in html and "<details open" not in html and "NameError" in html
    # the second request saw the variable the first one made (the prompt carried the state)
    assert any("squares: list len 4" in p for p in prompts)
    assert out.cells[4].metadata["codeflow"]["generated_from"] == "cell-2"
    assert stream_text(out.cells[5]) == "total is 30\n"
    report = (tmp_path / "report.html").read_text()
    assert "Attempt 1" in report and "Attempt 2" in report and "runtime" in report
    assert "<script" not in report

    # offline: no server, replay only; same outputs from the recorded answers, no duplicates
    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    again = codeflow("analysis.out.ipynb", "-o", "again.ipynb", env=offline, cwd=tmp_path)
    assert again.code == 0, again.stderr
    rerun = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    assert len(rerun.cells) == len(out.cells)
    links = [c for c in rerun.cells if c.metadata.get("codeflow", {}).get("generated_from")]
    assert [c.metadata["codeflow"]["generated_from"] for c in links] == ["cell-1", "cell-2"]
    assert stream_text(rerun.cells[5]) == "total is 30\n"
    assert stream_text(rerun.cells[3]) == stream_text(out.cells[3]) == "30\n"
    rec = next(o for o in rerun.cells[1].outputs if RECORD_MIME in o.get("data", {}))
    assert rec["data"][RECORD_MIME]["metrics"]["cache_hits"] == 2


def test_the_kernel_talks_over_ipc_from_the_notebook_folder(tmp_path: Path) -> None:
    """No TCP port (and no ipykernel warning about one); sockets are cleaned up afterwards."""
    folder = tmp_path / "nbdir"
    folder.mkdir()
    nb = make_notebook(
        folder / "where.ipynb",
        [
            "import json, os\n"
            "from ipykernel.connect import get_connection_file, get_connection_info\n"
            "info = json.loads(get_connection_info())\n"
            "print(info['transport'], os.getcwd(), get_connection_file(), sep='\\n')"
        ],
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = codeflow(str(nb), env={}, cwd=elsewhere)
    assert done.code == 0, done.stderr
    assert "without encryption" not in done.stderr and "TCP" not in done.stderr
    out = nbformat.read(folder / "where.out.ipynb", as_version=4)
    transport, cwd, connection_file = stream_text(out.cells[0]).splitlines()
    assert transport == "ipc" and cwd == str(folder.resolve())
    assert not Path(connection_file).parent.exists()  # the socket folder is gone
    assert sorted(p.name for p in folder.iterdir()) == ["where.ipynb", "where.out.ipynb"]


def test_a_failing_cell_exits_1_names_the_error_and_writes_nothing(tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "broken.ipynb", ["x = 1", "raise ValueError('boom here')", "y = 2"]
    )
    original = nb.read_bytes()
    done = codeflow(str(nb), env={}, cwd=tmp_path)
    assert done.code == 1
    assert "ValueError" in done.stderr and "boom here" in done.stderr and "cell 2" in done.stderr
    assert nb.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ipynb"]
    allowed = codeflow(str(nb), "--allow-errors", env={}, cwd=tmp_path)
    assert allowed.code == 0, allowed.stderr
    assert (tmp_path / "broken.out.ipynb").exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, (), "no such file"),
        ("{not json", (), "invalid JSON"),
        (json.dumps({"hello": 1}), (), "not a notebook"),
        ("ok", ("--report", "r.pdf"), "FILE.html or FILE.md"),
        ("ok", ("improvement.nonsense=1",), "improvement.nonsense"),
    ],
)
def test_bad_input_exits_2_and_leaves_the_file(
    tmp_path: Path, content: str | None, args: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "input.ipynb"
    if content == "ok":
        make_notebook(path, ["1 + 1"])
    elif content is not None:
        path.write_text(content)
    before = path.read_bytes() if path.exists() else None
    done = codeflow(str(path), *args, env={}, cwd=tmp_path)
    assert done.code == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert (path.read_bytes() if path.exists() else None) == before
    assert not (tmp_path / "input.out.ipynb").exists()


def test_child_process_output_lands_in_its_cell_in_order(tmp_path: Path) -> None:
    """`os.system`, `subprocess.run` and `os.write(1, ...)` output is the cell's stream output,
    in order with `print`, never on codeflow's own stdout."""
    code = (
        "import os, subprocess\n"
        "print('A')\n"
        "os.system('echo X')\n"
        "print('B')\n"
        "subprocess.run(['echo', 'Y'])\n"
        "os.write(1, b'Z\\n')\n"
        "print('C')"
    )
    nb = make_notebook(tmp_path / "fd.ipynb", [code, "print('next')"])
    done = codeflow(str(nb), env={}, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "X" not in done.stdout and "Z" not in done.stdout
    out = nbformat.read(tmp_path / "fd.out.ipynb", as_version=4)
    assert stream_text(out.cells[0]) == "A\nX\nB\nY\nZ\nC\n"
    assert stream_text(out.cells[1]) == "next\n"
