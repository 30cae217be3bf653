"""Fixtures for CLI tests: the real `codeflow` command in a subprocess, against the loopback
model server, in a temporary working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def clean_env(extra: dict[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    if home is not None:
        env["XDG_CONFIG_HOME"] = str(home / ".config")
    env.update(extra or {})
    return env


@pytest.fixture
def codeflow(tmp_path: Path, server: ModelServer):  # type: ignore[no-untyped-def]
    """Run `codeflow ARGS...` in tmp_path with the server's URL and a test key."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 180,
        input: str | None = None,
        use_server: bool = True,
    ) -> Result:
        base = server.env() if use_server else {}
        proc = subprocess.run(
            [*CODEFLOW, *args],
            cwd=tmp_path,
            env=clean_env({**base, **(env or {})}, home=tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
