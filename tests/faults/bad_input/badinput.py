"""Helpers shared by the bad-input tests of every front door (`tests/faults/bad_input/`):
the run result, the work-dir snapshot that proves nothing was written, and the check that a
command was refused with a one-line message, status 2 and no traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserver import ModelServer

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]
MB = 1024 * 1024
PY_REPLY = "Here is the code.\n```python\nprint('ran')\n```\n"


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
