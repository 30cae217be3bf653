"""`codeflow eval` on the shipped task files, offline from their recorded answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from needs import REPO_ROOT

from codeflow_magic.errors import UsageError
from codeflow_magic.evaluation import answer_matches, closed_form, load_tasks

EVAL = REPO_ROOT / "benchmarks" / "eval"
DABENCH = [
    str(EVAL / "dabench" / "questions.jsonl"),
    "--labels",
    str(EVAL / "dabench" / "labels.jsonl"),
    "--tables",
    str(EVAL / "dabench" / "tables"),
]


def codeflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CODEFLOW_"))}
    env["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens: replay or fail
    return subprocess.run(
        [sys.executable, "-m", "codeflow_magic.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.kernel
def test_eval_prints_its_table_offline_and_compares_two_runs(tmp_path: Path) -> None:
    full = codeflow(
        "eval", str(EVAL / "tasks.jsonl"), "--cache-mode", "replay", "--output", "a.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert full.returncode == 0, full.stderr
    lines = full.stdout.splitlines()
    assert lines[0].split() == ["task", "pass@1", "pass@k", "attempts", "tokens", "time", "cost"]
    assert lines[1].split()[:4] == ["orders-total", "yes", "yes", "1"]
    assert lines[2].split()[:4] == ["orders-by-region", "no", "yes", "2"]
    assert lines[3].split()[:4] == ["distinct-users", "yes", "yes", "1"]
    assert lines[4].startswith("pass@1 2/3 (66.7%)  pass@k 3/3 (100.0%)")
    assert "attempts per solved task 1.33" in lines[4]
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["summary"]["solved"] == 3 and saved["tasks"][1]["attempts"] == 2

    one = codeflow(
        "eval", str(EVAL / "tasks.jsonl"), "--cache-mode", "replay", "--max-attempts", "1",
        "--output", "b.json", cwd=tmp_path,
    )  # fmt: skip
    assert one.returncode == 1  # a task left unsolved
    assert "pass@k 2/3 (66.7%)" in one.stdout
    compared = codeflow("eval", "--compare", "a.json", "b.json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "pass@k                    100.0%       66.7%" in compared.stdout
    assert "orders-by-region: pass@1 no -> no, pass@k yes -> no" in compared.stdout


@pytest.mark.kernel
def test_eval_reads_the_dabench_format(tmp_path: Path) -> None:
    done = codeflow("eval", *DABENCH, "--cache-mode", "replay", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[:4] == ["0", "no", "yes", "2"]  # NaN from a decimal comma, fixed
    assert lines[2].split()[:4] == ["1", "yes", "yes", "1"]
    assert lines[3].startswith("pass@1 1/2 (50.0%)  pass@k 2/2 (100.0%)")


def test_closed_form_scoring() -> None:
    assert closed_form("x @a[1.5] y @b[north ]\n@a[2]") == {"a": "2", "b": "north"}
    assert answer_matches("39.9166", "39.92") and answer_matches("2", "2.0")
    assert not answer_matches("39.9", "39.92") and answer_matches(" North", "north")
    assert not answer_matches("nan", "39.92")


def test_task_files_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"request": "do it"}\n')
    with pytest.raises(UsageError, match='needs "check" or "expected"'):
        load_tasks(bad)
    with pytest.raises(UsageError, match="--labels FILE and --tables FOLDER"):
        load_tasks(EVAL / "dabench" / "questions.jsonl")
    tasks = load_tasks(EVAL / "tasks.jsonl")
    assert [t.id for t in tasks] == ["orders-total", "orders-by-region", "distinct-users"]
    assert tasks[0].files == (EVAL / "data" / "orders.csv",)
