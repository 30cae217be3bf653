"""The labextension in a real JupyterLab and a real chromium.

One scripted model (a loopback server speaking the Anthropic Messages API) answers the first
request with code that raises NameError and the fix request with working code. The test
drives JupyterLab like a user: run `%load_ext`, run the `%%codeflow` cell, then checks the
sidebar (two attempts, success, history with the error and a diff), the output renderer, the
write-back (linked cell with metadata) and restore of attempt 1 into the linked cell.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from needs import REPO_ROOT, need

from codeflow_magic.notebook import REQUEST_METADATA_KEYS, source_hash

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUILT = REPO_ROOT / "codeflow_magic" / "labextension"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
BIN = Path(sys.executable).parent
STARTUP_S = 120
RUN_MS = 180_000

BROKEN = "print(undefined_name)\n"
FIXED = "undefined_name = 42\nprint(undefined_name)\n"
IMPROVED = "undefined_name = 6 * 7\nprint(undefined_name)\n"
RULES = [
    {"contains": "Improve it.", "text": f"Computed.\n\n```python\n{IMPROVED}```"},
    {"contains": "NameError", "text": f"The name was never defined.\n\n```python\n{FIXED}```"},
    {"contains": "undefined_name", "text": f"```python\n{BROKEN}```"},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def extension_listed() -> bool:
    done = subprocess.run(
        [str(BIN / "jupyter"), "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = done.stdout + done.stderr
    return any(
        "codeflow-labextension" in line and "enabled" in line and "OK" in line
        for line in text.splitlines()
    )


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, once the built extension is listed enabled."""
    need(CHROMIUM.exists(), "chromium is not installed (/usr/bin/chromium)")
    need((BUILT / "package.json").exists(), "the labextension is not built (jlpm build:prod)")
    need(extension_listed(), "JupyterLab does not list codeflow-labextension as enabled OK")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "python playwright is not installed")
        raise
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def scripted_model_server(folder: Path, rules: list[dict[str, Any]]) -> Iterator[str]:
    """The loopback model server in its own process (the lab's kernels reach it by URL)."""
    (folder / "rules.json").write_text(json.dumps(rules), encoding="utf-8")
    port_file = folder / "url.txt"
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "modelserver.py"),
            "--port",
            "0",
            "--rules",
            str(folder / "rules.json"),
            "--port-file",
            str(port_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_file.exists() or proc.poll() is not None, STARTUP_S, "model server")
        assert proc.poll() is None, (folder / "server.log").read_text()
        yield port_file.read_text(encoding="utf-8").strip()
    finally:
        stop(proc)
        log.close()


@contextmanager
def jupyter_lab(root: Path, model_url: str, log_path: Path) -> Iterator[dict[str, Any]]:
    """JupyterLab serving `root` with the codeflow extension, its kernels pointed at the
    model server; yields `base`, `token`, `root` and `log`."""
    port = free_port()
    token = uuid.uuid4().hex
    env = dict(os.environ)
    env.update(
        ANTHROPIC_BASE_URL=model_url,
        ANTHROPIC_API_KEY="test",
        CODEFLOW_CACHE="off",
        JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(root / ".jupyter-runtime"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
    env.pop("CODEFLOW_OVERRIDES", None)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "jupyter-lab"),
            "--allow-root",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={root / '.workspaces'}",
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError("jupyter-lab exited:\n" + log_path.read_text())
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, STARTUP_S, "jupyter-lab")
        yield {"base": base, "token": token, "root": root, "log": log_path}
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_model_server(tmp_path_factory.mktemp("modelserver"), RULES) as url:
        yield url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, model_server: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("labroot")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext codeflow_magic"),
        nbformat.v4.new_code_cell("%%codeflow\nprint the value of undefined_name"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "flow.ipynb")
    request_id = nb.cells[1].id

    with jupyter_lab(root, model_server, root.parent / f"{root.name}-lab.log") as lab:
        yield {**lab, "request_id": request_id}


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


# Read state through the app JupyterLab exposes (`expose_app_in_browser`).
NOTEBOOK_JS = "() => window.jupyterapp.shell.currentWidget"
KERNEL_READY_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""
CELLS_JS = """() => {
  const model = window.jupyterapp.shell.currentWidget.content.model;
  const out = [];
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    out.push({
      id: c.id,
      type: c.type,
      source: c.sharedModel.getSource(),
      codeflow: c.getMetadata('codeflow') || null,
      outputs: c.type === 'code' ? c.outputs.toJSON() : [],
      count: c.type === 'code' ? c.executionCount : null
    });
  }
  return out;
}"""


def cells(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(CELLS_JS))


def run_cell(page: Any, index: int) -> None:
    """Run one cell from the keyboard (Ctrl+Enter, no advance) and wait until it finished."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        """(i) => {
          const c = window.jupyterapp.shell.currentWidget.content.model.cells.get(i);
          const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
          return c.executionCount !== null && k.status === 'idle';
        }""",
        arg=index,
        timeout=RUN_MS,
    )


def test_sidebar_renderer_writeback_and_restore(
    playwright_browser: Any, lab: dict[str, Any]
) -> None:
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    context = playwright_browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    request_id = lab["request_id"]
    try:
        page.goto(f"{lab['base']}/lab/tree/flow.ipynb?reset&token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=RUN_MS)
        page.wait_for_function(KERNEL_READY_JS, timeout=RUN_MS)

        # Open the sidebar from its tab in the right side bar (icon + label).
        tab = page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="jp-codeflow-sidebar"]')
        tab.click()
        sidebar = page.locator("#jp-codeflow-sidebar")
        sidebar.wait_for(state="visible")
        entry = sidebar.locator(f'li.jp-codeflow-entry[data-cell-id="{request_id}"]')
        entry.wait_for()
        assert entry.get_attribute("data-state") == "idle"
        assert "kernel not linked" in sidebar.locator(".jp-codeflow-link").inner_text()

        run_cell(page, 0)
        # The kernel opened the comm; our hello is processed once that cell is done.
        sidebar.locator(".jp-codeflow-link.jp-mod-connected").wait_for(timeout=RUN_MS)
        shot(page, "01-loaded")

        run_cell(page, 1)
        page.wait_for_function(
            """(id) => {
              const li = document.querySelector(`li.jp-codeflow-entry[data-cell-id="${id}"]`);
              return li && li.dataset.state !== 'running' && li.dataset.state !== 'idle';
            }""",
            arg=request_id,
            timeout=RUN_MS,
        )
        shot(page, "02-ran")
        state = entry.get_attribute("data-state")
        if state != "succeeded":
            raise AssertionError(
                f"request ended {state}; cells: {json.dumps(cells(page))[:4000]}\n"
                + "\n".join(console[-30:])
            )
        assert entry.get_attribute("data-attempts") == "2"
        meta_line = entry.locator(".jp-codeflow-entry-meta").inner_text()
        assert "2 attempts" in meta_line and "fixed a runtime error" in meta_line, meta_line

        # Write-back: one linked code cell right below the request, with both metadata blobs.
        nb_cells = cells(page)
        request = next(c for c in nb_cells if c["id"] == request_id)
        index = nb_cells.index(request)
        linked = [c for c in nb_cells if (c["codeflow"] or {}).get("generated_from") == request_id]
        assert len(linked) == 1, nb_cells
        assert nb_cells[index + 1]["id"] == linked[0]["id"]
        assert "undefined_name = 42" in linked[0]["source"]
        # One metadata shape, the same keys the kernel's notebook module writes.
        meta = request["codeflow"]
        assert set(meta) == set(REQUEST_METADATA_KEYS), meta
        assert meta["success"] is True and meta["linked_cell_id"] == linked[0]["id"]
        assert meta["attempts"] == 2
        assert [(h["kind"], h["success"], h["ename"]) for h in meta["history"]] == [
            ("generate", False, "NameError"),
            ("fix", True, None),
        ]
        record = next(
            o["data"]["application/vnd.codeflow.run+json"]
            for o in request["outputs"]
            if "application/vnd.codeflow.run+json" in o.get("data", {})
        )
        assert [a["success"] for a in record["attempts"]] == [False, True]
        assert record["attempts"][0]["error"]["ename"] == "NameError"
        assert meta["run_id"] == record["run_id"]
        assert linked[0]["codeflow"] == {
            "generated_from": request_id,
            "run_id": record["run_id"],
            "written_hash": source_hash(linked[0]["source"]),
            "review": None,
        }

        # The output renderer: status line, history folded until opened.
        rendered = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-codeflow-record")
        rendered.wait_for()
        assert "succeeded" in rendered.locator(".jp-codeflow-status").inner_text()
        # The status line shows once: the record renders it, no other output repeats it.
        output_area = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")
        assert output_area.inner_text().count("succeeded") == 1, output_area.inner_text()
        details = rendered.locator("details.jp-codeflow-history")
        assert details.get_attribute("open") is None
        details.locator("summary").click()
        assert details.get_attribute("open") is not None
        assert rendered.locator(".jp-codeflow-attempt").count() == 2
        assert "NameError" in rendered.locator(".jp-codeflow-attempt").nth(0).inner_text()

        # Expand from the keyboard: the toggle is a real, focusable button.
        toggle = entry.locator("button.jp-codeflow-toggle")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.focus()
        page.keyboard.press("Enter")
        attempts = entry.locator(".jp-codeflow-attempt")
        attempts.nth(1).wait_for()
        assert toggle.get_attribute("aria-expanded") == "true"
        assert attempts.count() == 2
        first = attempts.nth(0).inner_text()
        assert "Attempt 1" in first and "NameError" in first and "runtime" in first
        second = attempts.nth(1)
        assert second.locator(".jp-codeflow-diff-add").count() >= 1
        assert "never defined" in second.inner_text()
        # Nothing overflows sideways in the sidebar.
        overflow = sidebar.evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 1, overflow
        shot(page, "03-expanded")

        # Restore attempt 1 into the linked cell: same cell, no duplicate.
        restore = entry.get_by_role("button", name="Restore the code of attempt 1")
        restore.click()
        page.wait_for_function(
            """([id, code]) => {
              const model = window.jupyterapp.shell.currentWidget.content.model;
              for (let i = 0; i < model.cells.length; i++) {
                const c = model.cells.get(i);
                const m = c.getMetadata('codeflow');
                if (m && m.generated_from === id) return c.sharedModel.getSource() === code;
              }
              return false;
            }""",
            arg=[request_id, record["attempts"][0]["code"]],
            timeout=30_000,
        )
        after = cells(page)
        relinked = [c for c in after if (c["codeflow"] or {}).get("generated_from") == request_id]
        assert [c["id"] for c in relinked] == [linked[0]["id"]]
        # Same shape after a restore; the hash is of the restored code (it is not an edit).
        assert relinked[0]["codeflow"] == {
            **linked[0]["codeflow"],
            "written_hash": source_hash(record["attempts"][0]["code"]),
        }
        assert len(after) == len(nb_cells)
        shot(page, "04-restored")

        # "Improve: optimize" in the sidebar re-runs the request with that focus.
        entry.get_by_role("button", name="Improve (optimize) request:", exact=False).click()
        page.wait_for_function(
            """(id) => {
              const model = window.jupyterapp.shell.currentWidget.content.model;
              const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              for (let i = 0; i < model.cells.length; i++) {
                const c = model.cells.get(i);
                if (c.id !== id) continue;
                const recs = c.outputs.toJSON()
                  .map(o => (o.data || {})['application/vnd.codeflow.run+json'])
                  .filter(Boolean);
                const rec = recs[recs.length - 1];
                return !!rec && rec.focus === 'optimize' && k.status === 'idle';
              }
              return false;
            }""",
            arg=request_id,
            timeout=RUN_MS,
        )
        improved_cells = cells(page)
        improved = next(c for c in improved_cells if c["id"] == request_id)
        rec = next(
            o["data"]["application/vnd.codeflow.run+json"]
            for o in improved["outputs"]
            if "application/vnd.codeflow.run+json" in o.get("data", {})
        )
        assert rec["attempts"][-1]["kind"] == "improve", rec["attempts"]
        assert rec["attempts"][-1]["code"] == IMPROVED
        assert len(improved_cells) == len(nb_cells)  # the linked cell is updated in place
        shot(page, "05-improved")
    except Exception:
        shot(page, "failure")
        print("\n".join(console[-50:]))
        print(Path(lab["log"]).read_text()[-6000:])
        raise
    finally:
        context.close()
