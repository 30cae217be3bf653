"""The notebook walk-through of issue 16, replayed in a real JupyterLab and chromium.

One notebook holds a request that fails then gets fixed (a deep traceback), one the model
cannot answer (the scripted server says 529 until the SDK gives up), `%%codeflow?`, a cell
refused for a bad option, a request for the sandbox backend, and a slow request that is
interrupted. The tests run in file order on one page: each checks one defect of the issue
as a user would meet it, and the last one reloads the page after Clear Outputs + save.
Screenshots of the light and dark themes go to test-artifacts/browser/. The last tests
need no browser: the defects they cover are in the kernel and the command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from needs import REPO_ROOT
from test_lab_browser import (
    ARTIFACTS,
    CELLS_JS,
    KERNEL_READY_JS,
    RUN_MS,
    chromium_browser,
    jupyter_lab,
    scripted_model_server,
    wait_for,
)

from codeflow_magic.executors import BACKENDS

browser_test = pytest.mark.browser

BROKEN = "def depth(n):\n    return depth(n - 1) if n else undefined_name\nprint(depth(12))\n"
FIXED = "undefined_name = 42\nprint(undefined_name)\n"
SLOW = "print('counted')\n"
SANDBOXED = "import os\nprint(sum(range(11)), os.getuid())\n"
# Most specific first: a prompt also carries the cells above it.
RULES = [
    {"contains": "slow counter", "text": f"```python\n{SLOW}```", "times": 1},
    {"contains": "slow counter", "text": f"```python\n{SLOW}```", "latency": 90},
    {"contains": "in the sandbox", "text": f"```python\n{SANDBOXED}```"},
    {"contains": "unreachable thing", "status": 529},
    {"contains": "NameError", "text": f"The name was never defined.\n\n```python\n{FIXED}```"},
    {"contains": "undefined_name", "text": f"```python\n{BROKEN}```"},
]

LOAD, FIXED_REQ, UNREACHABLE, HELP, REFUSED, SANDBOX, SLOW_REQ = range(7)
SOURCES = [
    "%load_ext codeflow_magic",
    "%%codeflow\nprint the value of undefined_name",
    "%%codeflow\nexplain the unreachable thing",
    "%%codeflow?",
    "%%codeflow --no-such-option\nprint one",
    "%%codeflow --backend sandbox\nsum the numbers 0 to 10 in the sandbox",
    "%%codeflow\ncount with the slow counter",
]
RECORD_MIME = "application/vnd.codeflow.run+json"

# WCAG contrast of an element's text against the first opaque background behind it.
CONTRAST_JS = """(el) => {
  const parse = s => {
    const m = s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  let bg = null;
  for (let n = el; n; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c && c.a > 0.99) { bg = c; break; }
  }
  bg = bg || { r: 255, g: 255, b: 255, a: 1 };
  const fg = parse(getComputedStyle(el).color);
  const mix = k => fg[k] * fg.a + bg[k] * (1 - fg.a);
  const lum = c => {
    const ch = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  };
  const a = lum({ r: mix('r'), g: mix('g'), b: mix('b') });
  const b = lum(bg);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"walkthrough-{name}.png"), full_page=False)


def cells(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(CELLS_JS))


def cell_by_id(page: Any, cell_id: str) -> dict[str, Any]:
    """Cells move (write-back inserts code cells below requests): find them by id."""
    return next(c for c in cells(page) if c["id"] == cell_id)


def index_of(page: Any, cell_id: str) -> int:
    return [c["id"] for c in cells(page)].index(cell_id)


def submit(page: Any, cell_id: str) -> None:
    """Select the cell and run it as the Run menu does (the notebook renders only the cells
    in view, so a cell far down may have no editor to click)."""
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


def wait_done(page: Any, cell_id: str, count_before: Any = None) -> None:
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
    before = cell_by_id(page, cell_id)["count"]
    submit(page, cell_id)
    wait_done(page, cell_id, before)


def scroll_to(page: Any, cell_id: str) -> None:
    page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.scrollToItem(i, 'start')",
        index_of(page, cell_id),
    )
    page.wait_for_timeout(300)


def set_theme(page: Any, dark: bool) -> None:
    name = "JupyterLab Dark" if dark else "JupyterLab Light"
    page.evaluate(
        "(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name
    )
    page.wait_for_function(
        "(dark) => document.body.dataset.jpThemeLight === (dark ? 'false' : 'true')",
        arg=dark,
        timeout=30_000,
    )
    page.wait_for_timeout(500)


def record_of(cell: dict[str, Any]) -> dict[str, Any] | None:
    found = None
    for out in cell["outputs"]:
        if RECORD_MIME in out.get("data", {}):
            found = out["data"][RECORD_MIME]
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_model_server(tmp_path_factory.mktemp("walkmodel"), RULES) as url:
        yield url


@pytest.fixture(scope="module")
def lab(server: str) -> Iterator[dict[str, Any]]:
    # The sandbox runs code as an unprivileged uid in the notebook's folder: it must reach
    # it (pytest's own temporary folders are private to root).
    root = Path(tempfile.mkdtemp(prefix="codeflow-walk-"))
    root.chmod(0o777)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in SOURCES]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "walk.ipynb")
    try:
        with jupyter_lab(root, server, root / "lab.log") as lab:
            yield {**lab, "ids": [c.id for c in nb.cells]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def walk(browser: Any, lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The page after every cell ran once (the slow request quickly, the first time)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    state = {"page": page, "console": console, **lab}
    try:
        page.goto(f"{lab['base']}/lab/tree/walk.ipynb?reset&token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=RUN_MS)
        page.wait_for_function(KERNEL_READY_JS, timeout=RUN_MS)
        page.locator(
            '.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="jp-codeflow-sidebar"]'
        ).click()
        sidebar = page.locator("#jp-codeflow-sidebar")
        sidebar.wait_for(state="visible")
        ids = lab["ids"]
        run_cell(page, ids[LOAD])
        # JupyterLab's news question would cover the sidebar in the screenshots.
        no_news = page.get_by_role("button", name="No", exact=True)
        if no_news.count():
            no_news.first.click()
        sidebar.locator(".jp-codeflow-link.jp-mod-connected").wait_for(timeout=RUN_MS)
        for index in (FIXED_REQ, UNREACHABLE, HELP, REFUSED, SANDBOX, SLOW_REQ):
            run_cell(page, ids[index])
        yield state
    except Exception:
        shot(page, "failure-setup")
        print("\n".join(console[-50:]))
        print(Path(lab["log"]).read_text()[-6000:])
        raise
    finally:
        context.close()


def entry_of(walk: dict[str, Any], index: int) -> Any:
    cell_id = walk["ids"][index]
    return walk["page"].locator(
        f'#jp-codeflow-sidebar li.jp-codeflow-entry[data-cell-id="{cell_id}"]'
    )


def settled(walk: dict[str, Any], index: int) -> Any:
    entry = entry_of(walk, index)
    walk["page"].wait_for_function(
        """(id) => {
          const li = document.querySelector(`li.jp-codeflow-entry[data-cell-id="${id}"]`);
          return li && li.dataset.state !== 'running';
        }""",
        arg=walk["ids"][index],
        timeout=RUN_MS,
    )
    return entry


@browser_test
def test_unreachable_model_shows_failed_with_its_cause(walk: dict[str, Any]) -> None:
    """Medium 1 (and 7): failed, not idle; the cause in the sidebar; not a UsageError."""
    page = walk["page"]
    entry = settled(walk, UNREACHABLE)
    assert entry.get_attribute("data-state") == "failed"
    meta = entry.locator(".jp-codeflow-entry-meta").inner_text()
    assert "model unavailable" in meta and "529" in meta, meta
    cell = cell_by_id(page, walk["ids"][UNREACHABLE])
    errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["ProviderUnavailable"], cell["outputs"]
    assert "unavailable" in errors[0]["evalue"]
    record = record_of(cell)
    assert record is not None and record["stop_reason"] == "provider_unavailable"
    # Improve needs a working result: offered on the fixed request, not on this one.
    assert entry.get_by_role("button", name="Improve", exact=False).count() == 0
    fixed = settled(walk, FIXED_REQ)
    assert fixed.get_by_role("button", name="Improve", exact=False).count() == 2
    scroll_to(page, walk["ids"][UNREACHABLE])
    shot(page, "light-failed")
    set_theme(page, dark=True)
    shot(page, "dark-failed")
    set_theme(page, dark=False)


@browser_test
def test_failed_request_records_metadata(walk: dict[str, Any]) -> None:
    """Medium 2, first half: a failed run writes `metadata.codeflow` like a succeeded one."""
    meta = cell_by_id(walk["page"], walk["ids"][UNREACHABLE])["codeflow"]
    assert meta is not None
    assert meta["success"] is False and meta["attempts"] == 0 and meta["history"] == []
    assert meta["request"] == "explain the unreachable thing"
    assert "unavailable" in meta["error"]


@browser_test
def test_every_backend_from_the_magic_and_the_settings(walk: dict[str, Any]) -> None:
    """Medium 3: `--backend sandbox` runs (in bubblewrap); the settings offer the same
    backends and the same attempt bound as the magic."""
    from codeflow_magic.config import SECTIONS

    page = walk["page"]
    entry = settled(walk, SANDBOX)
    cell = cell_by_id(page, walk["ids"][SANDBOX])
    record = record_of(cell)
    assert record is not None, cell["outputs"]
    assert record["backend"] == "sandbox" and record["success"] is True, record
    stdout = "".join(
        "".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream"
    )
    value, uid = stdout.split()[:2]
    assert value == "55" and uid != str(os.getuid())  # not the notebook's own user
    assert entry.get_attribute("data-state") == "succeeded"

    url = f"{walk['base']}/lab/api/settings/codeflow-labextension:plugin?token={walk['token']}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        schema = json.loads(resp.read())["schema"]["properties"]
    assert schema["backend"]["enum"] == ["inline", *[b for b in BACKENDS if b != "inline"]]
    trait = SECTIONS["improvement"].class_traits()["max_attempts"]
    assert (schema["maxAttempts"]["minimum"], schema["maxAttempts"]["maximum"]) == (
        trait.min,
        trait.max,
    )


@browser_test
def test_help_and_refused_cells_are_not_requests(walk: dict[str, Any]) -> None:
    """Low 6: `%%codeflow?` and a cell refused for a bad option are not listed."""
    page = walk["page"]
    settled(walk, FIXED_REQ)
    listed = page.eval_on_selector_all(
        "#jp-codeflow-sidebar li.jp-codeflow-entry", "els => els.map(e => e.dataset.cellId)"
    )
    ids = walk["ids"]
    assert listed == [ids[FIXED_REQ], ids[UNREACHABLE], ids[SANDBOX], ids[SLOW_REQ]], [
        (c["id"], c["source"][:30], c["outputs"]) for c in cells(page) if c["id"] in listed
    ]
    refused = cell_by_id(page, walk["ids"][REFUSED])
    assert [o.get("name") for o in refused["outputs"]] == ["stderr"], refused["outputs"]
    assert "".join(refused["outputs"][0]["text"]).startswith("UsageError: ")
    assert "(empty request)" not in page.locator("#jp-codeflow-sidebar").inner_text()


@browser_test
def test_traceback_box_shows_its_end_and_figures_read_plainly(walk: dict[str, Any]) -> None:
    """Low 9 and 10: the exception line is in view; "fixed a runtime error"; no figure
    breaks across lines at the default sidebar width."""
    page = walk["page"]
    entry = settled(walk, FIXED_REQ)
    assert entry.get_attribute("data-state") == "succeeded"
    parts = entry.locator(".jp-codeflow-entry-meta .jp-codeflow-meta-part")
    texts = parts.all_inner_texts()
    assert "fixed a runtime error" in texts and not any("NameError" in t for t in texts), texts
    broken = page.eval_on_selector_all(
        "#jp-codeflow-sidebar .jp-codeflow-meta-part",
        "els => els.filter(e => e.getClientRects().length > 1).map(e => e.textContent)",
    )
    assert broken == [], broken
    if entry.locator("button.jp-codeflow-toggle").get_attribute("aria-expanded") != "true":
        entry.locator("button.jp-codeflow-toggle").click()
    box = entry.locator(".jp-codeflow-attempt").nth(0).locator("pre.jp-codeflow-traceback")
    box.wait_for()
    geometry = box.evaluate(
        """el => {
          const r = el.getBoundingClientRect();
          const last = el.querySelector('span').getBoundingClientRect();
          return {scroll: el.scrollHeight, client: el.clientHeight,
                  lastBottom: last.bottom, boxBottom: r.bottom, text: el.textContent};
        }"""
    )
    assert geometry["scroll"] > geometry["client"], geometry  # long enough to scroll
    assert abs(geometry["lastBottom"] - geometry["boxBottom"]) < 12, geometry
    assert "NameError" in geometry["text"].strip().splitlines()[-1]
    box.scroll_into_view_if_needed()
    shot(page, "light-traceback")
    set_theme(page, dark=True)
    shot(page, "dark-traceback")
    set_theme(page, dark=False)


@browser_test
def test_progress_is_readable_and_an_interrupt_keeps_history(walk: dict[str, Any]) -> None:
    """Low 5 and 11, in the dark theme: progress text meets AA contrast; an interrupted run
    shows "interrupted" and keeps the previous record."""
    page = walk["page"]
    entry = settled(walk, SLOW_REQ)
    assert entry.get_attribute("data-state") == "succeeded"
    before = entry.get_attribute("data-attempts")
    set_theme(page, dark=True)
    try:
        count = cell_by_id(page, walk["ids"][SLOW_REQ])["count"]
        submit(page, walk["ids"][SLOW_REQ])
        slow_index = index_of(page, walk["ids"][SLOW_REQ])
        progress = (
            page.locator(".jp-Notebook .jp-Cell").nth(slow_index).locator(".jp-codeflow-progress")
        )
        page.wait_for_function(
            """(id) => {
              const w = window.jupyterapp.shell.currentWidget;
              const cells = w.content.model.cells;
              for (let i = 0; i < cells.length; i++) {
                const c = cells.get(i);
                if (c.id === id) return JSON.stringify(c.outputs.toJSON()).includes('asking');
              }
              return false;
            }""",
            arg=walk["ids"][SLOW_REQ],
            timeout=60_000,
        )
        progress.wait_for(timeout=10_000)
        assert "codeflow: asking the model" in progress.inner_text()
        ratio = progress.evaluate(CONTRAST_JS)
        assert ratio >= 4.5, ratio
        assert entry.get_attribute("data-state") == "running"
        shot(page, "dark-progress")
        page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.interrupt()"
        )
        wait_done(page, walk["ids"][SLOW_REQ], count)
        page.wait_for_function(
            """(id) => {
              const li = document.querySelector(`li.jp-codeflow-entry[data-cell-id="${id}"]`);
              return li && li.dataset.state === 'interrupted';
            }""",
            arg=walk["ids"][SLOW_REQ],
            timeout=30_000,
        )
        assert entry.get_attribute("data-attempts") == before
        meta = entry.locator(".jp-codeflow-entry-meta").inner_text()
        assert meta.startswith("interrupted") and "previous run" in meta, meta
        outputs = cell_by_id(page, walk["ids"][SLOW_REQ])["outputs"]
        assert "codeflow: interrupted" in json.dumps(outputs)
        assert not [o for o in outputs if o["output_type"] == "error"], outputs
        # The panel re-renders whole on change: scroll it rather than a (replaced) entry.
        page.evaluate("() => { document.getElementById('jp-codeflow-sidebar').scrollTop = 1e6; }")
        shot(page, "dark-interrupted")
    finally:
        set_theme(page, dark=False)
    shot(page, "light-interrupted")


@browser_test
def test_history_survives_clear_save_reload(walk: dict[str, Any]) -> None:
    """Medium 2 and low 14: after Clear Outputs, save and reload the failed request still
    says failed with its cause, and the reload logs no "Comm not found"."""
    page = walk["page"]
    console = walk["console"]
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = Path(walk["root"]) / "walk.ipynb"
    wait_for(
        lambda: (
            not any(
                c.get("outputs") for c in json.loads(saved.read_text(encoding="utf-8"))["cells"]
            )
        ),
        30,
        "the saved notebook without outputs",
    )
    on_disk = {c.id: c for c in nbformat.read(saved, as_version=4).cells}
    meta = on_disk[walk["ids"][UNREACHABLE]].metadata["codeflow"]
    assert meta["success"] is False and "unavailable" in meta["error"]
    assert on_disk[walk["ids"][FIXED_REQ]].metadata["codeflow"]["success"] is True

    console.clear()
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=RUN_MS)
    page.wait_for_function(KERNEL_READY_JS, timeout=RUN_MS)
    sidebar = page.locator("#jp-codeflow-sidebar")
    if not sidebar.is_visible():
        page.locator(
            '.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="jp-codeflow-sidebar"]'
        ).click()
    # The kernel still has codeflow loaded: the new page links up by itself.
    sidebar.locator(".jp-codeflow-link.jp-mod-connected").wait_for(timeout=60_000)
    failed = entry_of(walk, UNREACHABLE)
    failed.wait_for()
    assert failed.get_attribute("data-state") == "failed"
    assert "model unavailable" in failed.locator(".jp-codeflow-entry-meta").inner_text()
    fixed = entry_of(walk, FIXED_REQ)
    assert fixed.get_attribute("data-state") == "succeeded"
    assert fixed.get_attribute("data-attempts") == "2"
    page.wait_for_timeout(1000)
    assert not [line for line in console if "Comm not found" in line], console
    shot(page, "light-reloaded")
    set_theme(page, dark=True)
    shot(page, "dark-reloaded")
    set_theme(page, dark=False)


# -- the same walk-through, outside the browser ------------------------------------------------


def test_magic_settings_schema_and_link_agree() -> None:
    """Medium 3: one list of backends and one attempt bound for the magic, the Settings
    Editor's schema and the kernel link."""
    from codeflow_magic.config import SECTIONS
    from codeflow_magic.frontend import normalize_settings
    from codeflow_magic.magic import CodeflowMagics

    parser = CodeflowMagics.codeflow_cell.parser
    choices = next(a.choices for a in parser._actions if "--backend" in a.option_strings)
    assert list(choices) == list(BACKENDS)
    schema = json.loads((REPO_ROOT / "labextension" / "schema" / "plugin.json").read_text())
    props = schema["properties"]
    assert set(props["backend"]["enum"]) == set(BACKENDS)
    trait = SECTIONS["improvement"].class_traits()["max_attempts"]
    assert (props["maxAttempts"]["minimum"], props["maxAttempts"]["maximum"]) == (
        trait.min,
        trait.max,
    )
    for backend in BACKENDS:
        assert normalize_settings({"backend": backend})["backend"] == backend
    assert normalize_settings({"max_attempts": trait.max}) == {"max_attempts": trait.max}
    assert normalize_settings({"max_attempts": trait.max + 1}) == {}


@pytest.fixture()
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CODEFLOW_OVERRIDES", raising=False)
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext codeflow_magic", store_history=False)
    try:
        yield sh
    finally:
        sh.run_cell("%unload_ext codeflow_magic", store_history=False)


@pytest.mark.parametrize("env", ["off", "replay", None])
def test_config_and_status_agree_on_the_cache_mode(
    shell: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: str | None
) -> None:
    """Low 12: `%codeflow config` shows the mode runs use, as `%codeflow status` does."""
    if env is None:
        monkeypatch.delenv("CODEFLOW_CACHE", raising=False)
    else:
        monkeypatch.setenv("CODEFLOW_CACHE", env)
    capsys.readouterr()
    shell.run_line_magic("codeflow", "config")
    config = json.loads(capsys.readouterr().out)
    shell.run_line_magic("codeflow", "status")
    status = capsys.readouterr().out
    expected = env or "rw"
    assert config["cache"]["mode"] == expected
    assert f"({expected})" in status.split("cache:", 1)[1].splitlines()[0], status


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CODEFLOW_", "ANTHROPIC_", "OPENAI_"))
    }
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    return env


def test_doctor_says_not_configured_for_a_gateway_nobody_asked_for(tmp_path: Path) -> None:
    """Low 15."""
    done = subprocess.run(
        [sys.executable, "-m", "codeflow_magic.cli", "doctor", "--backend", "gateway"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.split()[:2] == ["gateway", "-"] and "not configured" in first, done.stdout
    assert "FAIL" not in done.stdout and "--gateway-url" in done.stdout


def test_ask_without_a_key_says_so_before_loading_an_sdk_or_a_kernel(tmp_path: Path) -> None:
    """Low 16: the no-key answer comes from the environment alone (no anthropic, httpx or
    jupyter_client import), with the provider's advice, status 3, and the JSON record."""
    from codeflow_magic.providers.anthropic import NO_KEY

    for fmt in ("markdown", "json"):
        done = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "codeflow_magic.cli",
                "ask",
                "add 1 and 2",
                "--no-cache",
                "--format",
                fmt,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(tmp_path),
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 3, done.stderr[-2000:]
        assert NO_KEY in done.stderr
        imported = {
            line.rsplit("|", 1)[1].strip()
            for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }
        heavy = {m for m in imported if m.split(".")[0] in ("anthropic", "httpx", "jupyter_client")}
        assert heavy == set(), sorted(heavy)
        if fmt == "json":
            record = json.loads(done.stdout)
            assert record["stop_reason"] == "provider_error" and record["attempts"] == []
        else:
            assert done.stdout == ""
