"""Shared test helpers.

In CI (`CODEFLOW_REQUIRE_ALL=1`) a test that would skip because a tool is missing (bubblewrap,
docker, chromium, a gateway) fails instead: CI installs every tool, so a skip there hides a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from needs import REPO_ROOT, REQUIRE_ALL, need  # noqa: E402,F401 - re-exported for fixtures


@pytest.fixture
def model_server():  # type: ignore[no-untyped-def]
    """A fresh loopback model server per test (unmatched prompts get a 500 naming them)."""
    from modelserver import ModelServer

    with ModelServer() as server:
        yield server
