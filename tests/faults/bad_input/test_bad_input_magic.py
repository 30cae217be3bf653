"""Bad options to the `%%codeflow` magic (cells run in a real IPython InteractiveShell): one
`UsageError` line as the whole cell output, no code written back, nothing written and the
model never asked.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from badinput import MB, snapshot
from modelserver import ModelServer

# -- the magic ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    sh: Any = InteractiveShell.instance()
    sh.run_cell("%load_ext codeflow_magic", store_history=False)
    yield sh
    sh.run_cell("%unload_ext codeflow_magic", store_history=False)


@pytest.fixture
def magic_env(api_env: Path, shell: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shell.rl_next_input = None
    yield api_env


def run_cell(shell: Any, source: str) -> tuple[Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        result = shell.run_cell(source, store_history=False)
    finally:
        sys.stdout, sys.stderr = saved
    return result, out.getvalue(), err.getvalue()


MAGIC_CASES: list[tuple[str, str, str, str]] = [
    (
        "max-attempts-negative",
        "--max-attempts -1",
        "print hi",
        "argument --max-attempts: '-1' is out of range; expected an integer from 1 to 50",
    ),
    (
        "max-attempts-zero",
        "--max-attempts 0",
        "print hi",
        "argument --max-attempts: '0' is out of range",
    ),
    (
        "max-attempts-absurd",
        "--max-attempts 1000000000",
        "print hi",
        "argument --max-attempts: '1000000000' is out of range",
    ),
    (
        "max-attempts-word",
        "--max-attempts=many",
        "print hi",
        "argument --max-attempts: 'many' is not a whole number",
    ),
    (
        "timeout-nan",
        "--timeout nan",
        "print hi",
        "argument --timeout: 'nan' is not a finite number",
    ),
    (
        "timeout-inf",
        "--timeout inf",
        "print hi",
        "argument --timeout: 'inf' is not a finite number",
    ),
    ("timeout-zero", "--timeout 0", "print hi", "argument --timeout: '0' is out of range"),
    ("timeout-absurd", "--timeout 1e12", "print hi", "argument --timeout: '1e12' is out of range"),
    (
        "unknown-backend",
        "--backend cloud",
        "print hi",
        "argument --backend: invalid choice: 'cloud' (choose from 'kernel', 'inline', 'sandbox', "
        "'docker', 'gateway')",
    ),
    ("unknown-language", "--language cobol", "print hi", "argument --language: invalid choice"),
    ("unknown-focus", "--focus speed", "print hi", "argument --focus: invalid choice: 'speed'"),
    ("unknown-scan", "--scan paranoid", "print hi", "argument --scan: invalid choice: 'paranoid'"),
    ("unknown-option", "--bogus", "print hi", "unrecognized arguments: --bogus"),
    ("help-is-not-an-option", "--help", "print hi", "unrecognized arguments: --help"),
    (
        "unknown-model-provider",
        "--model gemini:pro",
        "print hi",
        "unknown model provider 'gemini' in 'gemini:pro'; use one of: anthropic, openai",
    ),
    (
        "unclosed-quote",
        '--check "x == 1',
        "print hi",
        "cannot read the options: No closing quotation",
    ),
    (
        "unknown-setting",
        "improvement.max_atempts=2",
        "print hi",
        "unknown setting 'improvement.max_atempts' (did you mean 'improvement.max_attempts'?)",
    ),
    (
        "bad-setting-value",
        "generation.max_tokens=abc",
        "print hi",
        "generation.max_tokens: 'abc' is not a whole number",
    ),
    ("empty-cell", "", "   \n\t\n", "the request is empty: say in plain words"),
    (
        "one-megabyte-cell",
        "",
        "u" * MB,
        f"this cell: the request is {MB} characters long; the limit is 100000",
    ),
    (
        "nul-in-cell",
        "",
        "print\x00hi",
        "this cell: the request contains a NUL character (at character 5)",
    ),
]


@pytest.mark.parametrize(
    ("line", "cell", "message"), [pytest.param(a, c, m, id=i) for i, a, c, m in MAGIC_CASES]
)
def test_magic_prints_one_line_for_bad_options(
    shell: Any, magic_env: Path, server: ModelServer, line: str, cell: str, message: str
) -> None:
    from IPython.core.error import UsageError

    before = snapshot(magic_env)
    result, out, err = run_cell(shell, f"%%codeflow {line}\n{cell}")
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    text = str(result.error_in_exec)
    assert message in text and "\n" not in text, text
    assert err.strip() == f"UsageError: {text}"  # the whole cell output: one line
    assert "Traceback" not in out + err and out == ""
    assert shell.rl_next_input is None  # no code written back
    assert snapshot(magic_env) == before and server.requests == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "not json",
            'CODEFLOW_OVERRIDES must be a JSON list of "section.name=value"',
            id="not-json",
        ),
        pytest.param('{"a": 1}', "CODEFLOW_OVERRIDES must be a JSON list", id="object"),
        pytest.param("[5]", "CODEFLOW_OVERRIDES must be a JSON list", id="number-item"),
        pytest.param('["generation.nope=1"]', "unknown setting 'generation.nope'", id="bad-key"),
    ],
)
def test_magic_refuses_bad_overrides_in_the_environment(
    shell: Any,
    magic_env: Path,
    server: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    message: str,
) -> None:
    from IPython.core.error import UsageError

    monkeypatch.setenv("CODEFLOW_OVERRIDES", value)
    before = snapshot(magic_env)
    result, out, err = run_cell(shell, "%%codeflow\nprint hi")
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec) and "Traceback" not in out + err
    assert snapshot(magic_env) == before and server.requests == []


def test_magic_names_the_line_of_a_broken_codeflow_yaml(
    shell: Any, magic_env: Path, server: ModelServer
) -> None:
    from IPython.core.error import UsageError

    (magic_env / "codeflow.yaml").write_text("execution:\n  timeout: soon\n")
    before = snapshot(magic_env)
    result, out, err = run_cell(shell, "%%codeflow\nprint hi")
    assert isinstance(result.error_in_exec, UsageError)
    assert f"{magic_env / 'codeflow.yaml'}:2: execution.timeout: 'soon' is not a number" in str(
        result.error_in_exec
    )
    assert "Traceback" not in out + err
    assert snapshot(magic_env) == before and server.requests == []
