"""Bad input at every front door: a clear one-line message, status 2, no traceback, and nothing
written (no cache entry, no output file, the work dir unchanged, the model never asked).

The CLI cases run the real `codeflow` command as a subprocess against the loopback model
server; the API cases use real `CodeFlow` objects; the magic cases run cells in a real IPython
InteractiveShell.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]
MB = 1024 * 1024
PY_REPLY = "Here is the code.\n```python\nprint('ran')\n```\n"


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under `root` with its kind, size and modification time."""
    out: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "dir" if path.is_dir() else "file"
            out[str(path.relative_to(root))] = (kind, st.st_size, st.st_mtime_ns)
    return out


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env.update(extra or {})
    return env


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def codeflow(tmp_path: Path, server: ModelServer):  # type: ignore[no-untyped-def]
    """Run `codeflow ARGS...` in tmp_path (arguments may be bytes: argv is bytes on Linux)."""

    def run(
        *args: str | bytes,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        timeout: float = 180,
    ) -> Result:
        proc = subprocess.run(
            [*CODEFLOW, *args],
            cwd=tmp_path,
            env=clean_env(tmp_path, {**server.env(), **(env or {})}),
            capture_output=True,
            input=stdin,
            timeout=timeout,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


def assert_refused(res: Result, *messages: str, status: int = 2) -> None:
    assert res.code == status, (res.code, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    for message in messages:
        assert message in res.stderr, (message, res.stderr)
    assert res.stdout == "", res.stdout


def run_refused(
    codeflow: Any,
    tmp_path: Path,
    server: ModelServer,
    args: Sequence[str | bytes],
    messages: tuple[str, ...],
    *,
    stdin: bytes = b"",
    files: dict[str, bytes] | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Write `files`, run the command, and check it was refused with nothing written."""
    for name, data in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    before = snapshot(tmp_path)
    res: Result = codeflow(*args, stdin=stdin, env=env)
    assert_refused(res, *messages)
    assert snapshot(tmp_path) == before, "the command wrote into the work dir"
    assert not (tmp_path / ".codeflow").exists(), "a cache folder was made"
    assert server.requests == [], "the model was asked"
    return res


# -- requests -----------------------------------------------------------------------------------

REQUEST_CASES: list[tuple[str, list[str | bytes], bytes, tuple[str, ...]]] = [
    ("empty-argument", ["ask", ""], b"", ("codeflow: the request is empty: say in plain words",)),
    ("whitespace-argument", ["ask", "  \t\n  "], b"", ("codeflow: the request is empty",)),
    ("empty-stdin", ["ask", "-"], b"", ("codeflow: stdin: the request is empty",)),
    ("whitespace-stdin", ["ask", "-"], b"  \n\t\n", ("codeflow: stdin: the request is empty",)),
    (
        "one-megabyte-stdin",
        ["ask", "-"],
        b"x" * MB,
        (
            f"stdin: the request is {MB} characters long; the limit is 100000 "
            "(generation.max_request_chars, at most 1000000)",
        ),
    ),
    (
        # one argv string can hold 128 KiB on Linux: past the limit, below the kernel's
        "long-argument",
        ["ask", "y" * 120_000],
        b"",
        ("codeflow: the request is 120000 characters long; the limit is 100000",),
    ),
    (
        "limit-from-override",
        ["ask", "-", "generation.max_request_chars=10"],
        b"eleven char",
        ("stdin: the request is 11 characters long; the limit is 10",),
    ),
    (
        "nul-on-stdin",
        ["ask", "-"],
        b"print\x00 hello",
        ("stdin: the request contains a NUL character (at character 5); a request is plain text",),
    ),
    (
        "invalid-utf8-on-stdin",
        ["ask", "-"],
        b"print h\xe9llo\n",
        ("stdin: not UTF-8 text (byte offset 7, line 1: invalid continuation byte)",),
    ),
    (
        "invalid-utf8-on-stdin-line-2",
        ["ask", "-"],
        b"first line\nsecond \xff\n",
        ("stdin: not UTF-8 text (byte offset 18, line 2: invalid start byte)",),
    ),
    (
        "invalid-utf8-argument",
        [b"ask", b"ab\xffcd"],
        b"",
        ("codeflow: the request is not UTF-8 text (byte offset 2)",),
    ),
]


@pytest.mark.parametrize(
    ("args", "stdin", "messages"),
    [pytest.param(a, s, m, id=i) for i, a, s, m in REQUEST_CASES],
)
def test_bad_request_is_refused_before_anything_runs(
    codeflow: Any,
    tmp_path: Path,
    server: ModelServer,
    args: list[str | bytes],
    stdin: bytes,
    messages: tuple[str, ...],
) -> None:
    run_refused(codeflow, tmp_path, server, args, messages, stdin=stdin)


def test_refused_long_request_is_not_echoed(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    """The message says where the request is; the megabyte itself is not thrown back."""
    res = run_refused(codeflow, tmp_path, server, ["ask", "-"], ("stdin:",), stdin=b"z" * MB)
    assert "zzzz" not in res.stderr and len(res.stderr) < 500


@pytest.mark.kernel
def test_a_request_exactly_at_the_limit_runs(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    server.add_rule(contains="forty", reply=PY_REPLY)
    request = b"forty characters of request, no more....."[:40]
    assert len(request) == 40
    res = codeflow(
        "ask",
        "-",
        "--format",
        "json",
        "--no-cache",
        "generation.max_request_chars=40",
        stdin=request,
    )
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["outputs"][0]["text"] == "ran\n"
    over = codeflow("ask", "-", "generation.max_request_chars=40", stdin=request + b"!")
    assert_refused(over, "stdin: the request is 41 characters long; the limit is 40")


# -- batch files --------------------------------------------------------------------------------

BATCH_CASES: list[tuple[str, bytes, tuple[str, ...]]] = [
    (
        "only-blank-lines",
        b"\n   \n\t\n",
        ("reqs.txt: no requests found (blank lines and lines starting with # are skipped)",),
    ),
    ("only-comments", b"# one\n\n# two\n", ("reqs.txt: no requests found",)),
    ("empty-file", b"", ("reqs.txt: no requests found",)),
    (
        "invalid-utf8",
        b"a fine request\n\xff\xfe a broken one\n",
        (
            "reqs.txt: not UTF-8 text (byte offset 15, line 2: invalid start byte); save it as UTF-8",
        ),
    ),
    (
        "nul-byte",
        b"a fine request\nbad\x00line\n",
        ("reqs.txt:2: the request contains a NUL character (at character 3)",),
    ),
    (
        "one-megabyte-line",
        b"a fine request\n\n" + b"w" * MB + b"\n",
        (f"reqs.txt:3: the request is {MB} characters long; the limit is 100000",),
    ),
    (
        "json-syntax",
        b'a fine request\n{"request": "x",\n',
        ("reqs.txt:2: not valid JSON (Expecting property name enclosed in double quotes",),
    ),
    (
        "json-nan",
        b'{"request": "x", "timeout": NaN}\n',
        ("reqs.txt:1: not valid JSON (NaN is not a JSON value)",),
    ),
    (
        "json-unknown-key",
        b'first\n\n{"request": "x", "max_atempts": 2}\n',
        (
            "reqs.txt:3: unknown key 'max_atempts' (did you mean 'max_attempts'?); allowed: "
            "check, focus, id, language, max_attempts, request, timeout, verify",
        ),
    ),
    (
        "json-request-not-text",
        b'{"request": 5}\n',
        ('reqs.txt:1: a JSON line needs "request" as a string of plain words',),
    ),
    ("json-request-missing", b'{"id": "a"}\n', ('reqs.txt:1: a JSON line needs "request"',)),
    ("json-request-blank", b'{"request": "   "}\n', ("reqs.txt:1: the request is empty",)),
    (
        "json-max-attempts-text",
        b'{"request": "x", "max_attempts": "3"}\n',
        ("reqs.txt:1: \"max_attempts\": '3' is not allowed; expected an integer from 1 to 50",),
    ),
    (
        "json-max-attempts-bool",
        b'{"request": "x", "max_attempts": true}\n',
        ('reqs.txt:1: "max_attempts": True is not allowed; expected an integer from 1 to 50',),
    ),
    (
        "json-max-attempts-absurd",
        b'{"request": "x", "max_attempts": 1000000000}\n',
        ('reqs.txt:1: "max_attempts": 1000000000 is out of range; expected an integer from 1',),
    ),
    (
        "json-timeout-negative",
        b'{"request": "x", "timeout": -1}\n',
        ('reqs.txt:1: "timeout": -1 is out of range; expected a number from 0.1 to 86400',),
    ),
    (
        "json-timeout-huge",
        b'{"request": "x", "timeout": 1e12}\n',
        ('reqs.txt:1: "timeout": 1000000000000.0 is out of range',),
    ),
    (
        "json-language",
        b'{"request": "x", "language": "cobol"}\n',
        ("reqs.txt:1: \"language\": 'cobol' is not allowed; expected one of python, bash, auto",),
    ),
    (
        "json-focus",
        b'{"request": "x", "focus": "robust"}\n',
        (
            "\"focus\": 'robust' is not allowed; expected one of fix_errors, optimize, robustness "
            "(did you mean 'robustness'?)",
        ),
    ),
    (
        "json-verify",
        b'{"request": "x", "verify": "yes"}\n',
        ("reqs.txt:1: \"verify\": 'yes' is not allowed; expected true or false",),
    ),
    (
        "json-check",
        b'{"request": "x", "check": 5}\n',
        ('reqs.txt:1: "check" must be a string of Python code',),
    ),
    (
        "json-id",
        b'{"request": "x", "id": [1]}\n',
        ('reqs.txt:1: "id" must be a string or a whole number',),
    ),
]


@pytest.mark.parametrize(
    ("content", "messages"), [pytest.param(c, m, id=i) for i, c, m in BATCH_CASES]
)
def test_bad_batch_file_is_refused_with_its_line(
    codeflow: Any, tmp_path: Path, server: ModelServer, content: bytes, messages: tuple[str, ...]
) -> None:
    run_refused(
        codeflow, tmp_path, server, ["batch", "reqs.txt"], messages, files={"reqs.txt": content}
    )


@pytest.mark.parametrize(
    ("args", "stdin", "messages"),
    [
        pytest.param(
            ["batch", "-"], b"", ("codeflow: stdin: no requests found",), id="empty-stdin"
        ),
        pytest.param(
            ["batch", "-"],
            b"ok\n\xc3\x28\n",
            ("stdin: not UTF-8 text (byte offset 3, line 2: invalid continuation byte)",),
            id="invalid-utf8-stdin",
        ),
        pytest.param(
            ["batch", "missing.txt"], b"", ("batch file not found: missing.txt",), id="missing"
        ),
        pytest.param(
            ["batch", "."], b"", ("batch file . is a directory, not a file",), id="directory"
        ),
    ],
)
def test_bad_batch_source_is_refused(
    codeflow: Any,
    tmp_path: Path,
    server: ModelServer,
    args: list[str | bytes],
    stdin: bytes,
    messages: tuple[str, ...],
) -> None:
    run_refused(codeflow, tmp_path, server, args, messages, stdin=stdin)


@pytest.mark.kernel
def test_batch_skips_blank_lines_and_comments(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    server.add_rule(contains="say", reply=PY_REPLY)
    (tmp_path / "reqs.txt").write_text(
        '\n# a comment\nsay one\n\n   \n{"request": "say two", "id": 0, "max_attempts": 1}\n'
    )
    res = codeflow("batch", "reqs.txt", "--no-cache", "-q", "--parallel", "1")
    assert res.code == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["request"] for r in records] == ["say one", "say two"]
    assert "id" not in records[0] and records[1]["id"] == 0  # an id of 0 is kept
    assert all(r["success"] for r in records)


# -- options ------------------------------------------------------------------------------------

OPTION_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("unknown-option", ["ask", "x", "--bogus"], ("unrecognized arguments: --bogus",)),
    ("unknown-global-option", ["--bogus", "ask", "x"], ("unrecognized arguments: --bogus",)),
    (
        "unknown-subcommand",
        ["frobnicate"],
        ("invalid choice: 'frobnicate' (choose from 'ask', 'batch', 'eval', 'run', 'new', 'scan', 'doctor'",),
    ),
    ("no-subcommand", [], ("COMMAND",)),
    (
        "unknown-backend",
        ["ask", "x", "--backend", "cloud"],
        (
            "argument --backend: invalid choice: 'cloud' (choose from 'kernel', 'sandbox', 'docker', "
            "'gateway')",
        ),
    ),
    (
        "unknown-language",
        ["ask", "x", "--language", "cobol"],
        ("argument --language: invalid choice: 'cobol' (choose from 'python', 'bash', 'auto')",),
    ),
    (
        "unknown-focus",
        ["ask", "x", "--focus", "fastest"],
        (
            "argument --focus: invalid choice: 'fastest' (choose from 'fix_errors', 'optimize', "
            "'robustness')",
        ),
    ),
    (
        "unknown-format",
        ["ask", "x", "--format", "yaml"],
        ("argument --format: invalid choice: 'yaml' (choose from 'markdown', 'json', 'plain')",),
    ),
    (
        "unknown-scan-policy",
        ["ask", "x", "--scan", "paranoid"],
        (
            "argument --scan: invalid choice: 'paranoid' (choose from 'block', 'strict', 'warn', "
            "'off')",
        ),
    ),
    (
        "unknown-cache-mode",
        ["ask", "x", "--cache-mode", "sometimes"],
        ("argument --cache-mode: invalid choice: 'sometimes' (choose from 'rw', 'replay', 'off')",),
    ),
    (
        "unknown-install-mode",
        ["batch", "f", "--install-missing", "always"],
        ("argument --install-missing: invalid choice: 'always'",),
    ),
    (
        "max-attempts-zero",
        ["ask", "x", "--max-attempts", "0"],
        ("argument --max-attempts: '0' is out of range; expected an integer from 1 to 50",),
    ),
    (
        "max-attempts-negative",
        ["ask", "x", "--max-attempts", "-1"],
        ("argument --max-attempts: '-1' is out of range; expected an integer from 1 to 50",),
    ),
    (
        "max-attempts-absurd",
        ["ask", "x", "--max-attempts", str(10**9)],
        ("argument --max-attempts: '1000000000' is out of range",),
    ),
    (
        "max-attempts-word",
        ["ask", "x", "--max-attempts", "three"],
        ("argument --max-attempts: 'three' is not a whole number",),
    ),
    (
        "max-attempts-fraction",
        ["batch", "f", "--max-attempts", "2.5"],
        ("argument --max-attempts: '2.5' is not a whole number",),
    ),
    (
        "timeout-negative",
        ["ask", "x", "--timeout", "-1"],
        ("argument --timeout: '-1' is out of range; expected a number from 0.1 to 86400",),
    ),
    ("timeout-zero", ["ask", "x", "--timeout", "0"], ("argument --timeout: '0' is out of range",)),
    (
        "timeout-nan",
        ["ask", "x", "--timeout", "nan"],
        ("argument --timeout: 'nan' is not a finite number; expected a number from 0.1 to 86400",),
    ),
    (
        "timeout-inf",
        ["ask", "x", "--timeout", "inf"],
        ("argument --timeout: 'inf' is not a finite number",),
    ),
    (
        "timeout-absurd",
        ["ask", "x", "--timeout", "1e12"],
        ("argument --timeout: '1e12' is out of range; expected a number from 0.1 to 86400",),
    ),
    (
        "timeout-word",
        ["ask", "x", "--timeout", "soon"],
        ("argument --timeout: 'soon' is not a number",),
    ),
    (
        "parallel-zero",
        ["batch", "f", "--parallel", "0"],
        ("argument --parallel: '0' is out of range; expected an integer from 1 to 64",),
    ),
    (
        "parallel-negative",
        ["batch", "f", "--parallel", "-3"],
        ("argument --parallel: '-3' is out of range; expected an integer from 1 to 64",),
    ),
    (
        "parallel-absurd",
        ["batch", "f", "--parallel", "100000"],
        ("argument --parallel: '100000' is out of range; expected an integer from 1 to 64",),
    ),
    (
        "parallel-word",
        ["batch", "f", "--parallel", "many"],
        ("argument --parallel: 'many' is not a whole number",),
    ),
    (
        "memory-limit-garbage",
        ["ask", "x", "--memory-limit", "lots"],
        (
            "argument --memory-limit: 'lots' is not allowed; expected a size such as 512m or 2g, "
            "from 32m to 1t",
        ),
    ),
    (
        "memory-limit-tiny",
        ["ask", "x", "--memory-limit", "1k"],
        ("argument --memory-limit: '1k' is not allowed",),
    ),
    (
        "memory-limit-absurd",
        ["ask", "x", "--memory-limit", "5t"],
        ("argument --memory-limit: '5t' is not allowed",),
    ),
    (
        "cpu-limit-negative",
        ["ask", "x", "--cpu-limit", "-1"],
        ("argument --cpu-limit: '-1' is out of range; expected a number from 0.05 to 1024",),
    ),
    (
        "cpu-limit-nan",
        ["ask", "x", "--cpu-limit", "nan"],
        ("argument --cpu-limit: 'nan' is not a finite number",),
    ),
    (
        "cpu-limit-absurd",
        ["ask", "x", "--cpu-limit", "5000"],
        ("argument --cpu-limit: '5000' is out of range",),
    ),
    (
        "gateway-url",
        ["ask", "x", "--gateway-url", "ftp://host"],
        (
            "argument --gateway-url: 'ftp://host' is not allowed; expected an http:// or https:// "
            "URL",
        ),
    ),
    (
        "work-dir-missing",
        ["ask", "x", "--work-dir", "nowhere"],
        ("--work-dir is not a directory: nowhere",),
    ),
    ("missing-value", ["ask", "x", "--timeout"], ("argument --timeout: expected one argument",)),
    (
        "unknown-model-provider",
        ["ask", "x", "--model", "gemini:pro"],
        (
            "generation.model: 'gemini:pro' is not a model; write anthropic:<model>, "
            "openai:<model> or a bare Anthropic model name",
        ),
    ),
    (
        # checked before the kernel pool starts
        "model-without-name",
        ["batch", "f", "--model", "openai:"],
        ("generation.model: 'openai:' is not a model",),
    ),
]


@pytest.mark.parametrize(
    ("args", "messages"), [pytest.param(a, m, id=i) for i, a, m in OPTION_CASES]
)
def test_bad_option_is_refused(
    codeflow: Any, tmp_path: Path, server: ModelServer, args: list[str], messages: tuple[str, ...]
) -> None:
    # `f` exists so that batch cases fail on the option, not on the file
    run_refused(codeflow, tmp_path, server, args, messages, files={"f": b"a request\n"})


# -- dotted overrides and the environment -------------------------------------------------------

OVERRIDE_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    (
        "fix-model",
        ["improvement.model=gemini:pro"],
        ("improvement.model: 'gemini:pro' is not a model",),
    ),
    (
        "unknown-name",
        ["generation.nope=1"],
        (
            "unknown setting 'generation.nope'; generation has: base_url, environment, language, "
            "max_request_chars",
        ),
    ),
    (
        "misspelt-name",
        ["improvement.max_atempts=2"],
        ("unknown setting 'improvement.max_atempts' (did you mean 'improvement.max_attempts'?)",),
    ),
    (
        "no-section",
        ["max_attempts=2"],
        ("unknown setting 'max_attempts' (did you mean 'improvement.max_attempts'?)",),
    ),
    (
        "misspelt-section",
        ["improvment.max_attempts=2"],
        ("unknown setting 'improvment.max_attempts' (did you mean 'improvement.max_attempts'?)",),
    ),
    ("empty-key", ["=5"], ("unknown setting ''",)),
    (
        "not-a-number",
        ["generation.max_tokens=abc"],
        (
            "generation.max_tokens: 'abc' is not a whole number; expected an integer from 64 to "
            "200000",
        ),
    ),
    (
        "absurd-number",
        ["generation.max_tokens=10000000000"],
        ("generation.max_tokens: '10000000000' is out of range",),
    ),
    (
        "float-for-int",
        ["improvement.max_attempts=1e3"],
        ("improvement.max_attempts: '1e3' is not a whole number",),
    ),
    ("nan", ["execution.timeout=nan"], ("execution.timeout: 'nan' is not a finite number",)),
    (
        "request-limit-too-high",
        ["generation.max_request_chars=2000000"],
        (
            "generation.max_request_chars: '2000000' is out of range; expected an integer from 1 to "
            "1000000",
        ),
    ),
    (
        "enum-typo",
        ["execution.backend=dokcer"],
        (
            "execution.backend: 'dokcer' is not allowed; expected one of kernel, inline, sandbox, "
            "docker, gateway (did you mean 'docker'?)",
        ),
    ),
    (
        "bool",
        ["improvement.verify=maybe"],
        ("improvement.verify: 'maybe' is not allowed; expected true or false",),
    ),
    (
        "memory-size",
        ["execution.memory_limit=lots"],
        ("execution.memory_limit: 'lots' is not allowed; expected a size such as 512m",),
    ),
    (
        "pids-absurd",
        ["execution.pids_limit=999999999"],
        ("execution.pids_limit: '999999999' is out of range; expected an integer from 8 to 65536",),
    ),
]


def test_a_huge_bad_value_is_quoted_short(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    res = run_refused(
        codeflow,
        tmp_path,
        server,
        ["ask", "x", "generation.language=" + "p" * 100_000],
        ("generation.language: 'pppp", "... (100002 characters) is not allowed; expected one of"),
    )
    assert len(res.stderr) < 300


@pytest.mark.parametrize(
    ("overrides", "messages"), [pytest.param(o, m, id=i) for i, o, m in OVERRIDE_CASES]
)
def test_bad_dotted_override_is_refused(
    codeflow: Any,
    tmp_path: Path,
    server: ModelServer,
    overrides: list[str],
    messages: tuple[str, ...],
) -> None:
    run_refused(codeflow, tmp_path, server, ["ask", "x", *overrides], messages)


@pytest.mark.parametrize("command", [["ask", "x"], ["batch", "f"]])
def test_bad_cache_mode_in_the_environment_is_refused(
    codeflow: Any, tmp_path: Path, server: ModelServer, command: list[str]
) -> None:
    run_refused(
        codeflow,
        tmp_path,
        server,
        command,
        ("codeflow: CODEFLOW_CACHE: 'bogus' is not allowed; expected one of off, replay, rw",),
        files={"f": b"a request\n"},
        env={"CODEFLOW_CACHE": "bogus"},
    )


# -- config files -------------------------------------------------------------------------------

CONFIG_CASES: list[tuple[str, bytes, tuple[str, ...]]] = [
    (
        "syntax-error",
        b"improvement:\n  max_attempts: 3\n   focus: optimize\n",
        ("cfg.yaml:3: not valid YAML: mapping values are not allowed here",),
    ),
    (
        "unclosed-bracket",
        b"execution:\n  secret_env: [A, B\n",
        ("cfg.yaml:3: not valid YAML",),
    ),
    (
        "wrong-type-list",
        b"improvement:\n  verify: true\n  max_attempts: [1]\n",
        (
            "cfg.yaml:3: improvement.max_attempts: [1] is not allowed; expected an integer from 1 to "
            "50",
        ),
    ),
    (
        "wrong-type-bool-for-int",
        b"improvement:\n  max_attempts: yes\n",
        ("cfg.yaml:2: improvement.max_attempts: True is not allowed",),
    ),
    (
        "wrong-type-text-for-number",
        b"execution:\n  timeout: fast\n",
        (
            "cfg.yaml:2: execution.timeout: 'fast' is not a number; expected a number from 0.1 to "
            "86400",
        ),
    ),
    (
        "nan",
        b"execution:\n  timeout: .nan\n",
        ("cfg.yaml:2: execution.timeout: nan is not a finite",),
    ),
    (
        "unknown-key",
        b"improvement:\n  verify: true\n  max_atempts: 2\n",
        (
            "cfg.yaml:3: unknown setting 'improvement.max_atempts' (did you mean "
            "'improvement.max_attempts'?)",
        ),
    ),
    (
        "unknown-section",
        b"# settings\nimprovment:\n  max_attempts: 2\n",
        (
            "cfg.yaml:2: unknown section 'improvment' (did you mean 'improvement'?); sections are "
            "generation, execution, improvement, response, cache",
        ),
    ),
    (
        "seed-shape-nested",
        b"flows:\n  code_execution:\n    enabled: true\n    execution:\n      timeout: -5\n",
        ("cfg.yaml:5: execution.timeout: -5 is out of range",),
    ),
    (
        "section-not-a-mapping",
        b"generation:\n  model: x\nexecution: fast\n",
        ("cfg.yaml:3: section 'execution' must be a mapping of settings",),
    ),
    ("top-level-list", b"- a\n- b\n", ("cfg.yaml: the top level must be a mapping of sections",)),
    (
        "not-utf8",
        b"generation:\n  model: caf\xe9\n",
        ("cfg.yaml: not UTF-8 text (byte offset 24, line 2: invalid continuation byte)",),
    ),
    (
        "nul-byte",
        b"generation:\n  model: a\x00b\n",
        ("cfg.yaml:2: not valid YAML: character U+0000 is not allowed",),
    ),
]


@pytest.mark.parametrize(
    ("content", "messages"), [pytest.param(c, m, id=i) for i, c, m in CONFIG_CASES]
)
def test_bad_config_file_is_refused_with_file_and_line(
    codeflow: Any, tmp_path: Path, server: ModelServer, content: bytes, messages: tuple[str, ...]
) -> None:
    run_refused(
        codeflow,
        tmp_path,
        server,
        ["ask", "x", "--config", "cfg.yaml"],
        messages,
        files={"cfg.yaml": content},
    )


def test_bad_config_in_the_default_locations_is_refused(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    """The work dir's codeflow.yaml, then the user's: each named by its own path."""
    user = tmp_path / ".config" / "codeflow" / "codeflow.yaml"
    run_refused(
        codeflow,
        tmp_path,
        server,
        ["ask", "x"],
        (f"{user}: not UTF-8 text (byte offset 12, line 2: invalid start byte)",),
        files={".config/codeflow/codeflow.yaml": b"generation:\n\xff\n"},
    )
    run_refused(
        codeflow,
        tmp_path,
        server,
        ["batch", "f"],
        (f"{tmp_path / 'codeflow.yaml'}:2: not valid YAML",),
        files={"codeflow.yaml": b"improvement: [unclosed\n", "f": b"a request\n"},
    )


@pytest.mark.parametrize(
    ("path", "messages"),
    [
        pytest.param("missing.yaml", ("config file not found: missing.yaml",), id="missing"),
        pytest.param("folder", ("config file folder is a directory, not a file",), id="directory"),
    ],
)
def test_config_file_that_is_not_a_file_is_refused(
    codeflow: Any, tmp_path: Path, server: ModelServer, path: str, messages: tuple[str, ...]
) -> None:
    (tmp_path / "folder").mkdir()
    run_refused(codeflow, tmp_path, server, ["ask", "x", "--config", path], messages)


def test_config_folder_in_the_default_location_is_refused(
    codeflow: Any, tmp_path: Path, server: ModelServer
) -> None:
    (tmp_path / "codeflow.yaml").mkdir()
    run_refused(
        codeflow,
        tmp_path,
        server,
        ["ask", "x"],
        (f"config file {tmp_path / 'codeflow.yaml'} is a directory, not a file",),
    )


# -- scan, doctor, sandbox build ----------------------------------------------------------------

OTHER_COMMAND_CASES: list[tuple[str, list[str], dict[str, bytes], tuple[str, ...]]] = [
    (
        "scan-not-utf8",
        ["scan", "code.py"],
        {"code.py": b"import os\nname = 'caf\xe9'\n"},
        ("code.py: not utf-8 text (byte offset 21, line 2: invalid continuation byte)",),
    ),
    (
        "scan-unknown-cookie",
        ["scan", "code.py"],
        {"code.py": b"# -*- coding: klingon -*-\nx = 1\n"},
        ("code.py: unknown encoding: klingon",),
    ),
    (
        "scan-shell-not-utf8",
        ["scan", "run.sh"],
        {"run.sh": b"echo \xff\n"},
        ("run.sh: not utf-8 text (byte offset 5, line 1: invalid start byte)",),
    ),
    (
        "scan-unknown-language",
        ["scan", "code.py", "--language", "cobol"],
        {"code.py": b"x = 1\n"},
        ("argument --language: invalid choice: 'cobol'",),
    ),
    (
        "scan-unknown-extension",
        ["scan", "notes.txt"],
        {"notes.txt": b"x = 1\n"},
        ("cannot tell the language of notes.txt from its extension; pass --language",),
    ),
    (
        "scan-unknown-format",
        ["scan", "code.py", "--format", "xml"],
        {"code.py": b"x = 1\n"},
        ("argument --format: invalid choice: 'xml' (choose from 'text', 'json')",),
    ),
    (
        "scan-unknown-severity",
        ["scan", "code.py", "--fail-on", "extreme"],
        {"code.py": b"x = 1\n"},
        ("argument --fail-on: invalid choice: 'extreme'",),
    ),
    ("scan-missing", ["scan", "gone.py"], {}, ("no such file: gone.py",)),
    ("scan-directory", ["scan", "."], {}, (". is a directory; pass files",)),
    (
        "doctor-unknown-backend",
        ["doctor", "--backend", "cloud"],
        {},
        (
            "argument --backend: invalid choice: 'cloud' (choose from 'kernel', 'inline', 'sandbox', "
            "'docker', 'gateway')",
        ),
    ),
    (
        "doctor-unknown-format",
        ["doctor", "--format", "yaml"],
        {},
        ("argument --format: invalid choice: 'yaml'",),
    ),
    (
        "doctor-bad-override",
        ["doctor", "generation.nope=1"],
        {},
        ("unknown setting 'generation.nope'",),
    ),
    (
        "doctor-bare-word",
        ["doctor", "kernel"],
        {},
        ("override 'kernel' is not of the form section.name=value",),
    ),
    (
        "doctor-bad-gateway-url",
        ["doctor", "--gateway-url", "localhost:8888"],
        {},
        (
            "execution.gateway_url: 'localhost:8888' is not allowed; expected an http:// or https://",
        ),
    ),
    ("sandbox-no-action", ["sandbox"], {}, ("the following arguments are required: ACTION",)),
    ("sandbox-unknown-action", ["sandbox", "destroy"], {}, ("invalid choice: 'destroy'",)),
    (
        "sandbox-bad-image",
        ["sandbox", "build", "--image", "My Image!"],
        {},
        ("'My Image!' is not a docker image name; write it as name[:tag] in lower case",),
    ),
    (
        "sandbox-bad-package",
        ["sandbox", "build", "--packages", "numpy,;rm -rf /"],
        {},
        ("';rm -rf /' is not a package name or requirement",),
    ),
    (
        "sandbox-bad-set",
        ["sandbox", "build", "--set", "execution.docker_imag=x"],
        {},
        ("unknown setting 'execution.docker_imag' (did you mean 'execution.docker_image'?)",),
    ),
]


@pytest.mark.parametrize(
    ("args", "files", "messages"),
    [pytest.param(a, f, m, id=i) for i, a, f, m in OTHER_COMMAND_CASES],
)
def test_bad_input_to_scan_doctor_and_sandbox_build_is_refused(
    codeflow: Any,
    tmp_path: Path,
    server: ModelServer,
    args: list[str],
    files: dict[str, bytes],
    messages: tuple[str, ...],
) -> None:
    # no docker for `sandbox build`: a validation that slipped would fail with status 4, not 2
    run_refused(
        codeflow, tmp_path, server, args, messages, files=files, env={"CODEFLOW_DOCKER": ""}
    )


def test_scan_honours_a_coding_cookie(codeflow: Any, tmp_path: Path) -> None:
    """A Python file in the encoding it declares is text, as Python itself reads it."""
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n")
    res = codeflow("scan", "latin.py")
    assert res.code == 0, res.stderr
    assert "latin.py (python): none, no findings" in res.stdout


# -- the Python API -----------------------------------------------------------------------------


@pytest.fixture
def api_env(tmp_path: Path, server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The loopback model, no stray settings, and tmp_path as the work dir."""
    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_")):
            monkeypatch.delenv(key)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"settings": {"generation": {}}},
            "settings must come from codeflow_magic.config.load_settings(), not a dict",
            id="settings-dict",
        ),
        pytest.param(
            {"backend": "cloud"},
            "unknown backend 'cloud'; choose one of kernel, inline, sandbox, docker, gateway",
            id="backend",
        ),
        pytest.param(
            {"backend": "dockr"}, "unknown backend 'dockr' (did you mean 'docker'?)", id="typo"
        ),
        pytest.param({"backend": 3}, "unknown backend 3", id="backend-not-text"),
        pytest.param(
            {"cache_mode": "sometimes"},
            "unknown cache_mode 'sometimes'; choose one of off, replay, rw",
            id="cache-mode",
        ),
        pytest.param(
            {"work_dir": "nowhere"}, "work_dir is not a directory: nowhere", id="work-dir"
        ),
        pytest.param({"work_dir": 5}, "work_dir must be a path, not a int", id="work-dir-type"),
        pytest.param(
            {"cache_dir": "file.txt"}, "cache_dir is not a directory: file.txt", id="cache-dir"
        ),
    ],
)
def test_api_constructor_refuses_bad_arguments(
    api_env: Path, kwargs: dict[str, Any], message: str
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    (api_env / "file.txt").write_text("not a folder")
    before = snapshot(api_env)
    with pytest.raises(UsageError) as info:
        CodeFlow(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert snapshot(api_env) == before


def test_api_constructor_refuses_a_bad_cache_mode_in_the_environment(
    api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    monkeypatch.setenv("CODEFLOW_CACHE", "bogus")
    with pytest.raises(UsageError, match="CODEFLOW_CACHE: 'bogus' is not allowed"):
        CodeFlow()
    assert snapshot(api_env) == {}


def _long() -> str:
    return "v" * MB


@pytest.mark.parametrize(
    ("request_text", "kwargs", "message"),
    [
        pytest.param("", {}, "the request is empty: say in plain words", id="empty"),
        pytest.param(" \n\t", {}, "the request is empty", id="whitespace"),
        pytest.param(
            None, {}, "the request must be a str of plain words, not a NoneType", id="none"
        ),
        pytest.param(
            b"print 1", {}, "the request must be a str of plain words, not a bytes", id="bytes"
        ),
        pytest.param(
            "long", {}, f"the request is {MB} characters long; the limit is 100000", id="1MB"
        ),
        pytest.param(
            "a\x00b", {}, "the request contains a NUL character (at character 1)", id="nul"
        ),
        pytest.param(
            "ab\udcffc", {}, "the request is not UTF-8 text (byte offset 2)", id="surrogate"
        ),
        pytest.param(
            "x",
            {"max_attempts": 0},
            "max_attempts: 0 is out of range; expected an integer from 1 to 50",
            id="attempts-0",
        ),
        pytest.param(
            "x", {"max_attempts": -1}, "max_attempts: -1 is out of range", id="attempts-neg"
        ),
        pytest.param(
            "x",
            {"max_attempts": 10**9},
            "max_attempts: 1000000000 is out of range",
            id="attempts-big",
        ),
        pytest.param(
            "x", {"max_attempts": True}, "max_attempts: True is not allowed", id="attempts-bool"
        ),
        pytest.param(
            "x", {"max_attempts": "3"}, "max_attempts: '3' is not allowed", id="attempts-text"
        ),
        pytest.param(
            "x", {"timeout": math.nan}, "timeout: nan is not a finite number", id="timeout-nan"
        ),
        pytest.param(
            "x", {"timeout": math.inf}, "timeout: inf is not a finite number", id="timeout-inf"
        ),
        pytest.param("x", {"timeout": -1}, "timeout: -1 is out of range", id="timeout-neg"),
        pytest.param(
            "x", {"timeout": 1e12}, "timeout: 1000000000000.0 is out of range", id="timeout-big"
        ),
        pytest.param(
            "x",
            {"language": "cobol"},
            "language: 'cobol' is not allowed; expected one of python, bash, auto",
            id="language",
        ),
        pytest.param(
            "x", {"focus": "speed"}, "focus: 'speed' is not allowed; expected one of", id="focus"
        ),
        pytest.param(
            "x",
            {"scan": "paranoid"},
            "scan: 'paranoid' is not allowed; expected one of block, strict, warn, off",
            id="scan",
        ),
        pytest.param("x", {"verify": "yes"}, "verify: 'yes' is not allowed", id="verify"),
        pytest.param("x", {"improve": "no"}, "improve: 'no' is not allowed", id="improve"),
        pytest.param("x", {"check": 5}, "check must be a str, not a int", id="check"),
        pytest.param("x", {"on_event": "print"}, "on_event must be a callable", id="on-event"),
        pytest.param(
            "x",
            {"max_atempts": 2},
            "run() got an unknown option 'max_atempts' (did you mean 'max_attempts'?)",
            id="unknown-keyword",
        ),
    ],
)
def test_api_run_refuses_bad_arguments_before_anything_starts(
    api_env: Path,
    server: ModelServer,
    request_text: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    if request_text == "long":
        request_text = _long()
    before = snapshot(api_env)
    cf = CodeFlow()
    try:
        with pytest.raises(UsageError) as info:
            cf.run(request_text, **kwargs)
        assert cf._executor is None and cf._provider is None  # no kernel, no client
    finally:
        cf.close()
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert snapshot(api_env) == before
    assert server.requests == []


async def test_api_arun_refuses_bad_arguments(api_env: Path, server: ModelServer) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    async with CodeFlow() as cf:
        with pytest.raises(UsageError, match="timeout: nan is not a finite number"):
            await cf.arun("x", timeout=math.nan)
        with pytest.raises(UsageError, match="the request is empty"):
            await cf.arun("   ")
    assert snapshot(api_env) == {} and server.requests == []


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
