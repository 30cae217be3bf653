"""Tool requirements for tests, importable by a name no other test module shadows.

In CI (`CODEFLOW_REQUIRE_ALL=1`) a test that would skip because a tool is missing (bubblewrap,
docker, chromium, a gateway) fails instead: CI installs every tool, so a skip there hides a bug.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("CODEFLOW_REQUIRE_ALL", "") not in ("", "0")


def need(available: bool, reason: str) -> None:
    """Skip when `available` is false, or fail when CI requires every tool."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)
