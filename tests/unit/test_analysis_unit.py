"""Error classification per category."""

from __future__ import annotations

import pytest

from codeflow_magic import analysis
from codeflow_magic.models import ExecutionResult


def err(
    ename: str, evalue: str, tb: str = "", status: str = "error", detail: str = ""
) -> ExecutionResult:
    return ExecutionResult(
        status=status, ename=ename, evalue=evalue, traceback=(tb,), detail=detail
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "language", "category"),
    [
        (err("SyntaxError", "expected ':' (1012.py, line 1)"), "python", "syntax"),
        (err("IndentationError", "unexpected indent"), "python", "syntax"),
        (err("ModuleNotFoundError", "No module named 'foo'"), "python", "import"),
        (err("ImportError", "cannot import name 'x' from 'os'"), "python", "import"),
        (err("NameError", "name 'x' is not defined"), "python", "runtime"),
        (err("ZeroDivisionError", "division by zero"), "python", "runtime"),
        (err("MemoryError", ""), "python", "environment"),
        (err("PermissionError", "[Errno 13] Permission denied: '/etc/x'"), "python", "environment"),
        (
            err("FileNotFoundError", "[Errno 2] No such file or directory: 'a.csv'"),
            "python",
            "environment",
        ),
        (err("OSError", "[Errno 28] No space left on device"), "python", "environment"),
        (err("OSError", "[Errno 22] Invalid argument"), "python", "runtime"),
        (err("TimeoutError", "execution exceeded 3s", status="timeout"), "python", "environment"),
        (
            err(
                "KernelDied",
                "the kernel died",
                status="died",
                detail="killed: out of memory, limit 512m",
            ),
            "python",
            "environment",
        ),
        (err("CheckFailed", "check is false"), "python", "logical"),
        (
            err("BashError", "exit status 127: bash: line 1: lss: command not found"),
            "bash",
            "environment",
        ),
        (
            err("BashError", "exit status 2: bash: line 3: syntax error: unexpected end of file"),
            "bash",
            "syntax",
        ),
        (err("BashError", "exit status 1: grep failed"), "bash", "runtime"),
    ],
)
def test_categories(result: ExecutionResult, language: str, category: str) -> None:
    assert analysis.classify(result, "a\nb\nc\n", language).category == category


def test_died_keeps_the_cause_in_evalue() -> None:
    e = analysis.classify(
        err(
            "KernelDied",
            "the kernel died",
            status="died",
            detail="killed: out of memory, limit 512m",
        ),
        "x",
        "python",
    )
    assert "out of memory, limit 512m" in e.evalue


def test_failing_line_and_ansi_free_traceback() -> None:
    tb = "\x1b[31mZeroDivisionError\x1b[0m Traceback\nCell In[4], line 2\n      1 a = 1\n----> 2 b = a / 0\n"
    e = analysis.classify(
        err("ZeroDivisionError", "division by zero", tb), "a = 1\nb = a / 0\n", "python"
    )
    assert e.line == 2 and e.source_line == "b = a / 0"
    assert "\x1b" not in e.traceback


def test_root_causes_name_the_thing() -> None:
    assert (
        "`x`"
        in analysis.classify(err("NameError", "name 'x' is not defined"), "x", "python").root_cause
    )
    assert (
        "`foo`"
        in analysis.classify(
            err("ModuleNotFoundError", "No module named 'foo'"), "", "python"
        ).root_cause
    )
    rc = analysis.classify(
        err("BashError", "exit status 127: bash: line 1: lss: command not found"), "lss", "bash"
    )
    assert "`lss`" in rc.root_cause and rc.line == 1
