"""Review, undo and never overwriting the user's edits (issue 14), clicked through in a real
JupyterLab and chromium.

One notebook, one page; the tests run in file order on it:

1. a `--review` request writes its code into the linked cell and runs nothing; the user edits
   the pending code and clicks Run: exactly the edited code runs;
2. Undo takes that run back: the variable it rebound has its old value, the linked cell the
   review created is gone;
3. a second `--review` request is discarded: nothing ran, its cell is gone;
4. the user edits a generated cell and clicks Re-run: the question comes up, "Insert below"
   keeps the edit and puts the new code under it, "Keep mine" leaves the cell alone.

The scripted model server answers each request by a word only that request contains.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_lab_browser import (
    ARTIFACTS,
    CELLS_JS,
    KERNEL_READY_JS,
    RUN_MS,
    chromium_browser,
    jupyter_lab,
    scripted_model_server,
)

from codeflow_magic.notebook import source_hash

pytestmark = pytest.mark.browser

# The printed markers are built at run time, so finding one in an output means the code ran
# (the code itself, shown in the record, never contains them).
REVIEWED = 'print("ZEBRA" + "-RAN")\nreview_value = 7\n'
DISCARDED = 'print("WALRUS" + "-RAN")\ndiscard_value = 3\n'
EDITABLE = "edit_value = 5\nprint(edit_value * 2)\n"
# A prompt carries the cells above it: the rule of the lowest request comes first.
RULES = [
    {"contains": "ocelot", "text": f"```python\n{EDITABLE}```"},
    {"contains": "walrus", "text": f"```python\n{DISCARDED}```"},
    {"contains": "zebra", "text": f"```python\n{REVIEWED}```"},
]
SOURCES = [
    "%load_ext codeflow_magic",
    "review_value = 1",
    "%%codeflow --review\nset the zebra value",
    "%%codeflow --review\nset the walrus value",
    "%%codeflow\ncompute the ocelot value",
]
LOAD, SETUP, REVIEW_REQ, DISCARD_REQ, EDIT_REQ = range(5)
RECORD_MIME = "application/vnd.codeflow.run+json"

# Run code in the page's kernel and return what it printed (the check of kernel state).
KERNEL_PRINT_JS = """async (code) => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = k.requestExecute({code, silent: false, store_history: false});
  let out = '';
  future.onIOPub = m => {
    if (m.header.msg_type === 'stream') out += m.content.text;
    if (m.header.msg_type === 'error') out += m.content.ename + ': ' + m.content.evalue;
  };
  await future.done;
  return out;
}"""


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"trust-{name}.png"), full_page=False)


def cells(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(CELLS_JS))


def cell_by_id(page: Any, cell_id: str) -> dict[str, Any]:
    return next(c for c in cells(page) if c["id"] == cell_id)


def index_of(page: Any, cell_id: str) -> int:
    return [c["id"] for c in cells(page)].index(cell_id)


def linked_cells(page: Any, request_id: str) -> list[dict[str, Any]]:
    return [c for c in cells(page) if (c["codeflow"] or {}).get("generated_from") == request_id]


def kernel_print(page: Any, code: str) -> str:
    return str(page.evaluate(KERNEL_PRINT_JS, code)).strip()


def outputs_text(cell: dict[str, Any]) -> str:
    return json.dumps(cell["outputs"])


def wait_ran(page: Any, cell_id: str, count_before: Any) -> None:
    """Until the cell's execution count moved on and the kernel is idle."""
    page.wait_for_function(
        """([id, before]) => {
          const w = window.jupyterapp.shell.currentWidget;
          const cells = w.content.model.cells;
          let c = null;
          for (let i = 0; i < cells.length; i++) if (cells.get(i).id === id) c = cells.get(i);
          const k = w.sessionContext.session.kernel;
          return c && c.executionCount !== null && c.executionCount !== before
            && k.status === 'idle';
        }""",
        arg=[cell_id, count_before],
        timeout=RUN_MS,
    )


def run_cell(page: Any, cell_id: str) -> None:
    """Run a cell as the Run menu does (select it, Ctrl+Enter) and wait until it finished."""
    before = cell_by_id(page, cell_id)["count"]
    page.evaluate(
        """async (i) => {
          const w = window.jupyterapp.shell.currentWidget;
          w.content.mode = 'command';
          w.content.activeCellIndex = i;
          w.content.deselectAll();
          await w.content.scrollToItem(i);
          w.content.node.focus();
        }""",
        index_of(page, cell_id),
    )
    page.keyboard.press("Control+Enter")
    wait_ran(page, cell_id, before)


def settled(page: Any, cell_id: str, state: str | None = None) -> Any:
    """The sidebar entry of a request once it is not running (and in `state`, if given)."""
    page.wait_for_function(
        """([id, state]) => {
          const li = document.querySelector(`li.jp-codeflow-entry[data-cell-id="${id}"]`);
          if (!li || li.dataset.state === 'running') return false;
          return state === null || li.dataset.state === state;
        }""",
        arg=[cell_id, state],
        timeout=RUN_MS,
    )
    return page.locator(f'#jp-codeflow-sidebar li.jp-codeflow-entry[data-cell-id="{cell_id}"]')


def type_into(page: Any, cell_id: str, text: str) -> str:
    """Type at the end of a cell from the keyboard, as a user does; returns the new source."""
    index = index_of(page, cell_id)
    page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.scrollToItem(i, 'center')", index
    )
    editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)
    page.keyboard.press("Escape")  # back to command mode: the edit is in the model
    source = str(cell_by_id(page, cell_id)["source"])
    assert text.strip() in source, source
    return source


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_model_server(tmp_path_factory.mktemp("trustmodel"), RULES) as url:
        yield url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("trustlab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in SOURCES]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "trust.ipynb")
    with jupyter_lab(root, server, root.parent / f"{root.name}-lab.log") as lab:
        yield {**lab, "ids": [c.id for c in nb.cells]}


@contextmanager
def opened(browser: Any, lab: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Notebook `name` open, codeflow loaded (its first cell) and the sidebar connected:
    `page`, `console` and the lab's fields."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    state = {"page": page, "console": console, **lab}
    try:
        with on_failure(state, "setup"):
            page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=RUN_MS)
            page.wait_for_function(KERNEL_READY_JS, timeout=RUN_MS)
            page.locator(
                '.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="jp-codeflow-sidebar"]'
            ).click()
            sidebar = page.locator("#jp-codeflow-sidebar")
            sidebar.wait_for(state="visible")
            run_cell(page, lab["ids"][LOAD])
            no_news = page.get_by_role("button", name="No", exact=True)
            if no_news.count():
                no_news.first.click()
            sidebar.locator(".jp-codeflow-link.jp-mod-connected").wait_for(timeout=RUN_MS)
        yield state
    finally:
        context.close()


@pytest.fixture(scope="module")
def nb(browser: Any, lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The notebook open with codeflow loaded, the set-up cell run and the sidebar showing."""
    with opened(browser, lab, "trust.ipynb") as state:
        with on_failure(state, "setup"):
            run_cell(state["page"], lab["ids"][SETUP])
        yield state


@contextmanager
def on_failure(nb: dict[str, Any], name: str) -> Iterator[None]:
    """On a failure: a screenshot, the browser console and the end of the lab's log."""
    try:
        yield
    except BaseException:
        shot(nb["page"], f"failure-{name}")
        print("\n".join(nb["console"][-50:]))
        print(Path(nb["log"]).read_text()[-6000:])
        raise


def test_review_runs_nothing_then_run_runs_the_edited_code(nb: dict[str, Any]) -> None:
    page = nb["page"]
    with on_failure(nb, "review_runs_nothing_then_run_runs_the_edited_code"):
        request_id = nb["ids"][REVIEW_REQ]
        run_cell(page, request_id)
        entry = settled(page, request_id, "awaiting-review")
        assert entry.locator(".jp-codeflow-badge").inner_text() == "awaiting review"

        # The code is in the linked cell, marked pending, and nothing ran.
        linked = linked_cells(page, request_id)
        assert len(linked) == 1, cells(page)
        assert linked[0]["source"].rstrip("\n") == REVIEWED.rstrip("\n")
        assert linked[0]["codeflow"]["review"] == "pending"
        assert linked[0]["codeflow"]["written_hash"] == source_hash(linked[0]["source"])
        request = cell_by_id(page, request_id)
        assert request["codeflow"]["review"] == "pending"
        assert "ZEBRA-RAN" not in outputs_text(request)
        assert kernel_print(page, "print(review_value)") == "1"
        # The sidebar shows what would run (a new cell: every line is added).
        review_box = entry.locator(".jp-codeflow-review")
        assert "review_value = 7" in review_box.inner_text()
        assert entry.get_by_role("button", name="Undo", exact=False).count() == 0
        shot(page, "01-awaiting-review")

        # Edit the pending code, then Run: the edited code is what runs, with no question asked.
        edited = type_into(page, linked[0]["id"], "\nreview_value = review_value + 1")
        before = cell_by_id(page, request_id)["count"]
        entry.get_by_role("button", name="Run the reviewed code of:", exact=False).click()
        wait_ran(page, request_id, before)
        entry = settled(page, request_id, "succeeded")
        assert page.locator(".jp-Dialog").count() == 0
        request = cell_by_id(page, request_id)
        assert "ZEBRA-RAN" in outputs_text(request)
        assert request["codeflow"]["review"] == "approved"
        assert kernel_print(page, "print(review_value)") == "8"
        after = linked_cells(page, request_id)
        assert [c["id"] for c in after] == [linked[0]["id"]]
        assert after[0]["source"].rstrip("\n") == edited.rstrip("\n")
        assert after[0]["codeflow"]["written_hash"] == source_hash(after[0]["source"])
        shot(page, "02-approved")


def test_undo_restores_the_variable_and_the_cell(nb: dict[str, Any]) -> None:
    page = nb["page"]
    with on_failure(nb, "undo_restores_the_variable_and_the_cell"):
        request_id = nb["ids"][REVIEW_REQ]
        entry = settled(page, request_id, "succeeded")
        entry.get_by_role("button", name="Undo the last run of:", exact=False).click()
        page.wait_for_function(
            """(id) => {
              const li = document.querySelector(`li.jp-codeflow-entry[data-cell-id="${id}"]`);
              return li && (li.dataset.undone === 'true'
                    || !!li.querySelector('.jp-codeflow-undo.jp-mod-error'));
            }""",
            arg=request_id,
            timeout=RUN_MS,
        )
        status = entry.locator(".jp-codeflow-undo").inner_text()
        assert entry.get_attribute("data-undone") == "true", status
        assert "Undo failed" not in status, status
        assert "undone" in entry.locator(".jp-codeflow-entry-meta").inner_text()
        assert entry.get_by_role("button", name="Undo the last run of:", exact=False).count() == 0
        # The kernel: review_value as before the request; the notebook: the cell the review
        # created is gone, the request records the undo.
        assert kernel_print(page, "print(review_value)") == "1"
        assert linked_cells(page, request_id) == []
        request = cell_by_id(page, request_id)
        assert request["codeflow"]["undone"] is True
        assert request["codeflow"]["linked_cell_id"] is None
        shot(page, "03-undone")


def test_discard_runs_nothing_and_removes_the_pending_code(nb: dict[str, Any]) -> None:
    page = nb["page"]
    with on_failure(nb, "discard_runs_nothing_and_removes_the_pending_code"):
        request_id = nb["ids"][DISCARD_REQ]
        count = len(cells(page))
        run_cell(page, request_id)
        entry = settled(page, request_id, "awaiting-review")
        assert len(linked_cells(page, request_id)) == 1
        assert len(cells(page)) == count + 1
        entry.get_by_role("button", name="Discard the code awaiting review", exact=False).click()
        entry = settled(page, request_id, "discarded")
        assert linked_cells(page, request_id) == []
        assert len(cells(page)) == count
        request = cell_by_id(page, request_id)
        assert request["codeflow"]["review"] == "discarded"
        assert "WALRUS-RAN" not in outputs_text(request)
        assert kernel_print(page, "print('discard_value' in globals())") == "False"
        assert entry.get_by_role("button", name="Run the reviewed code", exact=False).count() == 0
        shot(page, "04-discarded")


def test_rerun_never_loses_an_edit(nb: dict[str, Any]) -> None:
    page = nb["page"]
    with on_failure(nb, "rerun_never_loses_an_edit"):
        request_id = nb["ids"][EDIT_REQ]
        run_cell(page, request_id)
        entry = settled(page, request_id, "succeeded")
        first = linked_cells(page, request_id)
        assert len(first) == 1 and first[0]["source"].rstrip("\n") == EDITABLE.rstrip("\n")
        user_id = first[0]["id"]
        edited = type_into(page, user_id, "\n# my own note")

        # Re-run: the write-back would replace the edit, so the question comes up.
        before = cell_by_id(page, request_id)["count"]
        entry.get_by_role("button", name="Re-run request:", exact=False).click()
        wait_ran(page, request_id, before)
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=RUN_MS)
        assert "edited" in dialog.inner_text()
        shot(page, "05-question")
        dialog.locator(".jp-Dialog-button", has_text="Insert below").click()
        dialog.wait_for(state="detached")
        page.wait_for_function(
            """([id, user]) => {
              const model = window.jupyterapp.shell.currentWidget.content.model;
              for (let i = 0; i < model.cells.length; i++) {
                const m = model.cells.get(i).getMetadata('codeflow');
                if (m && m.generated_from === id) return model.cells.get(i).id !== user;
              }
              return false;
            }""",
            arg=[request_id, user_id],
            timeout=30_000,
        )
        # The user's cell is untouched and no longer linked; the new code sits right below it.
        ids = [c["id"] for c in cells(page)]
        mine = cell_by_id(page, user_id)
        assert mine["source"] == edited
        assert not (mine["codeflow"] or {}).get("generated_from")
        linked = linked_cells(page, request_id)
        assert len(linked) == 1
        assert ids.index(linked[0]["id"]) == ids.index(user_id) + 1
        assert linked[0]["source"].rstrip("\n") == EDITABLE.rstrip("\n")
        assert cell_by_id(page, request_id)["codeflow"]["linked_cell_id"] == linked[0]["id"]
        shot(page, "06-inserted-below")

        # Edit the new linked cell too, Re-run, and keep it: nothing in the notebook moves.
        second = type_into(page, linked[0]["id"], "\n# second note")
        count = len(cells(page))
        before = cell_by_id(page, request_id)["count"]
        entry.get_by_role("button", name="Re-run request:", exact=False).click()
        wait_ran(page, request_id, before)
        dialog.wait_for(timeout=RUN_MS)
        dialog.locator(".jp-Dialog-button", has_text="Keep mine").click()
        dialog.wait_for(state="detached")
        settled(page, request_id, "succeeded")
        assert len(cells(page)) == count
        assert cell_by_id(page, linked[0]["id"])["source"] == second
        assert cell_by_id(page, user_id)["source"] == edited
        assert [c["id"] for c in linked_cells(page, request_id)] == [linked[0]["id"]]

        # Restore from the sidebar asks too; "Replace" writes the attempt's code over the edit
        # and records its hash (the cell is no longer edited).
        toggle = entry.locator("button.jp-codeflow-toggle")
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        entry.get_by_role("button", name="Restore the code of attempt 1").click()
        dialog.wait_for(timeout=30_000)
        assert "Restoring this attempt" in dialog.inner_text()
        dialog.locator(".jp-Dialog-button", has_text="Replace").click()
        dialog.wait_for(state="detached")
        page.wait_for_function(
            """([id, code]) => {
              const model = window.jupyterapp.shell.currentWidget.content.model;
              for (let i = 0; i < model.cells.length; i++) {
                const c = model.cells.get(i);
                if (c.id === id) return c.sharedModel.getSource().trimEnd() === code;
              }
              return false;
            }""",
            arg=[linked[0]["id"], EDITABLE.rstrip()],
            timeout=30_000,
        )
        restored = cell_by_id(page, linked[0]["id"])
        assert restored["codeflow"]["written_hash"] == source_hash(restored["source"])
        assert restored["codeflow"]["generated_from"] == request_id
        shot(page, "07-restored")
