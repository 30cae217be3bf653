"""End to end through `codeflow ask` (real CLI process, real kernel, loopback model server):
the user's keys never reach generated code, the model, the record or the cache, and harmful
code is stopped before it runs, explained to the model, and replaced."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer

pytestmark = pytest.mark.kernel

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]


def py(code: str, note: str = "") -> str:
    return f"Here is the code.\n```python\n{code}\n```\n{note}"


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def ask(
    tmp_path: Path, server: ModelServer, *args: str, env: dict[str, str]
) -> tuple[int, Any, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    base.update(server.env())
    # A throwaway HOME: if the scanner ever let destructive code through, it hits this.
    base.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    base.update(env)
    proc = subprocess.run(
        [*CODEFLOW, "ask", *args, "--format", "json"],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    record = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    return proc.returncode, record, proc.stderr


def test_keys_reach_no_prompt_record_or_cache(tmp_path: Path, server: ModelServer) -> None:
    api_key = "sk-ant-test-SECRET-" + secrets.token_hex(12)
    db_password = "pw-" + secrets.token_hex(12)
    first = (
        "import os\n"
        "print(dict(os.environ))\n"
        "print('key:', os.environ.get('ANTHROPIC_API_KEY', 'missing'))\n"
        "print('db:', os.environ.get('WAREHOUSE_PASSWORD', 'missing'))\n"
        "parent = open(f'/proc/{os.getppid()}/environ', 'rb').read().decode('latin-1')\n"
        "raise RuntimeError(parent)\n"
    )
    server.enqueue(py(first), py("print('done')", "Fix: stop reading the environment."))
    code, record, stderr = ask(
        tmp_path,
        server,
        "show environment",
        "--scan",
        "block",
        env={"ANTHROPIC_API_KEY": api_key, "WAREHOUSE_PASSWORD": db_password},
    )
    assert code == 0, stderr
    assert record is not None and record["success"] is True
    first_outputs = json.dumps(record["attempts"][0]["outputs"])
    assert "key: missing" in first_outputs and "db: missing" in first_outputs
    assert len(server.requests) == 2  # the failure went back to the model
    # The parent's environment did carry the key into the error: it was redacted on the way.
    assert "[REDACTED:ANTHROPIC_API_KEY]" in json.dumps(server.requests[1].body)
    for req in server.requests:
        body = json.dumps(req.body)
        assert api_key not in body and db_password not in body
    dumped = json.dumps(record)
    assert api_key not in dumped and db_password not in dumped
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert api_key.encode() not in data, path
            assert db_password.encode() not in data, path


def test_destructive_reply_is_stopped_explained_and_replaced(
    tmp_path: Path, server: ModelServer
) -> None:
    sentinel = tmp_path / "home" / "keep.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("still here")
    server.enqueue(
        py("import shutil, os; shutil.rmtree(os.path.expanduser('~'))"),
        py("print('cleaned the work dir only')", "Fix: only touch files in the work dir."),
    )
    code, record, stderr = ask(tmp_path, server, "clean up", "--scan", "block", env={})
    assert code == 0, stderr
    assert sentinel.read_text() == "still here"
    assert record is not None
    first, second = record["attempts"][0], record["attempts"][1]
    assert first["success"] is False
    assert first["error"]["category"] == "security"
    assert first["outputs"] == []  # never executed
    assert second["success"] is True
    assert "cleaned the work dir only" in json.dumps(second["outputs"])
    assert len(server.requests) == 2
    retry_prompt = json.dumps(server.requests[1].body)
    assert "deletes the home directory" in retry_prompt
