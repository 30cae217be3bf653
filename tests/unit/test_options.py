"""The option table read the way each front door reads it."""

from __future__ import annotations

import argparse

from codeflow_magic.frontend import normalize_settings
from codeflow_magic.options import FLOW_OPTIONS, add_options, settings_from
from codeflow_magic.runner import writeback_mode


def test_a_magic_line_is_read_with_the_magics_own_quoting() -> None:
    assert writeback_mode("--replace") == "replace"
    assert writeback_mode("--no-writeback --replace") == "off"
    # a word inside a quoted option value is not an option
    assert writeback_mode("--check \"x == '--replace'\"") == "below"
    assert writeback_mode('--check "unclosed') == "below"


def test_switches_and_values_become_the_settings_they_stand_for() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, FLOW_OPTIONS)
    given = parser.parse_args(["--no-improve", "--review", "--max-attempts", "4", "--scan", "warn"])
    assert settings_from(given, FLOW_OPTIONS) == {
        "improvement.enabled": False,
        "execution.review": "always",
        "improvement.max_attempts": 4,
        "execution.scan": "warn",
    }
    # options not given set nothing, and --no-cache/--cache-mode are not settings
    assert settings_from(parser.parse_args(["--no-cache"]), FLOW_OPTIONS) == {}


def test_the_settings_editor_values_are_kept_by_their_python_names() -> None:
    raw = {"maxAttempts": 5, "backend": "Docker", "writeback": False, "model": " m "}
    assert normalize_settings(raw) == {
        "model": "m",
        "max_attempts": 5,
        "backend": "docker",
        "writeback": False,
    }
    bad = {"maxAttempts": 51, "backend": "nowhere", "writeback": "no", "model": 3}
    assert normalize_settings(bad) == {}
