"""The shipped test helpers (`codeflow_magic.testing`) drive the real loop as users would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeflow_magic.executors.base import Executor
from codeflow_magic.flow import Flow
from codeflow_magic.providers.base import Provider
from codeflow_magic.testing import MemoryExecutor, ScriptedProvider


def block(code: str) -> str:
    return f"Here you go.\n```python\n{code}\n```\n"


def test_the_helpers_satisfy_the_ports() -> None:
    assert isinstance(ScriptedProvider([]), Provider)
    executor = MemoryExecutor()
    assert isinstance(executor, Executor) and executor.started


async def test_a_name_error_is_fixed_with_the_next_scripted_reply() -> None:
    provider = ScriptedProvider([block("print(total)"), block("total = 3\nprint(total)")])
    executor = MemoryExecutor()
    record = await Flow(provider, executor).run("print the total")
    assert record.success and [a.success for a in record.attempts] == [False, True]
    error = record.attempts[0].error
    assert error is not None and error.ename == "NameError"
    assert [r.purpose for r in provider.requests] == ["generate", "fix"]
    assert "NameError" in provider.requests[1].messages[0].content
    assert record.outputs[0]["text"] == "3\n"
    assert executor.executed == ["print(total)\n", "total = 3\nprint(total)\n"]


async def test_state_persists_between_runs_in_the_executor() -> None:
    provider = ScriptedProvider([block("prices = [2, 3, 5]"), block("print(sum(prices))")])
    executor = MemoryExecutor()
    flow = Flow(provider, executor)
    assert (await flow.run("make a list of prices")).success
    assert executor.ns["prices"] == [2, 3, 5]
    record = await flow.run("print their sum")
    assert record.success and record.outputs[0]["text"] == "10\n"
    assert "prices: list" in await executor.describe_state()


def test_codeflow_runs_with_them_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeflow_magic import CodeFlow

    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.chdir(tmp_path)
    provider = ScriptedProvider([block("print(x)"), block("x = 1\nprint(x)")])
    with CodeFlow(provider=provider, executor=MemoryExecutor()) as cf:
        record = cf.run("print x")
    assert record.success and len(record.attempts) == 2
    assert list(tmp_path.iterdir()) == []
