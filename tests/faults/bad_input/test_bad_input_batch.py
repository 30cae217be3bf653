"""Bad input to `codeflow batch` (the requests file and its source): refused with the file's
line, status 2, no traceback, nothing written and the model never asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from badinput import MB, PY_REPLY, run_refused
from modelserver import ModelServer

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
