"""Fixtures for provider tests: a scripted model server on loopback, and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelserver import ModelServer


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A fresh server per test; unmatched prompts get a 500 naming the prompt."""
    with ModelServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_model_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credential, base URL or cache mode from the outer environment leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "OPENAI_")) or name == "CODEFLOW_CACHE":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no credentials profile of the machine's user
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
