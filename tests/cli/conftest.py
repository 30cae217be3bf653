"""Fixtures for CLI tests: the real `codeflow` command in a subprocess, against the loopback
model server, in a temporary working directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cliharness import Result
from cliharness import codeflow as run_codeflow
from modelserver import ModelServer


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def codeflow(tmp_path: Path, server: ModelServer) -> Callable[..., Result]:
    """Run `codeflow ARGS...` in tmp_path with the server's URL and a test key."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 180,
        input: str | None = None,
        use_server: bool = True,
    ) -> Result:
        base = server.env() if use_server else {}
        return run_codeflow(
            *args,
            cwd=tmp_path,
            env={**base, **(env or {})},
            home=tmp_path,
            timeout=timeout,
            input=input,
        )

    return run
