"""Bad input to `codeflow ask` (requests, options, dotted overrides, the environment, config
files): a clear one-line message, status 2, no traceback, and nothing written (no cache
entry, no output file, the work dir unchanged, the model never asked).

The cases run the real `codeflow` command as a subprocess against the loopback model server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from badinput import MB, PY_REPLY, assert_refused, run_refused
from modelserver import ModelServer

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


# -- options ------------------------------------------------------------------------------------

OPTION_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    ("unknown-option", ["ask", "x", "--bogus"], ("unrecognized arguments: --bogus",)),
    ("unknown-global-option", ["--bogus", "ask", "x"], ("unrecognized arguments: --bogus",)),
    (
        "unknown-subcommand",
        ["frobnicate"],
        (
            "invalid choice: 'frobnicate' (choose from 'ask', 'batch', 'eval', 'run', 'new', 'scan', 'doctor'",
        ),
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
