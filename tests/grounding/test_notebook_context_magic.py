"""Notebook context for `%%codeflow` in a shell that was told nothing about its notebook (as
under nbval or papermill): the one notebook in the working folder holding the request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from modelserver import ModelServer

PY = "```python\n{}\n```"


@pytest.fixture()
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)
    for name in ("CODEFLOW_CACHE", "CODEFLOW_OVERRIDES", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext codeflow_magic", store_history=False)
    yield sh
    sh.run_cell("%unload_ext codeflow_magic", store_history=False)


def write(path: Path, cells: list[nbformat.NotebookNode]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path.write_text(nbformat.writes(nb), encoding="utf-8")


def test_the_notebook_holding_the_request_gives_the_context(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "mine.ipynb",
        [
            nbformat.v4.new_markdown_cell("Weights are in grams; the café sells by the kilo."),
            nbformat.v4.new_code_cell("%%codeflow --no-writeback\nweigh the café beans"),
        ],
    )
    write(tmp_path / "other.ipynb", [nbformat.v4.new_markdown_cell("unrelated notes")])
    with ModelServer() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.add_rule("weigh the", PY.format("print('1.5 kg')"))
        shell.run_cell("%%codeflow --no-writeback\nweigh the café beans", store_history=False)
        shell.run_cell("%%codeflow --no-writeback\nweigh the tea", store_history=False)
        prompts = server.prompts()
    assert (
        "[markdown cell, 1 above]\nWeights are in grams; the café sells by the kilo." in prompts[0]
    )
    assert "unrelated notes" not in prompts[0]
    assert "Notebook context" not in prompts[1]  # a request no notebook here holds
