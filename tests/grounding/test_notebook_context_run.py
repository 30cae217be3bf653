"""Notebook context through `codeflow run`: the magic inside the kernel reads the notebook it
runs in (JPY_SESSION_NAME) and puts the cells above the request into the prompt."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from cliharness import Result, codeflow, write_notebook
from modelserver import ModelServer

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
PY = "```python\n{}\n```"


def run(*args: str, env: dict[str, str], cwd: Path) -> Result:
    return codeflow("run", *args, env=env, cwd=cwd)


def test_preceding_markdown_reaches_the_next_request_and_replays(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "prices.ipynb",
        [
            "%load_ext codeflow_magic",
            nbformat.v4.new_markdown_cell("## Prices\nAll prices are in cents; report euros."),
            "prices = [250, 1000]",
            "%%codeflow\nprint the total price",
            nbformat.v4.new_markdown_cell("Then the same in dollars at 1.1 per euro."),
            "%%codeflow\nconvert the total",
        ],
        ids="c",
    )
    with ModelServer() as server:
        server.add_rule("convert the total", PY.format("print(sum(prices) / 100 * 1.1)"))
        server.add_rule("print the total price", PY.format("print(sum(prices) / 100)"))
        done = run(str(path), env=server.env(), cwd=tmp_path)
        prompts = server.prompts()
    assert done.code == 0, done.stderr
    first, second = prompts
    context = "Notebook context (the cells above this request, nearest first):\n"
    assert context + "[code cell, 1 above]\nprices = [250, 1000]\n\n" in first
    assert "[markdown cell, 2 above]\n## Prices\nAll prices are in cents; report euros." in first
    assert "[code cell, 3 above]\n%load_ext codeflow_magic" in first
    assert "Then the same in dollars" not in first  # only cells above
    assert "[markdown cell, 1 above]\nThen the same in dollars at 1.1 per euro." in second
    assert "[code cell, 2 above]\n%%codeflow\nprint the total price" in second
    assert second.index("Then the same in dollars") < second.index("All prices are in cents")

    # the written-back notebook asks the same prompts again: the replay needs no model
    out = tmp_path / "prices.out.ipynb"
    assert any(
        c.metadata.get("codeflow", {}).get("generated_from") for c in nbformat.read(out, 4).cells
    )
    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    again = run(str(out), "-o", "again.ipynb", env=offline, cwd=tmp_path)
    assert again.code == 0, again.stderr
