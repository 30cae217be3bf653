"""Cost: every front door shows what a run cost by the price table, settings can price other
models, and `improvement.max_cost_usd` stops a run with its own stop reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cliharness import codeflow as run_codeflow
from cliharness import write_notebook
from modelserver import ModelServer

from codeflow_magic.providers.catalogue import PRICES, Price, price_for

pytestmark = pytest.mark.kernel
PY = "```python\n{}\n```"


def cost_of(usage: dict[str, Any], price: Price) -> float:
    """The price of one answer from the usage the server reported (cached tokens apart)."""
    written = usage["cache_creation_input_tokens"]
    read = usage["cache_read_input_tokens"]
    every = usage["input_tokens"] + written + read
    return price.cost(every, usage["output_tokens"], written, read)


def test_json_markdown_and_plain_show_the_cost_by_the_price_table(
    codeflow: Any, server: ModelServer
) -> None:
    server.add_rule("ZeroDivisionError", PY.format("print(1 / 2)"))
    server.add_rule("halve", PY.format("print(1 / 0)"))
    res = codeflow("ask", "halve one", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    price = PRICES["claude-sonnet-5-5"]  # codeflow's default model
    expected = [cost_of(r.usage, price) for r in server.requests]
    assert len(expected) == 2 and all(c > 0 for c in expected)
    assert [a["cost_usd"] for a in record["attempts"]] == [round(c, 6) for c in expected]
    assert record["metrics"]["cost_usd"] == pytest.approx(sum(expected), abs=1e-6)
    assert "cache_read_tokens" in record["metrics"] and "cache_write_tokens" in record["metrics"]

    server.reset()
    server.add_rule("greet", PY.format("print('hello')"))
    md = codeflow("ask", "greet me", "--no-cache")
    assert md.code == 0, md.stderr
    (line,) = [x for x in md.stdout.splitlines() if x.startswith("- Cost: $")]
    assert float(line.removeprefix("- Cost: $")) > 0
    plain = codeflow("ask", "greet me", "--format", "plain", "--no-cache")
    assert plain.code == 0, plain.stderr
    assert "; cost $0.0" in plain.stdout.splitlines()[-1]


def test_settings_price_other_models_and_unknown_ones_cost_nothing(
    codeflow: Any, server: ModelServer
) -> None:
    server.add_rule("greet", PY.format("print('hello')"))
    unknown = codeflow("ask", "greet me", "--model", "anthropic:house-model", "--format", "json",
                       "--no-cache")  # fmt: skip
    assert unknown.code == 0, unknown.stderr
    assert unknown.json()["metrics"]["cost_usd"] == 0
    priced = codeflow(
        "ask", "greet me", "--model", "anthropic:house-model", "--format", "json", "--no-cache",
        "generation.prices=house-model=1000/2000",
    )  # fmt: skip
    assert priced.code == 0, priced.stderr
    usage = server.requests[-1].usage
    expected = cost_of(usage, Price(1000, 2000))
    assert priced.json()["metrics"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    bad = codeflow("ask", "greet me", "generation.prices=house-model=cheap")
    assert bad.code == 2 and "generation.prices" in bad.stderr


def test_cost_budget_stops_the_run_with_its_own_stop_reason(
    codeflow: Any, server: ModelServer
) -> None:
    server.enqueue(PY.format("1 / 0"), PY.format("print('never asked')"))
    res = codeflow(
        "ask", "divide", "--format", "json", "--no-cache", "--max-attempts", "3",
        "improvement.max_cost_usd=0.000001",
    )  # fmt: skip
    assert res.code == 1
    record = res.json()
    assert record["stop_reason"] == "cost_budget"
    assert len(record["attempts"]) == 1 and len(server.requests) == 1
    assert record["metrics"]["cost_usd"] >= 0.000001


def test_eval_shows_cost_per_task_and_in_total(tmp_path: Path, server: ModelServer) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        json.dumps({"id": "sum", "request": "print the sum of 2 and 3", "check": "True"}) + "\n"
    )
    server.add_rule("sum of 2 and 3", PY.format("print(2 + 3)"))
    done = run_codeflow("eval", str(tasks), "--cache-mode", "off", "--output", "out.json",
                        cwd=tmp_path, env=server.env(), home=tmp_path)  # fmt: skip
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[-1] == "cost"
    expected = cost_of(server.requests[0].usage, PRICES["claude-sonnet-5-5"])
    assert lines[1].split()[-1] == f"${expected:.4f}"
    assert lines[-1].endswith(f"cost ${expected:.4f}")
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["summary"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert saved["tasks"][0]["cost_usd"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_run_report_summary_shows_the_cost(tmp_path: Path, server: ModelServer) -> None:
    notebook = write_notebook(
        tmp_path / "costs.ipynb", ["%load_ext codeflow_magic", "%%codeflow\nprint the number 7"]
    )
    server.add_rule("Request:\nprint the number 7", PY.format("print(7)"))
    done = run_codeflow("run", str(notebook), "--report", "report.md", cwd=tmp_path,
                        env=server.env(), home=tmp_path)  # fmt: skip
    assert done.code == 0, done.stderr
    report = (tmp_path / "report.md").read_text()
    head, row = report.splitlines()[2], report.splitlines()[4]
    columns = [c.strip() for c in head.strip("|").split("|")]
    cost = row.strip("|").split("|")[columns.index("Cost")].strip()
    expected = cost_of(server.requests[0].usage, PRICES["claude-sonnet-5-5"])
    assert cost == f"${expected:.4f}" and expected > 0
    assert f"${expected:.4f}" in report.split("### Cell 2")[1]  # the request's status line


def test_price_table_lookup() -> None:
    assert price_for("claude-sonnet-5-5") == PRICES["claude-sonnet-5-5"]
    assert price_for("anthropic:claude-haiku-4-5-20251001") == PRICES["claude-haiku-4-5"]
    assert price_for("openai:llama3") is None
    assert price_for("llama3", ["llama3=0.5/1"]) == Price(0.5, 1.0)
    # a cache read is billed at a tenth of the input price, a write at 1.25 times
    price = Price(10.0, 0.0)
    assert price.cost(1_000_000, 0, read=1_000_000) == pytest.approx(1.0)
    assert price.cost(1_000_000, 0, written=1_000_000) == pytest.approx(12.5)


def test_magic_status_shows_the_session_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from codeflow_magic.magic import _LOADED

    monkeypatch.chdir(tmp_path)
    for name in ("CODEFLOW_CACHE", "CODEFLOW_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)
    shell = InteractiveShell.instance()
    with ModelServer() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.add_rule("say hi", PY.format("print('hi')"))
        server.add_rule("say bye", PY.format("print('bye')"))
        shell.run_cell("%load_ext codeflow_magic", store_history=False)
        try:
            magics = _LOADED[id(shell)]
            before = sum(r.metrics.cost_usd for r in magics.history)
            shell.run_cell("%%codeflow --no-writeback\nsay hi", store_history=False)
            shell.run_cell("%%codeflow --no-writeback\nsay bye", store_history=False)
            capsys.readouterr()
            shell.run_cell("%codeflow status", store_history=False)
            status = capsys.readouterr().out
        finally:
            shell.run_cell("%unload_ext codeflow_magic", store_history=False)
        price = PRICES["claude-sonnet-5-5"]
        spent = before + sum(cost_of(r.usage, price) for r in server.requests)
    (line,) = [x for x in status.splitlines() if x.startswith("cost:")]
    assert len(server.requests) == 2 and spent > 0
    assert line.split()[1] == f"${spent:.4f}" and "in this session" in line
