"""`codeflow ask` on a managed kernel: a failed attempt's variables do not reach the next
attempt, and `--review` shows the code without running it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cliharness import Result
from modelserver import ModelServer

PY = "```python\n{}\n```"


def test_the_fix_runs_on_the_state_before_the_failed_attempt(
    codeflow: Callable[..., Result], server: ModelServer
) -> None:
    server.add_rule("left-over", PY.format("print('leftover' in dir())"))
    server.add_rule("check it", PY.format("leftover = 1\nraise ValueError('left-over')"))
    res = codeflow("ask", "check it", "--format", "json")
    assert res.code == 0, res.stderr
    record = res.json()
    assert record["attempts"][0]["rolled_back"] is True
    assert record["outputs"][0]["text"] == "False\n"
    assert record["undo_key"] == record["run_id"]
    # the fix prompt told the model the namespace is as it was before attempt 1
    assert "changes to the variables were undone" in server.prompts()[1]

    off = codeflow("ask", "check it", "--format", "json", "--no-cache", "execution.rollback=off")
    assert off.code == 0, off.stderr
    assert off.json()["outputs"][0]["text"] == "True\n"
    assert off.json()["attempts"][0]["rolled_back"] is False


def test_review_prints_the_code_and_runs_nothing(
    codeflow: Callable[..., Result], server: ModelServer, tmp_path: Path
) -> None:
    server.add_rule("make a file", PY.format("open('made.txt', 'w').write('x')"))
    res = codeflow("ask", "make a file", "--review")
    assert res.code == 0, res.stderr
    assert "open('made.txt', 'w').write('x')" in res.stdout
    assert "awaiting review" in res.stdout
    assert not (tmp_path / "made.txt").exists()


def test_batch_review_holds_every_request_and_says_so(
    codeflow: Callable[..., Result], server: ModelServer, tmp_path: Path
) -> None:
    server.add_rule("first file", PY.format("open('first.txt', 'w').write('x')"))
    server.add_rule("second file", PY.format("open('second.txt', 'w').write('x')"))
    (tmp_path / "requests.txt").write_text("make the first file\nmake the second file\n")
    res = codeflow("batch", "requests.txt", "--review", "-q")
    assert res.code == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["stop_reason"] for r in records] == ["awaiting_review", "awaiting_review"]
    assert "open('first.txt', 'w')" in records[0]["final_code"]
    assert "2 of 2 request(s) awaiting review" in res.stderr
    assert not (tmp_path / "first.txt").exists() and not (tmp_path / "second.txt").exists()


def test_batch_asks_the_fix_model_for_fixes(
    codeflow: Callable[..., Result], server: ModelServer, tmp_path: Path
) -> None:
    server.add_rule("first try", PY.format("print('fixed')"))  # only the fix prompt has it
    server.add_rule("fails once", PY.format("raise ValueError('first try')"))
    (tmp_path / "requests.txt").write_text("a request that fails once\n")
    res = codeflow(
        "batch", "requests.txt", "-q", "--no-cache", "improvement.model=anthropic:fixer-model"
    )
    assert res.code == 0, res.stderr
    assert [r.body["model"] for r in server.requests] == [
        server.requests[0].body["model"],
        "fixer-model",
    ]
    assert server.requests[0].body["model"] != "fixer-model"
