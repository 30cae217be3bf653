"""One-time costs off the request path in the CLI: the SDK import starts before the input is
read, a run of one command imports only that command's module, and `codeflow batch` starts its
kernels around the first requests (one beside the SDK import, the others while the model
works) and resets a pooled kernel between requests as `%reset -f` would."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer, Reply
from scripted import MemoryExecutor

from codeflow_magic import cli
from codeflow_magic.batch import RESET_CODE, BatchItem, KernelPool, arun_batch
from codeflow_magic.cli import ask as ask_command
from codeflow_magic.config import load_settings
from codeflow_magic.errors import UsageError


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("no subcommands")


def test_each_command_alone_is_the_command_its_module_registers() -> None:
    every = _choices(cli.build_parser())
    assert every == set(cli.COMMANDS)
    for module in cli.COMMANDS.values():
        assert importlib.util.find_spec(module) is not None
    for name in every:
        assert _choices(cli.build_parser(name)) == {name}
    assert _choices(cli.build_parser("no-such-command")) == every


def test_an_unknown_command_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["no-such-command"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid choice" in err and "'ask'" in err and "'eval'" in err


def _ask_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = cli.build_parser("ask")
    args = parser.parse_args(["ask", "-", "--work-dir", str(tmp_path), *extra])
    return args


def test_ask_starts_the_sdk_import_before_it_reads_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import codeflow_magic.providers as providers

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.delenv("CODEFLOW_CACHE", raising=False)
    calls: list[str] = []
    monkeypatch.setattr(providers, "preload_for", lambda *a, **k: calls.append("preload"))

    def read(text: str, settings: Any) -> str:
        calls.append("read")
        raise UsageError("stop here")

    monkeypatch.setattr(ask_command, "_read_request", read)
    with pytest.raises(UsageError, match="stop here"):
        ask_command.cmd_ask(_ask_args(tmp_path))
    assert calls == ["preload", "read"]


def test_ask_without_any_key_loads_no_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import codeflow_magic.providers as providers

    for name in ask_command.ANTHROPIC_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CODEFLOW_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "no-such-dir"))
    calls: list[str] = []
    monkeypatch.setattr(providers, "preload_for", lambda *a, **k: calls.append("preload"))
    monkeypatch.setattr(ask_command, "_read_request", lambda text, settings: "a request")
    with pytest.raises(Exception, match="no API key"):
        ask_command.cmd_ask(_ask_args(tmp_path, "--no-cache"))
    assert calls == []


# -- the kernel pool --------------------------------------------------------------------------


class _Kernel(MemoryExecutor):
    """An in-memory executor standing for a pooled kernel."""

    name = "kernel"

    def __init__(self) -> None:
        super().__init__()
        self.snippets: list[str] = []

    async def run_snippet(self, code: str, timeout: float) -> Any:
        self.snippets.append(code)
        return await super().run_snippet(code, timeout)


async def test_the_pool_serves_a_burst_from_its_kernels_before_starting_more() -> None:
    pool = KernelPool(_Kernel, max_size=8, eager=2)
    await pool.start()
    first, second = await pool.acquire(), await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    # A third request waits for one of the two (quick code frees one in milliseconds) rather
    # than paying for a kernel start at once.
    assert len(pool.executors) == 2 and not waiting.done()
    await pool.release(first)
    assert await waiting is first
    await pool.release(first)
    await pool.release(second)
    await pool.shutdown()


async def test_batch_starts_one_kernel_before_the_first_request_and_the_rest_while_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ModelServer() as server:
        for i in range(4):
            server.add_rule(
                contains=f"pooled request {i} ",
                reply=Reply(text=f"```python\nprint({i})\n```", latency=0.5),
            )
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        events: list[str] = []

        def factory() -> _Kernel:
            events.append(f"kernel (requests received: {len(server.requests)})")
            return _Kernel()

        def on_result(item: BatchItem, record: Any, error: str | None) -> None:
            events.append("result")

        pool = KernelPool(factory, max_size=4, eager=3)
        settings = load_settings(["cache.mode=off", "execution.scan=off"], work_dir=tmp_path)
        items = [BatchItem(i, f"pooled request {i} please") for i in range(4)]
        records = await arun_batch(
            items, settings, parallel=4, work_dir=tmp_path, on_result=on_result, pool=pool
        )
        await pool.shutdown()
    assert all(r is not None for r in records)
    assert len(server.requests) == 4
    # One kernel before any request went out; the other two once one was on the wire, all
    # before the first answer came back.
    assert events[0] == "kernel (requests received: 0)"
    assert [e.startswith("kernel") for e in events[:3]] == [True, True, True]
    assert events.count("result") == 4 and len(events) == 7
    # Each request's kernel was reset when the request let it go.
    resets = [c for k in pool.executors if isinstance(k, _Kernel) for c in k.snippets]
    assert resets.count(RESET_CODE) == 4


@pytest.mark.kernel
async def test_a_pooled_kernel_is_reset_between_requests_like_reset_f(tmp_path: Path) -> None:
    from codeflow_magic.executors.kernel import KernelExecutor

    kernel = KernelExecutor(work_dir=tmp_path, timeout=60.0)
    await kernel.start()
    try:
        await kernel.execute("secret = 41\nsecret + 1")
        before = await kernel.execute("print(sorted(k for k in ('secret', '_') if k in globals()))")
        assert "'secret'" in str(before.outputs)
        reset = await kernel.run_snippet(RESET_CODE, timeout=30)  # as the pool runs it
        assert reset.status == "ok"
        after = await kernel.execute(
            "print([k for k in ('secret', '_codeflow_reset') if k in globals()], len(Out), "
            "get_ipython().displayhook._ == '')"
        )
        assert after.status == "ok"
        assert "[] 0 True" in str(after.outputs)
    finally:
        await kernel.shutdown()
