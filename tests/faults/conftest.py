"""Fixtures shared by the fault tests (add fixtures here; do not remove any)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

CODEFLOW_CLI = [sys.executable, "-m", "codeflow_magic.cli"]


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str


def faults_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a `codeflow` subprocess: no keys or settings of ours, config
    and cache folders under `home`, and no pytest marker (ipykernel behaves differently under
    pytest, and the kernels these runs start should behave as they do for users)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_")) and k != "PYTEST_CURRENT_TEST"
    }
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env.update(extra or {})
    return env


@pytest.fixture
def write_notebook() -> Callable[..., Path]:
    """Write a python3 notebook of code cells (ids `cell-0`, `cell-1`, ...) to a path."""

    def write(path: Path, cells: Sequence[str], **metadata: Any) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata.update(metadata)
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        for index, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{index}"
        path.write_text(nbformat.writes(nb), encoding="utf-8")
        return path

    return write


@pytest.fixture
def codeflow_cli(tmp_path: Path) -> Callable[..., CLIResult]:
    """Run `codeflow ARGS...` to completion in tmp_path (env: `faults_env` plus `env`)."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
    ) -> CLIResult:
        proc = subprocess.run(
            [*CODEFLOW_CLI, *args],
            cwd=cwd or tmp_path,
            env=faults_env(tmp_path, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CLIResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def codeflow_popen(tmp_path: Path) -> Callable[..., subprocess.Popen[str]]:
    """Start `codeflow ARGS...` in tmp_path without waiting (stdout and stderr piped, text)."""

    def start(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CODEFLOW_CLI, *args],
            cwd=cwd or tmp_path,
            env=faults_env(tmp_path, env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start
