"""Fixtures for the grounding tests: the real `codeflow` command against the loopback model
server, in a temporary working directory that holds the data files a request names."""

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

    def run(*args: str, timeout: float = 180) -> Result:
        return run_codeflow(*args, cwd=tmp_path, env=server.env(), home=tmp_path, timeout=timeout)

    return run
