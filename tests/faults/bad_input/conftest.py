"""Fixtures of the bad-input tests: the loopback model server, the `codeflow` command run
as a subprocess against it, and the environment for the API and magic cases."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from badinput import CODEFLOW, Result, clean_env
from modelserver import ModelServer


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
