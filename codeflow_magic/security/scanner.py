"""Scanner entry point: language dispatch, IPython syntax, fail-closed parsing, ordering.

Code that runs in a Jupyter kernel is IPython, not Python: `!rm -rf ~` or a `%%bash` cell
parse as nothing in `ast` but run as shell. So Python that does not parse is put through
IPython's own input transformers (the exact rewriting the kernel would do) and parsed again;
the shell commands those rewrites carry are judged by the Bash rules. Code that still cannot be
parsed yields a finding: unanalysable code must not pass silently.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from ..models import SCAN_LANGUAGES, Finding, severity_rank
from . import rules
from .bash_rules import exfiltration, scan_bash
from .python_rules import PythonAnalyzer

LANGUAGES = SCAN_LANGUAGES
MAX_DEPTH = 6

_transformer: Any = None


def _ipython_transform(code: str) -> str:
    """IPython's own rewriting of magics and shell escapes (imported on first use)."""
    global _transformer
    if _transformer is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _transformer = TransformerManager()  # type: ignore[no-untyped-call]
    return str(_transformer.transform_cell(code))


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not our business
        return ast.parse(code)


def _scan_python(code: str, language: str, first_line: int, depth: int) -> list[Finding]:
    tree: ast.Module | None = None
    error: Exception | None = None
    if language == "python" or language == "ipython":
        try:
            tree = _parse(code)
        except (SyntaxError, ValueError) as exc:
            error = exc
        if tree is None:
            try:
                transformed = _ipython_transform(code)
                tree = _parse(transformed)
                code = transformed
            except Exception as exc:  # the transformer raises odd things on odd input
                if error is None:
                    error = exc
    if tree is None:
        detail = ""
        if isinstance(error, SyntaxError):
            where = f" (line {error.lineno})" if error.lineno else ""
            detail = f": {error.msg}{where}"
        findings = [
            rules.finding(
                "unparseable", first_line, f"code cannot be parsed{detail}; it cannot be checked"
            )
        ]
        # Still look at it as text: a broken cell can carry a working shell line.
        findings.extend(
            f
            for f in scan_bash(code, first_line, None, depth + 1)
            if severity_rank(f.severity) >= severity_rank("high")
        )
        return findings
    analyzer = PythonAnalyzer(tree, code, first_line, depth, _bash_callback, _code_callback)
    try:
        return analyzer.run()
    except RecursionError:
        return [_internal("code is nested too deeply to check", first_line)]
    except Exception as exc:  # fail closed: a scanner bug must not let code through unseen
        return [_internal(f"the scanner failed on this code ({type(exc).__name__})", first_line)]


def _internal(message: str, line: int) -> Finding:
    return rules.finding("scanner-error", line, f"{message}; it cannot be checked")


def _bash_callback(text: str, first_line: int, depth: int) -> list[Finding]:
    if depth > MAX_DEPTH:
        return [rules.finding("nesting", first_line, "nests code too deep to check")]
    return scan_bash(text, first_line, _python_from_bash, depth)


def _python_from_bash(code: str, first_line: int, depth: int) -> list[Finding]:
    return _code_callback(code, "python", first_line, depth)


def _code_callback(code: str, language: str, first_line: int, depth: int) -> list[Finding]:
    if depth > MAX_DEPTH:
        return [rules.finding("nesting", first_line, "nests code too deep to check")]
    if language == "bash":
        return scan_bash(code, first_line, _python_from_bash, depth)
    return _scan_python(code, language, first_line, depth)


def _dedupe_and_sort(findings: list[Finding]) -> list[Finding]:
    best: dict[tuple[str, int | None, str], Finding] = {}
    for f in findings:
        key = (f.rule, f.line, f.message)
        if key not in best or severity_rank(f.severity) > severity_rank(best[key].severity):
            best[key] = f
    unique = list(best.values())
    # A bare mention of a credential path adds nothing when the same line already has a
    # finding of the same category (reading it, writing it).
    covered = {(f.line, f.category) for f in unique if f.rule != "mention"}
    unique = [f for f in unique if f.rule != "mention" or (f.line, f.category) not in covered]
    unique.sort(
        key=lambda f: (
            -severity_rank(f.severity),
            f.line if f.line is not None else 1 << 30,
            f.rule,
            f.message,
        )
    )
    return unique


def scan_code(code: str, language: str = "python") -> list[Finding]:
    """Findings for `code`, most harmful first, then by line.

    `language` is `python`, `ipython` (both accept IPython syntax) or `bash`.
    """
    lang = (language or "python").lower().strip()
    if lang not in LANGUAGES:
        from ..errors import UsageError

        raise UsageError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    try:
        if lang == "bash":
            findings = scan_bash(code, 1, _python_from_bash, 0)
        else:
            findings = _scan_python(code, lang, 1, 0)
    except RecursionError:
        findings = [_internal("code is nested too deeply to check", 1)]
    except Exception as exc:  # fail closed, as above
        findings = [_internal(f"the scanner failed on this code ({type(exc).__name__})", 1)]
    findings.extend(exfiltration(findings))
    return _dedupe_and_sort(findings)


def format_findings(findings: list[Finding]) -> str:
    """One short line per finding: `line 3: [critical/process] os.system runs 'rm -rf ~': ...`."""
    lines = []
    for f in findings:
        where = f"line {f.line}" if f.line is not None else "code"
        lines.append(f"{where}: [{f.severity}/{f.category}] {f.message}")
    return "\n".join(lines)
