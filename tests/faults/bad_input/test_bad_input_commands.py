"""Bad input to `codeflow scan`, `codeflow doctor` and `codeflow sandbox build`: refused with
one line, status 2, no traceback and nothing written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from badinput import run_refused
from modelserver import ModelServer

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
