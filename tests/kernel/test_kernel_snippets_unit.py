"""The code strings sent into kernels, checked without a kernel."""

from __future__ import annotations

import ast
import json

from codeflow_magic.executors.snippets import (
    bash_snippet,
    describe_state_snippet,
    pip_install_snippet,
)


def _argv_literal(snippet: str) -> list[str]:
    line = next(x for x in snippet.splitlines() if "json.loads(" in x)
    literal = line.split("json.loads(", 1)[1].rsplit(")", 1)[0]
    value = json.loads(ast.literal_eval(literal))
    assert isinstance(value, list)
    return value


def test_bash_script_travels_as_json_literal() -> None:
    script = 'echo "$(printf \'%s\' \\"\\n\\")"\n\'\'\'"""\n%s %(x)d {}'
    assert _argv_literal(bash_snippet(script)) == ["bash", "-c", script]


def test_snippets_are_valid_python() -> None:
    for snippet in (
        bash_snippet("echo 'x' \"y\" \\ '''"),
        pip_install_snippet("pandas[excel]>=2"),
        describe_state_snippet(100),
    ):
        ast.parse(snippet)


def test_pip_snippet_uses_the_kernels_interpreter() -> None:
    snippet = pip_install_snippet("requests")
    assert _argv_literal(snippet)[-1] == "requests"
    assert "sys.executable" in snippet
    assert "class InstallError(Exception)" in snippet


def test_bash_snippet_error_class() -> None:
    assert "class BashError(Exception)" in bash_snippet("true")
