"""Evaluate the pre-execution scanner on a labelled corpus, side by side with bandit and
semgrep.

    python -m benchmarks.scanner [--no-bandit] [--no-semgrep] [--verbose] [--json]
                                 [--split dev|test]

The corpus has two splits (see `corpus/README.md`):

* `dev` (`corpus/dev/*.yaml`): our own snippets written alongside the rules, items
  re-created from public advisories and write-ups, and a retired test split; rules may be
  tuned on it.
* `test` (`corpus/test/*.yaml`): items re-created from public advisories, escape collections,
  incident reports and tutorials by someone who had not read the rules, and never used to
  tune them. It measures how the scanner does on code nobody tuned it for.

Every item names its `source`. Harmful items are labelled with the severity their harm
deserves; everyday code (`benign: true`) with `none` or `low`. Three lines are measured on
each split, each with a target:

* critical items rated at least `high`   (target >= 95 %)
* high items rated at least `medium`     (target >= 90 %)
* benign items rated above their label   (target <= 5 %)

bandit only reads Python files: Bash items are counted as missed for bandit (it cannot scan
them) and IPython cells are given to it as they are (it fails to parse them, which also counts
as missed). bandit has no `critical`; its HIGH counts as `high`.

semgrep runs with `semgrep.yml` beside this file (its registry cannot be reached here): an
ordinary security-audit rule set for Python and Bash, each rule rated in `metadata.rating` as
the advisory it cites rates the harm. IPython cells are given to it as Python. `make bench`
installs semgrep into `.venv-tools` from `benchmarks/tools.lock` (its pins conflict with the
project's own environment); without it the semgrep columns are left out, with a note.

Exit status 1 when a target fails on either split or a baseline is not beaten on every line
(detection lines: strictly higher; false-alarm line: lower, or both 0 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SEMGREP_RULES = Path(__file__).resolve().parent / "semgrep.yml"
TOOLS_VENV = Path(__file__).resolve().parents[2] / ".venv-tools"
RANKS = {"none": -1, "low": 0, "medium": 1, "high": 2, "critical": 3}


SPLITS: tuple[str, ...] = ("dev", "test")


@dataclass(frozen=True)
class Item:
    id: str
    language: str
    expected: str
    category: str
    code: str
    source: str
    benign: bool
    split: str


def load_corpus(split: str | None = None, directory: Path = CORPUS_DIR) -> list[Item]:
    """The items of one split (`dev`, `test`) or of both (None)."""
    items: list[Item] = []
    seen: set[str] = set()
    for name in SPLITS if split is None else (split,):
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        for path in sorted((directory / name).glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            for raw in data:
                benign = bool(raw.get("benign", path.stem == "benign"))
                item = Item(
                    id=str(raw["id"]),
                    language=str(raw.get("language", "python")),
                    expected=str(raw["expected"]),
                    category=str(raw.get("category", "")),
                    code=str(raw["code"]),
                    source=str(raw.get("source", "own")),
                    benign=benign,
                    split=name,
                )
                if item.id in seen:
                    raise ValueError(f"duplicate corpus id {item.id} in {path.name}")
                if item.expected not in RANKS:
                    raise ValueError(f"{item.id}: unknown expected severity {item.expected!r}")
                if item.benign and item.expected not in ("none", "low"):
                    raise ValueError(f"{item.id}: a benign item is labelled none or low")
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


def _keep_highest(ratings: dict[str, str], item_id: str, severity: str) -> None:
    """An item's rating is the highest of its findings."""
    if RANKS[severity] > RANKS.get(ratings.get(item_id, "none"), -1):
        ratings[item_id] = severity


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
        _keep_highest(ratings, item_id, sev)
    return ratings


def semgrep_command() -> str | None:
    """`CODEFLOW_SEMGREP`, else the tools venv's semgrep, else one on PATH."""
    explicit = os.environ.get("CODEFLOW_SEMGREP")
    if explicit:
        return explicit
    local = TOOLS_VENV / "bin" / "semgrep"
    if local.exists():
        return str(local)
    return shutil.which("semgrep")


def rate_semgrep(items: Sequence[Item]) -> dict[str, str] | None:
    """semgrep's highest rating per item with the local rule file; None when not installed."""
    command = semgrep_command()
    if command is None:
        return None
    severity = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}
    with tempfile.TemporaryDirectory(prefix="cf-semgrep-") as tmp:
        names: dict[str, str] = {}
        for n, item in enumerate(items):
            name = f"item_{n:04d}.{'sh' if item.language == 'bash' else 'py'}"
            (Path(tmp) / name).write_text(item.code, encoding="utf-8")
            names[name] = item.id
        proc = subprocess.run(
            [
                command,
                "scan",
                "--config",
                str(SEMGREP_RULES),
                "--json",
                "--metrics=off",
                "--disable-version-check",
                "--quiet",
                tmp,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "SEMGREP_SEND_METRICS": "off"},
        )
        if proc.returncode not in (0, 1) or not proc.stdout.strip():
            raise RuntimeError(f"semgrep failed: {proc.stderr.strip()[:500]}")
        report = json.loads(proc.stdout)
    ratings: dict[str, str] = {}
    for result in report.get("results", []):
        item_id = names.get(Path(result["path"]).name)
        if item_id is None:
            continue
        extra = result.get("extra", {})
        sev = extra.get("metadata", {}).get("rating") or severity.get(extra.get("severity"), "low")
        _keep_highest(ratings, item_id, sev)
    return ratings


BASELINES: dict[str, Callable[[Sequence[Item]], dict[str, str] | None]] = {
    "bandit": rate_bandit,
    "semgrep": rate_semgrep,
}


def _pct(v: tuple[float, int, int]) -> str:
    return f"{v[0] * 100:5.1f}% ({v[1]}/{v[2]})"


def _beats(ours: float, theirs: float, higher_is_better: bool) -> bool:
    if higher_is_better:
        return ours > theirs
    return ours < theirs or ours == 0.0


def evaluate(
    items: Sequence[Item], with_bandit: bool = True, with_semgrep: bool = True
) -> dict[str, Any]:
    """Ratings and per-line results; the test suite calls this without the baselines.

    `baselines` holds each baseline that ran (its ratings); a baseline asked for but not
    installed is listed in `missing`.
    """
    ours = rate_codeflow(items)
    python_items = [i for i in items if i.language != "bash"]
    result: dict[str, Any] = {"ratings": ours, "lines": [], "baselines": {}, "missing": []}
    ours_m = measure(items, ours)
    ours_py = measure(python_items, ours)
    wanted = {"bandit": with_bandit, "semgrep": with_semgrep}
    theirs: dict[str, tuple[Any, Any]] = {}
    for name, rate in BASELINES.items():
        if not wanted[name]:
            continue
        ratings = rate(items)
        if ratings is None:
            result["missing"].append(name)
            continue
        result["baselines"][name] = ratings
        theirs[name] = (measure(items, ratings), measure(python_items, ratings))
    for n, line in enumerate(LINES):
        entry: dict[str, Any] = {
            "name": line.name,
            "target": line.target,
            "codeflow": ours_m[n][0],
            "codeflow_counts": ours_m[n][1:],
            "codeflow_python_only": ours_py[n][0],
            "passed": line.passed_target(ours_m[n][0]),
        }
        for name, (every, python_only) in theirs.items():
            entry[name] = every[n][0]
            entry[f"{name}_counts"] = every[n][1:]
            entry[f"{name}_python_only"] = python_only[n][0]
            entry[f"beats_{name}"] = _beats(ours_m[n][0], every[n][0], line.higher_is_better)
        result["lines"].append(entry)
    result["bandit_ratings"] = result["baselines"].get("bandit")
    result["ok"] = all(
        e["passed"] and all(e[f"beats_{name}"] for name in theirs) for e in result["lines"]
    )
    return result


def _print_table(splits: dict[str, tuple[list[Item], dict[str, Any]]], verbose: bool) -> None:
    """Both splits side by side: codeflow and each baseline per split, one row per line."""
    present = [
        name for name in BASELINES if all(name in r["baselines"] for _, r in splits.values())
    ]
    for name, (items, _) in splits.items():
        n_mal = sum(1 for i in items if not i.benign)
        n_ben = sum(1 for i in items if i.benign)
        n_bash = sum(1 for i in items if i.language == "bash")
        print(
            f"{name} split: {len(items)} items ({n_mal} harmful, {n_ben} benign; {n_bash} bash "
            "items, counted as missed for bandit)"
        )
    header = f"{'line':32} {'target':7}"
    for name in splits:
        header += f" {name + ' codeflow':18}"
        for tool in present:
            header += f" {name + ' ' + tool:18}"
    header += " result"
    print(header)
    print("-" * len(header))
    for n, line in enumerate(LINES):
        row = f"{line.name:32} {line.target:7}"
        verdicts: list[str] = []
        for name, (_items, result) in splits.items():
            entry = result["lines"][n]
            row += f" {_pct((entry['codeflow'], *entry['codeflow_counts'])):18}"
            verdict = "PASS" if entry["passed"] else "FAIL"
            for tool in present:
                row += f" {_pct((entry[tool], *entry[f'{tool}_counts'])):18}"
                verdict += "" if entry[f"beats_{tool}"] else f" ({tool} not beaten)"
            verdicts.append(f"{name} {verdict}")
        print(row + " " + ", ".join(verdicts))
    if not verbose:
        return
    for name, (items, result) in splits.items():
        ours = result["ratings"]
        print(
            f"\n{name}: items rated below their label, and false alarms (id: expected -> "
            f"codeflow [{', '.join(present)}]):"
        )
        for item in items:
            got = ours[item.id]
            wrong = item.benign and RANKS[got] > RANKS[item.expected]
            under = not item.benign and RANKS[got] < RANKS[item.expected]
            if wrong or under:
                others = [result["baselines"][t].get(item.id, "none") for t in present]
                extra = f" [{', '.join(others)}]" if present else ""
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
    parser.add_argument("--no-semgrep", action="store_true", help="skip the semgrep comparison")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="list every item rated below its label"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--split", choices=SPLITS, help="evaluate one split only")
    args = parser.parse_args(argv)
    splits: dict[str, tuple[list[Item], dict[str, Any]]] = {}
    for name in (args.split,) if args.split else SPLITS:
        items = load_corpus(name)
        result = evaluate(items, with_bandit=not args.no_bandit, with_semgrep=not args.no_semgrep)
        if "bandit" in result["missing"]:
            print("bandit is not installed: install the dev extra to compare", file=sys.stderr)
            return 2
        splits[name] = (items, result)
    if any("semgrep" in r["missing"] for _, r in splits.values()):
        print(
            "semgrep is not installed: `make tools` puts it in .venv-tools (or set "
            "CODEFLOW_SEMGREP); its columns are left out",
            file=sys.stderr,
        )
    if args.json:
        json.dump({k: r for k, (_, r) in splits.items()}, sys.stdout, indent=2, default=list)
        print()
    else:
        _print_table(splits, args.verbose)
        _print_speed()
    return 0 if all(r["ok"] for _, r in splits.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
