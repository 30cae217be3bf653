"""Evaluate the pre-execution scanner on a labelled corpus, side by side with bandit.

    python -m benchmarks.scanner [--no-bandit] [--verbose] [--json]

The corpus (`corpus/*.yaml`) is our own writing: harmful snippets in every category (many
obfuscated) labelled with the severity their harm deserves, and everyday data-science code
labelled `none` or `low`. Three lines are measured, each with a target:

* critical items rated at least `high`   (target >= 95 %)
* high items rated at least `medium`     (target >= 90 %)
* benign items rated above their label   (target <= 5 %)

bandit only reads Python files: Bash items are counted as missed for bandit (it cannot scan
them) and IPython cells are given to it as they are (it fails to parse them, which also counts
as missed); the "Python only" column shows bandit on the items it can read. bandit has no
`critical`; its HIGH counts as `high`. Exit status 1 when a target fails or bandit is not
beaten on every line (detection lines: strictly higher; false-alarm line: lower, or both 0 %).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
RANKS = {"none": -1, "low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Item:
    id: str
    language: str
    expected: str
    category: str
    code: str
    source: str

    @property
    def benign(self) -> bool:
        return self.expected in ("none", "low") and self.source == "benign"


def load_corpus(directory: Path = CORPUS_DIR) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        for raw in data:
            item = Item(
                id=str(raw["id"]),
                language=str(raw.get("language", "python")),
                expected=str(raw["expected"]),
                category=str(raw.get("category", "")),
                code=str(raw["code"]),
                source=path.stem,
            )
            if item.id in seen:
                raise ValueError(f"duplicate corpus id {item.id} in {path.name}")
            if item.expected not in RANKS:
                raise ValueError(f"{item.id}: unknown expected severity {item.expected!r}")
            seen.add(item.id)
            items.append(item)
    return items


@dataclass(frozen=True)
class Line:
    name: str
    target: str
    passed_target: Callable[[float], bool]
    higher_is_better: bool


LINES: tuple[Line, ...] = (
    Line("critical items rated >= high", ">= 95%", lambda v: v >= 0.95, True),
    Line("high items rated >= medium", ">= 90%", lambda v: v >= 0.90, True),
    Line("benign items rated above label", "<= 5%", lambda v: v <= 0.05, False),
)


def measure(items: Sequence[Item], ratings: dict[str, str]) -> list[tuple[float, int, int]]:
    """(share, hits, total) per line for one scanner's ratings (id -> severity)."""
    crit = [i for i in items if i.expected == "critical" and not i.benign]
    high = [i for i in items if i.expected == "high" and not i.benign]
    benign = [i for i in items if i.benign]

    def share(pool: list[Item], ok: Callable[[Item], bool]) -> tuple[float, int, int]:
        hits = sum(1 for i in pool if ok(i))
        return (hits / len(pool) if pool else 0.0, hits, len(pool))

    rank = lambda i: RANKS.get(ratings.get(i.id, "none"), -1)  # noqa: E731
    return [
        share(crit, lambda i: rank(i) >= RANKS["high"]),
        share(high, lambda i: rank(i) >= RANKS["medium"]),
        share(benign, lambda i: rank(i) > RANKS[i.expected]),
    ]


def rate_codeflow(items: Sequence[Item]) -> dict[str, str]:
    from codeflow_magic.security import highest_severity, scan_code

    return {i.id: highest_severity(scan_code(i.code, i.language)) for i in items}


def rate_bandit(items: Sequence[Item]) -> dict[str, str] | None:
    """bandit's highest severity per Python/IPython item; None when bandit is not installed."""
    mapping = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
    with tempfile.TemporaryDirectory(prefix="cf-bandit-") as tmp:
        names: dict[str, str] = {}
        for n, item in enumerate(items):
            if item.language == "bash":
                continue
            name = f"item_{n:04d}.py"
            (Path(tmp) / name).write_text(item.code, encoding="utf-8")
            names[name] = item.id
        proc = subprocess.run(
            [sys.executable, "-m", "bandit", "-q", "-r", tmp, "-f", "json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            if "No module named bandit" in proc.stderr:
                return None
            raise RuntimeError(f"bandit failed: {proc.stderr.strip()[:500]}")
        report = json.loads(proc.stdout)
    ratings: dict[str, str] = {}
    for result in report.get("results", []):
        item_id = names.get(Path(result["filename"]).name)
        if item_id is None:
            continue
        sev = mapping.get(result.get("issue_severity", ""), "none")
        if RANKS[sev] > RANKS.get(ratings.get(item_id, "none"), -1):
            ratings[item_id] = sev
    return ratings


def _pct(v: tuple[float, int, int]) -> str:
    return f"{v[0] * 100:5.1f}% ({v[1]}/{v[2]})"


def _beats(ours: float, theirs: float, higher_is_better: bool) -> bool:
    if higher_is_better:
        return ours > theirs
    return ours < theirs or ours == 0.0


def evaluate(items: Sequence[Item], with_bandit: bool = True) -> dict[str, Any]:
    """Ratings and per-line results; the test suite calls this with `with_bandit=False`."""
    ours = rate_codeflow(items)
    python_items = [i for i in items if i.language != "bash"]
    result: dict[str, Any] = {"ratings": ours, "lines": []}
    ours_m = measure(items, ours)
    ours_py = measure(python_items, ours)
    bandit = rate_bandit(items) if with_bandit else None
    bandit_m = measure(items, bandit) if bandit is not None else None
    bandit_py = measure(python_items, bandit) if bandit is not None else None
    for n, line in enumerate(LINES):
        entry: dict[str, Any] = {
            "name": line.name,
            "target": line.target,
            "codeflow": ours_m[n][0],
            "codeflow_counts": ours_m[n][1:],
            "codeflow_python_only": ours_py[n][0],
            "passed": line.passed_target(ours_m[n][0]),
        }
        if bandit_m is not None and bandit_py is not None:
            entry["bandit"] = bandit_m[n][0]
            entry["bandit_counts"] = bandit_m[n][1:]
            entry["bandit_python_only"] = bandit_py[n][0]
            entry["beats_bandit"] = _beats(ours_m[n][0], bandit_m[n][0], line.higher_is_better)
        result["lines"].append(entry)
    result["bandit_ratings"] = bandit
    result["ok"] = all(e["passed"] and e.get("beats_bandit", True) for e in result["lines"])
    return result


def _print_table(items: Sequence[Item], result: dict[str, Any], verbose: bool) -> None:
    n_mal = sum(1 for i in items if not i.benign)
    n_ben = sum(1 for i in items if i.benign)
    n_bash = sum(1 for i in items if i.language == "bash")
    print(
        f"corpus: {len(items)} items ({n_mal} harmful, {n_ben} benign; {n_bash} bash items, "
        "counted as missed for bandit)"
    )
    has_bandit = result["bandit_ratings"] is not None
    header = f"{'line':34} {'target':7} {'codeflow':18} "
    if has_bandit:
        header += f"{'bandit':18} {'bandit (Python only)':20} "
    header += "result"
    print(header)
    print("-" * len(header))
    ours = result["ratings"]
    bandit = result["bandit_ratings"] or {}
    m_all = measure(items, ours)
    b_all = measure(items, bandit) if has_bandit else None
    py_items = [i for i in items if i.language != "bash"]
    b_py = measure(py_items, bandit) if has_bandit else None
    for n, entry in enumerate(result["lines"]):
        row = f"{entry['name']:34} {entry['target']:7} {_pct(m_all[n]):18} "
        verdict = "PASS" if entry["passed"] else "FAIL"
        if has_bandit and b_all is not None and b_py is not None:
            row += f"{_pct(b_all[n]):18} {_pct(b_py[n]):20} "
            verdict += ", beats bandit" if entry["beats_bandit"] else ", does NOT beat bandit"
        print(row + verdict)
    if verbose:
        print("\nmisses and false alarms (id: expected -> codeflow [bandit]):")
        for item in items:
            got = ours[item.id]
            missed = (
                not item.benign
                and item.expected in ("critical", "high")
                and RANKS[got] < RANKS[item.expected] - 1
            )
            wrong = item.benign and RANKS[got] > RANKS[item.expected]
            under = not item.benign and RANKS[got] < RANKS[item.expected]
            if missed or wrong or under:
                extra = f" [{bandit.get(item.id, 'none')}]" if has_bandit else ""
                print(f"  {item.id}: {item.expected} -> {got}{extra}")


def _print_speed() -> None:
    """Scan time of a 200-line data-science script (median of 21 runs; informational)."""
    import statistics
    import time

    from codeflow_magic.security import scan_code

    block = [
        "import pandas as pd",
        "df = pd.read_csv('data.csv')",
        "df['total'] = df['price'] * df['qty']",
        "df.to_csv('out.csv', index=False)",
        "print(df.describe())",
    ]
    script = "\n".join(block * 40)
    scan_code(script, "python")
    times = []
    for _ in range(21):
        start = time.perf_counter()
        scan_code(script, "python")
        times.append(time.perf_counter() - start)
    print(f"scan time, 200-line script: {statistics.median(times) * 1000:.1f} ms (median of 21)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scanner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-bandit", action="store_true", help="skip the bandit comparison")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="list every item rated below its label"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    items = load_corpus()
    result = evaluate(items, with_bandit=not args.no_bandit)
    if not args.no_bandit and result["bandit_ratings"] is None:
        print("bandit is not installed: install the dev extra to compare", file=sys.stderr)
        return 2
    if args.json:
        json.dump({k: v for k, v in result.items()}, sys.stdout, indent=2, default=list)
        print()
    else:
        _print_table(items, result, args.verbose)
        _print_speed()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
