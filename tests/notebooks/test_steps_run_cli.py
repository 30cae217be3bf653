"""`%%codeflow --steps` through `codeflow run`: a plan becomes markdown and code cells below
the request, each step runs through the normal loop, a failing step stops the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from cliharness import codeflow, write_notebook
from modelserver import ModelServer

from codeflow_magic.models import PLAN_MIME
from codeflow_magic.notebook import PLAN_CELL_KEYS

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
PY = "```python\n{}\n```"

PLAN = """Here is the plan.

## Make the numbers
A short list to work on.
```python
values = [3, 4, 5]
print('made', len(values))
```

## Square them
```python
squares = [v * v for v in valuez]
print('squares', squares)
```

### Step 3: Add them up
The total of the squares.
```python
print('total', sum(squares))
```
"""


def stream_text(cell: Any) -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"
    )


def steps_below(nb: Any, request_index: int) -> list[Any]:
    request_id = nb.cells[request_index].id
    return [c for c in nb.cells if c.metadata.get("codeflow", {}).get("plan_of") == request_id]


def test_a_plan_becomes_cells_and_a_failing_step_is_fixed(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "plan.ipynb",
        ["%load_ext codeflow_magic", "%%codeflow --steps\nsum of squares of three numbers"],
    )
    with ModelServer() as server:
        server.add_rule("name 'valuez' is not defined", PY.format(
            "squares = [v * v for v in values]\nprint('squares', squares)"
        ))  # fmt: skip
        server.add_rule("Request:\nsum of squares", PLAN)
        done = codeflow("run", str(nb), "--report", "report.html", env=server.env(), cwd=tmp_path)
    assert done.code == 0, done.stderr
    out = nbformat.read(tmp_path / "plan.out.ipynb", as_version=4)
    nbformat.validate(out)
    cells = steps_below(out, 1)
    assert [c.cell_type for c in cells] == ["markdown", "code"] * 3
    assert out.cells[2:8] == cells  # right below the request, in order
    assert cells[0].source == "## Make the numbers\n\nA short list to work on."
    assert cells[4].source == "## Add them up\n\nThe total of the squares."
    assert [stream_text(c) for c in cells[1::2]] == [
        "made 3\n",
        "squares [9, 16, 25]\n",
        "total 50\n",
    ]
    step2 = cells[3].metadata["codeflow"]
    assert set(step2) == set(PLAN_CELL_KEYS)
    assert step2["state"] == "ok" and cells[3].source.endswith(
        "for v in values]\nprint('squares', squares)"
    )
    assert [h["ename"] for h in step2["history"]] == ["NameError", None]
    request = out.cells[1]
    meta = request.metadata["codeflow"]
    assert [s["state"] for s in meta["steps"]] == ["ok", "ok", "ok"] and meta["success"]
    # the request cell keeps the plan only; the outputs live in the step cells
    assert [PLAN_MIME in o.get("data", {}) for o in request.outputs] == [True]
    report = (tmp_path / "report.html").read_text()
    assert "step 1: Make the numbers" in report and "step 3: Add them up" in report

    # a re-run replaces the steps' cells where they are (offline, from the recorded answers)
    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    again = codeflow("run", "plan.out.ipynb", "-o", "again.ipynb", env=offline, cwd=tmp_path)
    assert again.code == 0, again.stderr
    rerun = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    assert len(rerun.cells) == len(out.cells)
    assert [c.source for c in steps_below(rerun, 1)] == [c.source for c in cells]
    assert [stream_text(c) for c in steps_below(rerun, 1)[1::2]] == [
        stream_text(c) for c in cells[1::2]
    ]


def test_a_step_that_keeps_failing_stops_the_plan(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "stop.ipynb",
        [
            "%load_ext codeflow_magic",
            "%%codeflow --steps improvement.max_attempts=2\nsum of squares of three numbers",
            "print('after')",
        ],
    )
    with ModelServer() as server:
        server.add_rule("name 'valuez' is not defined", PY.format(
            "squares = [v * v for v in valuess]"
        ))  # fmt: skip
        server.add_rule("Request:\nsum of squares", PLAN)
        done = codeflow("run", str(nb), env=server.env(), cwd=tmp_path)
    assert done.code == 1, done.stderr
    assert "step 2 (Square them) failed" in done.stderr
    out = nbformat.read(tmp_path / "stop.out.ipynb", as_version=4)
    cells = steps_below(out, 1)
    states = [c.metadata["codeflow"]["state"] for c in cells[1::2]]
    assert states == ["ok", "failed", "not_run"]
    assert stream_text(cells[5]) == "" and cells[5].outputs == []
    assert cells[5].source == "print('total', sum(squares))"  # the plan's code, not run
    assert [s["state"] for s in out.cells[1].metadata["codeflow"]["steps"]] == states


def test_bad_plans_are_clear_failures(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "bad.ipynb",
        [
            "%load_ext codeflow_magic",
            "%%codeflow --steps\nno code please",
            "%%codeflow --steps --max-steps 2\ntoo many steps",
            "%%codeflow --steps\na step in cobol",
        ],
    )
    with ModelServer() as server:
        server.add_rule("Request:\nno code please", "## Think\nJust think about it.")
        server.add_rule("Request:\ntoo many steps", PLAN)
        server.add_rule(
            "Request:\na step in cobol",
            "## Hello\n```cobol\nDISPLAY 'HI'.\n```\n## After\n```python\nprint('no')\n```",
        )
        done = codeflow("run", str(nb), env=server.env(), cwd=tmp_path)
    assert done.code == 1, done.stderr
    out = nbformat.read(tmp_path / "bad.out.ipynb", as_version=4)
    nbformat.validate(out)
    assert "the model's plan has no code blocks" in done.stderr
    assert "the model's plan has 3 steps; at most 2 are allowed" in done.stderr
    cobol = next(
        i for i, c in enumerate(out.cells) if "cobol" in c.source and c.cell_type == "code"
    )
    cells = steps_below(out, cobol)
    assert [c.metadata["codeflow"]["state"] for c in cells[1::2]] == ["failed", "not_run"]
    history = cells[1].metadata["codeflow"]["history"]
    assert history[0]["ename"] == "UnknownLanguage"


def test_codeflow_new_writes_a_notebook_that_replays_identically(tmp_path: Path) -> None:
    (tmp_path / "numbers.csv").write_text("value\n3\n4\n5\n")
    with ModelServer() as server:
        server.add_rule("name 'valuez' is not defined", PY.format(
            "squares = [v * v for v in values]\nprint('squares', squares)"
        ))  # fmt: skip
        server.add_rule("Request:\nsum of squares", PLAN)
        made = codeflow(
            "new", "sum of squares of three numbers", "--data", "numbers.csv",
            "-o", "analysis.ipynb", "--report", "analysis.html",
            env=server.env(), cwd=tmp_path,
        )  # fmt: skip
        prompt = server.prompts()[0]
    assert made.code == 0, made.stderr
    assert "numbers.csv" in prompt and "value" in prompt  # the data file was previewed
    nb = nbformat.read(tmp_path / "analysis.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].source.startswith("# Sum of squares of three numbers")
    assert nb.cells[2].source.startswith("%%codeflow --steps\nsum of squares")
    cells = steps_below(nb, 2)
    assert [stream_text(c) for c in cells[1::2]] == [
        "made 3\n",
        "squares [9, 16, 25]\n",
        "total 50\n",
    ]
    assert "step 2: Square them" in (tmp_path / "analysis.html").read_text()

    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    again = codeflow("run", "analysis.ipynb", "-o", "again.ipynb", env=offline, cwd=tmp_path)
    assert again.code == 0, again.stderr
    rerun = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    assert [c.source for c in rerun.cells] == [c.source for c in nb.cells]
    assert [stream_text(c) for c in rerun.cells] == [stream_text(c) for c in nb.cells]

    # nbval re-executes the written notebook cell by cell (the only notebook in its folder, as
    # the magic finds its notebook by the request when no frontend names it)
    (tmp_path / "again.ipynb").unlink()
    import subprocess
    import sys

    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "analysis.ipynb", "--nbval-current-env"],
        cwd=tmp_path, env={**__import__("os").environ, **offline},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout[-3000:]


def test_codeflow_new_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "taken.ipynb").write_text("keep me")
    cases = [
        (["new", "", "-o", "a.ipynb"], "the request is empty"),
        (["new", "do it", "-o", "taken.ipynb"], "exists"),
        (["new", "do it", "-o", "a.txt"], "NAME.ipynb"),
        (["new", "do it", "--data", "missing.csv", "-o", "a.ipynb"], "no such file"),
        (["new", "do it", "-o", "a.ipynb", "--max-steps", "0"], "--max-steps"),
        (["new", "do it", "-o", "a.ipynb", "improvement.nonsense=1"], "nonsense"),
    ]
    for args, message in cases:
        result = codeflow(*args, cwd=tmp_path)
        assert result.code == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert (tmp_path / "taken.ipynb").read_text() == "keep me"
    assert not (tmp_path / "a.ipynb").exists()
