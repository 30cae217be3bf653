"""`codeflow run` gives what nbclient gives: interrupted cells, widget state, cell timings.

Each test runs a small notebook of the kind nbclient's own tests use (a cell that sleeps past
its limit, a cell that makes a widget, cells that take a second) through a real `codeflow run`
subprocess, and where it helps through nbclient directly, and compares the two notebooks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import nbformat
import pytest
from modelserver import ModelServer
from nbclient import NotebookClient

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
PY = "```python\n{}\n```"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TIMING_KEYS = {
    "iopub.execute_input",
    "iopub.status.busy",
    "iopub.status.idle",
    "shell.execute_reply",
}
SLEEP = "import time\ntime.sleep(60)"
"""Far longer than any limit below: a run that does not interrupt it takes a minute."""


def make_notebook(path: Path, cells: list[str], **metadata: Any) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata.update(metadata)
    nb.cells = [
        nbformat.v4.new_markdown_cell(c[2:]) if c.startswith("# ") else nbformat.v4.new_code_cell(c)
        for c in cells
    ]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def codeflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CODEFLOW_")) and k != "PYTEST_CURRENT_TEST"
    }
    clean["XDG_CACHE_HOME"] = str(cwd / ".cache")
    clean["XDG_CONFIG_HOME"] = str(cwd / ".config")
    return subprocess.run(
        [sys.executable, "-m", "codeflow_magic.cli", "run", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def with_nbclient(path: Path, **options: Any) -> Any:
    """The notebook as nbclient's own `execute()` leaves it (cwd: its folder, as codeflow's)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}, **options
    )
    client.execute()
    return nb


def read(path: Path) -> Any:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def shape(cell: Any) -> list[tuple[str, str]]:
    """A cell's outputs as (type, error name or stream text): what both runs must agree on."""
    return [
        (o["output_type"], o.get("ename") or o.get("text") or "") for o in cell.get("outputs", [])
    ]


def kernels_of(notebook: Path) -> set[int]:
    """Live processes started for `notebook` (the runner gives its kernel JPY_SESSION_NAME)."""
    needle = b"JPY_SESSION_NAME=" + str(notebook.resolve()).encode() + b"\0"
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    found.add(int(entry))
            except OSError:
                continue
    return found


# -- item 4: interrupt on timeout ------------------------------------------------------------


def test_a_cell_past_cell_timeout_is_interrupted_and_the_next_cell_runs_as_with_nbclient(
    tmp_path: Path,
) -> None:
    """nbclient's Interrupt notebook: `timeout` + `interrupt_on_timeout` + `allow_errors`."""
    source = make_notebook(tmp_path / "interrupt.ipynb", [SLEEP, 'print("done")'])
    started = time.monotonic()
    done = codeflow(str(source), "--cell-timeout", "1.5", "--allow-errors", cwd=tmp_path)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 45, f"the sleeping cell was not interrupted ({took:.0f} s)"
    assert "cell 1 ran past --cell-timeout 1.5 s and was interrupted" in done.stderr
    ours = read(tmp_path / "interrupt.out.ipynb")
    assert shape(ours.cells[0]) == [("error", "KeyboardInterrupt")]
    assert shape(ours.cells[1]) == [("stream", "done\n")]
    assert [c.execution_count for c in ours.cells] == [1, 2]

    theirs = with_nbclient(source, timeout=2, interrupt_on_timeout=True, allow_errors=True)
    assert [shape(c) for c in ours.cells] == [shape(c) for c in theirs.cells]
    assert [c.execution_count for c in ours.cells] == [c.execution_count for c in theirs.cells]


def test_without_allow_errors_a_timed_out_cell_ends_the_run_and_what_ran_is_saved(
    tmp_path: Path,
) -> None:
    source = make_notebook(tmp_path / "stop.ipynb", ["x = 41", SLEEP, "print(x + 1)"])
    original = source.read_bytes()
    done = codeflow(str(source), "--cell-timeout", "1", cwd=tmp_path)
    assert done.returncode == 1
    assert "cell 2 ran past --cell-timeout 1 s and was interrupted (KeyboardInterrupt)" in (
        done.stderr
    )
    assert "add --allow-errors" in done.stderr and "1 code cell(s) marked not run" in done.stderr
    assert source.read_bytes() == original
    out = read(tmp_path / "stop.out.ipynb")
    assert out.cells[0].execution_count == 1
    assert shape(out.cells[1]) == [("error", "KeyboardInterrupt")]
    assert out.cells[2].outputs == [] and out.cells[2].execution_count is None
    assert "execution" not in out.cells[2].metadata
    run = out.metadata["codeflow"]["run"]
    assert run["status"] == "stopped" and run["not_run"] == ["cell-2"]
    assert "--cell-timeout" in run["reason"]

    inplace = codeflow(str(source), "--cell-timeout", "1", "--inplace", cwd=tmp_path)
    assert inplace.returncode == 1 and "the notebook is unchanged" in inplace.stderr
    assert source.read_bytes() == original


def test_a_cell_that_ignores_the_interrupt_ends_the_run_even_with_allow_errors(
    tmp_path: Path,
) -> None:
    """nbclient would interrupt it again and again for ever; the run gives up after a grace."""
    deaf = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    source = make_notebook(tmp_path / "deaf.ipynb", ["x = 1", deaf, "print('after')"])
    started = time.monotonic()
    done = codeflow(str(source), "--cell-timeout", "1", "--allow-errors", cwd=tmp_path)
    assert time.monotonic() - started < 45
    assert done.returncode == 1
    assert "cell 2 ran past --cell-timeout 1 s and was interrupted, but" in done.stderr
    assert "did not stop within" in done.stderr and "Traceback" not in done.stderr
    out = read(tmp_path / "deaf.out.ipynb")
    assert out.cells[0].execution_count == 1
    assert out.metadata["codeflow"]["run"]["not_run"] == ["cell-1", "cell-2"]
    assert not kernels_of(source)


def test_cell_timeout_leaves_codeflow_cells_alone(tmp_path: Path) -> None:
    """A request waits for the model longer than --cell-timeout and is not interrupted (its
    code has execution.timeout); the plain cell after it is."""
    source = make_notebook(
        tmp_path / "mixed.ipynb",
        ["%load_ext codeflow_magic", "%%codeflow\nwait for the model", SLEEP, "print('end')"],
    )
    with ModelServer() as server:
        server.add_rule("wait for the model", text=PY.format("waited = True"), latency=3)
        done = codeflow(
            str(source), "--cell-timeout", "1", "--allow-errors", cwd=tmp_path, env=server.env()
        )
    assert done.returncode == 0, done.stderr
    out = read(tmp_path / "mixed.out.ipynb")
    assert out.cells[1].metadata["codeflow"]["success"] is True
    assert out.cells[2].source == "waited = True"  # the written-back code
    assert shape(out.cells[3]) == [("error", "KeyboardInterrupt")]
    assert shape(out.cells[4]) == [("stream", "end\n")]
    assert "cell 4 ran past --cell-timeout 1 s" in done.stderr


def test_timeout_still_fails_the_run_and_takes_fractions(tmp_path: Path) -> None:
    """`--timeout` keeps its meaning (no interrupt, nothing written); 0.5 no longer crashes
    in nbclient's whole-second trait."""
    source = make_notebook(tmp_path / "hard.ipynb", ["x = 1", SLEEP])
    done = codeflow(str(source), "--timeout", "0.5", cwd=tmp_path)
    assert done.returncode == 1
    assert "cell 2 did not finish within 0.5 s" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "hard.out.ipynb").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "'0' is out of range"),
        ("-1", "'-1' is out of range"),
        ("1e6", "'1e6' is out of range"),
        ("nan", "'nan' is not a finite number"),
        ("inf", "'inf' is not a finite number"),
        ("soon", "'soon' is not a number"),
    ],
)
@pytest.mark.parametrize("option", ["--cell-timeout", "--timeout"])
def test_a_bad_time_limit_is_a_usage_error(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    source = make_notebook(tmp_path / "limits.ipynb", ["1 + 1"])
    done = codeflow(str(source), option, value, cwd=tmp_path)
    assert done.returncode == 2
    assert f"argument {option}: {message}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "limits.out.ipynb").exists()


def test_help_documents_cell_timeout(tmp_path: Path) -> None:
    done = codeflow("--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--cell-timeout SECONDS" in text and "interrupt_on_timeout" in text
    assert "%%codeflow cells are never interrupted" in text


# -- item 5: widget state --------------------------------------------------------------------

WIDGET = """from comm import create_comm
state = {"_model_name": "IntSliderModel", "_model_module": "@jupyter-widgets/controls",
         "_model_module_version": "2.0.0", "value": 1}
slider = create_comm(target_name="jupyter.widget", comm_id="slider-1",
                     data={"state": state, "buffer_paths": []}, metadata={"version": "2.1.0"})
slider.send({"method": "update", "state": {"value": 7}, "buffer_paths": []})
slider.send({"method": "update", "state": {"data": None}, "buffer_paths": [["data"]]},
            buffers=[b"\\x00\\x01"])
"""
"""What ipywidgets sends for a slider (the widget protocol over a `jupyter.widget` comm),
without needing ipywidgets: an open with the state, an update, an update with a buffer."""


def test_widget_state_is_saved_as_nbclient_saves_it(tmp_path: Path) -> None:
    """nbclient's JupyterWidgets notebook: the widgets' last state in `metadata.widgets`, in
    place of the input's stale state."""
    stale = {WIDGET_STATE: {"state": {"old-model": {}}, "version_major": 2, "version_minor": 0}}
    source = make_notebook(tmp_path / "widgets.ipynb", [WIDGET], widgets=stale)
    done = codeflow(str(source), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours = read(tmp_path / "widgets.out.ipynb").metadata["widgets"][WIDGET_STATE]
    assert list(ours["state"]) == ["slider-1"]
    slider = ours["state"]["slider-1"]
    assert slider["model_name"] == "IntSliderModel" and slider["state"]["value"] == 7
    assert slider["buffers"] == [{"data": "AAE=", "encoding": "base64", "path": ["data"]}]
    theirs = with_nbclient(source).metadata["widgets"][WIDGET_STATE]
    assert ours == theirs


def test_a_run_without_widgets_drops_the_inputs_stale_widget_state(tmp_path: Path) -> None:
    stale = {WIDGET_STATE: {"state": {"old-model": {}}, "version_major": 2, "version_minor": 0}}
    source = make_notebook(tmp_path / "plain.ipynb", ["1 + 1"], widgets=stale)
    done = codeflow(str(source), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "widgets" not in read(tmp_path / "plain.out.ipynb").metadata


# -- item 6: cell timings --------------------------------------------------------------------


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_each_executed_cell_records_its_timings_as_with_nbclient(tmp_path: Path) -> None:
    """nbclient's Sleep1s notebook: iopub/shell timestamps per code cell, in order, the
    sleeping cell at least a second long; markdown cells get none."""
    stale = {"iopub.status.busy": "2020-01-01T00:00:00.000000Z"}
    source = make_notebook(
        tmp_path / "sleep1s.ipynb",
        ["import time\nt0 = time.time()", "# a second", "time.sleep(1)", "print(time.time() - t0)"],
    )
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].metadata["execution"] = dict(stale)
    nbformat.write(nb, source)
    done = codeflow(str(source), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours = read(tmp_path / "sleep1s.out.ipynb")
    code = [c for c in ours.cells if c.cell_type == "code"]
    assert all(set(c.metadata["execution"]) == TIMING_KEYS for c in code)
    assert "execution" not in ours.cells[1].metadata
    stamps = [{k: when(v) for k, v in c.metadata["execution"].items()} for c in code]
    assert stamps[0]["iopub.status.busy"].year > 2020  # the input's stale value replaced
    for cell in stamps:
        assert cell["iopub.status.busy"] <= cell["iopub.execute_input"]
        assert cell["iopub.execute_input"] <= cell["shell.execute_reply"]
        assert cell["iopub.execute_input"] <= cell["iopub.status.idle"]
    for before, after in pairwise(stamps):
        assert before["iopub.status.idle"] <= after["iopub.status.busy"]
    slept = stamps[1]["shell.execute_reply"] - stamps[1]["iopub.execute_input"]
    assert slept.total_seconds() >= 1.0

    theirs = with_nbclient(source)
    assert [set(c.metadata.get("execution", {})) for c in ours.cells] == [
        set(c.metadata.get("execution", {})) for c in theirs.cells
    ]
