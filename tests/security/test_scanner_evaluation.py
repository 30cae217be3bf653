"""The labelled corpus meets the quality targets (scanner only; bandit is compared by the
benchmark command, `python -m benchmarks.scanner`)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.scanner.evaluate import LINES, evaluate, load_corpus  # noqa: E402

CATEGORIES = {
    "process",
    "filesystem",
    "network",
    "dynamic-code",
    "dangerous-module",
    "introspection",
    "persistence",
    "secrets",
    "resource",
}


def test_corpus_is_large_and_covers_every_category() -> None:
    items = load_corpus()
    harmful = [i for i in items if not i.benign]
    benign = [i for i in items if i.benign]
    assert len(items) >= 120
    assert len(benign) >= 40
    assert {i.category for i in harmful} == CATEGORIES
    assert {i.language for i in items} == {"python", "ipython", "bash"}


def test_scanner_meets_every_target() -> None:
    items = load_corpus()
    result = evaluate(items, with_bandit=False)
    assert [e["name"] for e in result["lines"]] == [line.name for line in LINES]
    for entry in result["lines"]:
        assert entry["passed"], entry
    assert result["ok"]
