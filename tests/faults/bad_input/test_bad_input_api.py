"""Bad arguments to the Python API (real `CodeFlow` objects): a `UsageError` of one line,
raised before anything starts, with nothing written and the model never asked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from badinput import MB, snapshot
from modelserver import ModelServer

# -- the Python API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"settings": {"generation": {}}},
            "settings must come from codeflow_magic.config.load_settings(), not a dict",
            id="settings-dict",
        ),
        pytest.param(
            {"backend": "cloud"},
            "unknown backend 'cloud'; choose one of kernel, inline, sandbox, docker, gateway",
            id="backend",
        ),
        pytest.param(
            {"backend": "dockr"}, "unknown backend 'dockr' (did you mean 'docker'?)", id="typo"
        ),
        pytest.param({"backend": 3}, "unknown backend 3", id="backend-not-text"),
        pytest.param(
            {"cache_mode": "sometimes"},
            "unknown cache_mode 'sometimes'; choose one of off, replay, rw",
            id="cache-mode",
        ),
        pytest.param(
            {"work_dir": "nowhere"}, "work_dir is not a directory: nowhere", id="work-dir"
        ),
        pytest.param({"work_dir": 5}, "work_dir must be a path, not a int", id="work-dir-type"),
        pytest.param(
            {"cache_dir": "file.txt"}, "cache_dir is not a directory: file.txt", id="cache-dir"
        ),
    ],
)
def test_api_constructor_refuses_bad_arguments(
    api_env: Path, kwargs: dict[str, Any], message: str
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    (api_env / "file.txt").write_text("not a folder")
    before = snapshot(api_env)
    with pytest.raises(UsageError) as info:
        CodeFlow(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert snapshot(api_env) == before


def test_api_constructor_refuses_a_bad_cache_mode_in_the_environment(
    api_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    monkeypatch.setenv("CODEFLOW_CACHE", "bogus")
    with pytest.raises(UsageError, match="CODEFLOW_CACHE: 'bogus' is not allowed"):
        CodeFlow()
    assert snapshot(api_env) == {}


def _long() -> str:
    return "v" * MB


@pytest.mark.parametrize(
    ("request_text", "kwargs", "message"),
    [
        pytest.param("", {}, "the request is empty: say in plain words", id="empty"),
        pytest.param(" \n\t", {}, "the request is empty", id="whitespace"),
        pytest.param(
            None, {}, "the request must be a str of plain words, not a NoneType", id="none"
        ),
        pytest.param(
            b"print 1", {}, "the request must be a str of plain words, not a bytes", id="bytes"
        ),
        pytest.param(
            "long", {}, f"the request is {MB} characters long; the limit is 100000", id="1MB"
        ),
        pytest.param(
            "a\x00b", {}, "the request contains a NUL character (at character 1)", id="nul"
        ),
        pytest.param(
            "ab\udcffc", {}, "the request is not UTF-8 text (byte offset 2)", id="surrogate"
        ),
        pytest.param(
            "x",
            {"max_attempts": 0},
            "max_attempts: 0 is out of range; expected an integer from 1 to 50",
            id="attempts-0",
        ),
        pytest.param(
            "x", {"max_attempts": -1}, "max_attempts: -1 is out of range", id="attempts-neg"
        ),
        pytest.param(
            "x",
            {"max_attempts": 10**9},
            "max_attempts: 1000000000 is out of range",
            id="attempts-big",
        ),
        pytest.param(
            "x", {"max_attempts": True}, "max_attempts: True is not allowed", id="attempts-bool"
        ),
        pytest.param(
            "x", {"max_attempts": "3"}, "max_attempts: '3' is not allowed", id="attempts-text"
        ),
        pytest.param(
            "x", {"timeout": math.nan}, "timeout: nan is not a finite number", id="timeout-nan"
        ),
        pytest.param(
            "x", {"timeout": math.inf}, "timeout: inf is not a finite number", id="timeout-inf"
        ),
        pytest.param("x", {"timeout": -1}, "timeout: -1 is out of range", id="timeout-neg"),
        pytest.param(
            "x", {"timeout": 1e12}, "timeout: 1000000000000.0 is out of range", id="timeout-big"
        ),
        pytest.param(
            "x",
            {"language": "cobol"},
            "language: 'cobol' is not allowed; expected one of python, bash, auto",
            id="language",
        ),
        pytest.param(
            "x", {"focus": "speed"}, "focus: 'speed' is not allowed; expected one of", id="focus"
        ),
        pytest.param(
            "x",
            {"scan": "paranoid"},
            "scan: 'paranoid' is not allowed; expected one of block, strict, warn, off",
            id="scan",
        ),
        pytest.param("x", {"verify": "yes"}, "verify: 'yes' is not allowed", id="verify"),
        pytest.param("x", {"improve": "no"}, "improve: 'no' is not allowed", id="improve"),
        pytest.param("x", {"check": 5}, "check must be a str, not a int", id="check"),
        pytest.param("x", {"on_event": "print"}, "on_event must be a callable", id="on-event"),
        pytest.param(
            "x",
            {"max_atempts": 2},
            "run() got an unknown option 'max_atempts' (did you mean 'max_attempts'?)",
            id="unknown-keyword",
        ),
    ],
)
def test_api_run_refuses_bad_arguments_before_anything_starts(
    api_env: Path,
    server: ModelServer,
    request_text: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    if request_text == "long":
        request_text = _long()
    before = snapshot(api_env)
    cf = CodeFlow()
    try:
        with pytest.raises(UsageError) as info:
            cf.run(request_text, **kwargs)
        assert cf._executor is None and cf._provider is None  # no kernel, no client
    finally:
        cf.close()
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert snapshot(api_env) == before
    assert server.requests == []


async def test_api_arun_refuses_bad_arguments(api_env: Path, server: ModelServer) -> None:
    from codeflow_magic.api import CodeFlow
    from codeflow_magic.errors import UsageError

    async with CodeFlow() as cf:
        with pytest.raises(UsageError, match="timeout: nan is not a finite number"):
            await cf.arun("x", timeout=math.nan)
        with pytest.raises(UsageError, match="the request is empty"):
            await cf.arun("   ")
    assert snapshot(api_env) == {} and server.requests == []
