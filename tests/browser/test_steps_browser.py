"""`%%codeflow --steps` (issue 15) clicked through in a real JupyterLab and chromium.

The scripted model server answers the request with a plan of three steps. After the request
cell runs, the extension has written a markdown and a code cell per step right below it, the
code cells with their outputs; the sidebar lists the three steps as ok and a click on a step
goes to its code cell. Running the request again replaces those cells instead of adding a
second set.
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
    RUN_MS,
    chromium_browser,
    jupyter_lab,
    scripted_model_server,
)
from test_trust_browser import cell_by_id, cells, index_of, opened, run_cell, settled

from codeflow_magic.notebook import source_hash

pytestmark = pytest.mark.browser

REQUEST = "square the plan numbers and add them up"
VALUES = [3, 4, 5]
# (title, prose, code, what the code prints): each step prints a marker built at run time, so
# finding it in an output means the step ran (the code itself never contains it).
STEPS = [
    (
        "Make the numbers",
        "The numbers to start from.",
        f'plan_values = {VALUES!r}\nprint("MADE" + "-", len(plan_values))',
        f"MADE- {len(VALUES)}",
    ),
    (
        "Square them",
        "Each number times itself.",
        'plan_squares = [v * v for v in plan_values]\nprint("SQUARES" + "-", plan_squares)',
        f"SQUARES- {[v * v for v in VALUES]}",
    ),
    (
        "Add them up",
        "The total of the squares.",
        'print("TOTAL" + "-", sum(plan_squares))',
        f"TOTAL- {sum(v * v for v in VALUES)}",
    ),
]
PLAN = "".join(
    f"## {title}\n{prose}\n```python\n{code}\n```\n\n" for title, prose, code, _ in STEPS
)
RULES = [{"contains": f"Request:\n{REQUEST}", "text": PLAN}]
SOURCES = ["%load_ext codeflow_magic", f"%%codeflow --steps\n{REQUEST}", "# after the request"]
LOAD, STEPS_REQ, AFTER = range(3)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"steps-{name}.png"), full_page=False)


def plan_cells(page: Any, request_id: str) -> list[dict[str, Any]]:
    return [c for c in cells(page) if (c["codeflow"] or {}).get("plan_of") == request_id]


def wait_plan_written(page: Any, request_id: str, run_before: str | None) -> None:
    """Until the request's metadata names a new plan run (the plan write-back landed)."""
    page.wait_for_function(
        """([id, before]) => {
          const model = window.jupyterapp.shell.currentWidget.content.model;
          for (let i = 0; i < model.cells.length; i++) {
            const c = model.cells.get(i);
            if (c.id !== id) continue;
            const m = c.getMetadata('codeflow');
            return !!m && Array.isArray(m.steps) && m.run_id !== before;
          }
          return false;
        }""",
        arg=[request_id, run_before],
        timeout=RUN_MS,
    )


def step_items(entry: Any) -> Any:
    return entry.locator("li.jp-codeflow-step")


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_model_server(tmp_path_factory.mktemp("stepsmodel"), RULES) as url:
        yield url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("stepslab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in SOURCES[:AFTER]]
    nb.cells.append(nbformat.v4.new_markdown_cell(SOURCES[AFTER]))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "steps.ipynb")
    with jupyter_lab(root, server, root.parent / f"{root.name}-lab.log") as lab:
        yield {**lab, "ids": [c.id for c in nb.cells]}


@pytest.fixture(scope="module")
def nb(browser: Any, lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The notebook open with codeflow loaded and the sidebar showing: `page`, `ids`."""
    with opened(browser, lab, "steps.ipynb") as state:
        yield state


def check_plan_below_request(page: Any, request_id: str, after_id: str) -> list[str]:
    """The step cells sit right below the request, in order, with their outputs; returns
    their ids."""
    all_cells = cells(page)
    ids = [c["id"] for c in all_cells]
    block = plan_cells(page, request_id)
    assert len(block) == 2 * len(STEPS), json.dumps(all_cells, indent=1)[-4000:]
    start = ids.index(request_id) + 1
    assert [c["id"] for c in block] == ids[start : start + len(block)]
    assert ids.index(after_id) == start + len(block)
    for number, (title, prose, code, printed) in enumerate(STEPS, start=1):
        markdown, code_cell = block[2 * number - 2], block[2 * number - 1]
        assert markdown["type"] == "markdown"
        assert title in markdown["source"] and prose in markdown["source"]
        assert markdown["codeflow"]["step"] == number
        assert code_cell["type"] == "code"
        assert code_cell["source"].rstrip("\n") == code
        meta = code_cell["codeflow"]
        assert (meta["step"], meta["role"], meta["state"]) == (number, "code", "ok")
        assert meta["written_hash"] == source_hash(code_cell["source"])
        assert printed in json.dumps(code_cell["outputs"]), code_cell["outputs"]
    request = cell_by_id(page, request_id)["codeflow"]
    assert [(s["number"], s["title"], s["state"]) for s in request["steps"]] == [
        (number, title, "ok") for number, (title, *_) in enumerate(STEPS, start=1)
    ]
    return [c["id"] for c in block]


def check_sidebar_steps(entry: Any) -> None:
    items = step_items(entry)
    items.first.wait_for(timeout=RUN_MS)
    assert items.count() == len(STEPS)
    for i, (title, *_) in enumerate(STEPS):
        item = items.nth(i)
        assert item.get_attribute("data-state") == "ok"
        assert item.get_attribute("data-step") == str(i + 1)
        assert title in item.inner_text() and "ok" in item.inner_text()
        assert item.get_attribute("aria-current") is None


def test_steps_are_written_below_the_request_and_listed_in_the_sidebar(
    nb: dict[str, Any],
) -> None:
    page = nb["page"]
    with on_failure(nb, "steps_written"):
        request_id, after_id = nb["ids"][STEPS_REQ], nb["ids"][AFTER]
        run_cell(page, request_id)
        wait_plan_written(page, request_id, None)
        entry = settled(page, request_id, "succeeded")
        block = check_plan_below_request(page, request_id, after_id)
        check_sidebar_steps(entry)
        assert f"{len(STEPS)} steps" in entry.locator(".jp-codeflow-entry-meta").inner_text()
        shot(page, "01-written")

        # A click on a step goes to its code cell.
        step_items(entry).nth(1).locator("button").click()
        page.wait_for_function(
            "(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i",
            arg=index_of(page, block[3]),
            timeout=30_000,
        )
        nb["first_block"] = block


def test_running_the_request_again_replaces_the_steps(nb: dict[str, Any]) -> None:
    page = nb["page"]
    with on_failure(nb, "steps_rerun"):
        request_id, after_id = nb["ids"][STEPS_REQ], nb["ids"][AFTER]
        count = len(cells(page))
        run_before = cell_by_id(page, request_id)["codeflow"]["run_id"]
        run_cell(page, request_id)
        wait_plan_written(page, request_id, run_before)
        entry = settled(page, request_id, "succeeded")
        block = check_plan_below_request(page, request_id, after_id)
        assert len(cells(page)) == count
        # New cells in place of the old ones (none of the first run's is left).
        assert not set(block) & set(nb.get("first_block", []))
        check_sidebar_steps(entry)
        shot(page, "02-rerun")
