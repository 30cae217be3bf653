"""`--backend gateway` against a real `jupyter kernelgateway` with a token, on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import escape_battery as eb
import gatewayserver
import pytest
import pytest_asyncio
from gatewayserver import TOKEN
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendUnavailable
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.gateway import GatewayExecutor

pytestmark = [pytest.mark.gateway, pytest.mark.asyncio(loop_scope="module")]

CAP = 20_000


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    need(gatewayserver.available(), "jupyter_kernel_gateway is not installed in this environment")
    try:
        with gatewayserver.kernel_gateway() as url:
            yield url
    except gatewayserver.GatewayError as exc:
        pytest.fail(str(exc))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(gateway_url: str) -> AsyncIterator[GatewayExecutor]:
    settings = load_settings(
        extra={
            "execution.gateway_url": gateway_url,
            "execution.gateway_token": TOKEN,
            "execution.max_output_chars": CAP,
            "execution.interrupt_grace": 5.0,
        }
    )
    ex = make_executor(settings, work_dir=Path.cwd(), backend="gateway")
    assert isinstance(ex, GatewayExecutor)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


async def test_state_and_png(gateway: GatewayExecutor) -> None:
    await eb.check_state_and_png(gateway)


async def test_timeout_interrupts_and_keeps_state(gateway: GatewayExecutor) -> None:
    await eb.check_endless_loop(gateway)


async def test_a_failed_attempt_is_rolled_back(gateway: GatewayExecutor) -> None:
    from codeflow_magic import rollback

    assert (await gateway.execute("gw_kept = {'a': 1}")).ok
    await rollback.call(gateway, "begin", token="g", max_bytes=64 * 1024**2)
    await gateway.execute("gw_kept['b'] = 2\ngw_extra = 1\nraise ValueError")
    back = await rollback.call(gateway, "rollback", token="g", code="")
    assert back["ok"] and back["removed"] == ["gw_extra"], back
    shown = await gateway.execute("print(gw_kept, 'gw_extra' in dir())")
    assert "".join(str(o.get("text", "")) for o in shown.outputs) == "{'a': 1} False\n"
    await rollback.call(gateway, "discard", token="g")


async def test_bash(gateway: GatewayExecutor) -> None:
    await eb.check_bash(gateway)


async def test_output_cap(gateway: GatewayExecutor) -> None:
    await eb.check_output_cap(gateway, CAP)


async def test_errors_are_results(gateway: GatewayExecutor) -> None:
    result = await gateway.execute("1 / 0")
    assert result.status == "error" and result.ename == "ZeroDivisionError"
    assert any(o.get("output_type") == "error" for o in result.outputs)


async def test_describe_state(gateway: GatewayExecutor) -> None:
    await eb.run_ok(gateway, "frame_rows = list(range(5))")
    summary = await gateway.describe_state()
    assert "frame_rows" in summary


async def test_ignored_interrupt_restarts(gateway: GatewayExecutor) -> None:
    await eb.run_ok(gateway, "lost = 1")
    code = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(0.1)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    result = await gateway.execute(code, timeout=2)
    assert result.status == "timeout" and result.restarted and not result.state_kept
    check = await gateway.execute("print('lost' in globals())")
    assert eb.stdout(check).strip() == "False"


async def test_death_is_noticed_and_kernel_restarted(gateway: GatewayExecutor) -> None:
    await eb.run_ok(gateway, "doomed = 1")
    result = await gateway.execute("import os\nos._exit(1)", timeout=60)
    assert result.status == "died", result
    assert result.restarted and not result.state_kept
    out = await eb.run_ok(gateway, "print('doomed' in globals(), 6 * 7)")
    assert out.split() == ["False", "42"]


async def test_deleted_kernel_is_replaced(gateway: GatewayExecutor) -> None:
    old = gateway.kernel_id
    await gateway._rest("DELETE", f"/api/kernels/{old}")
    result = await gateway.execute("import time\ntime.sleep(5)", timeout=60)
    assert result.status == "died", result
    assert gateway.kernel_id and gateway.kernel_id != old
    assert (await eb.run_ok(gateway, "print(5 + 5)")).strip() == "10"


async def test_wrong_token_is_a_clear_error(gateway_url: str) -> None:
    ex = GatewayExecutor(url=gateway_url, token="wrong-token")
    with pytest.raises(BackendUnavailable, match=r"rejected the token \(HTTP 403\)|HTTP 401"):
        await ex.start()
    assert ex.kernel_id is None


async def test_unreachable_gateway_is_a_clear_error() -> None:
    ex = GatewayExecutor(
        url=f"http://127.0.0.1:{gatewayserver.free_port()}", token=TOKEN, connect_timeout=5
    )
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await ex.start()


async def test_missing_url_is_a_clear_error() -> None:
    settings = load_settings()
    with pytest.raises(BackendUnavailable, match="gateway URL"):
        make_executor(settings, work_dir=Path.cwd(), backend="gateway")


def _ask_via_gateway(
    url: str, server_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CODEFLOW_"))}
    env.update(server_env)
    with tempfile.TemporaryDirectory(prefix="cf-gw-ask-") as wd:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "codeflow_magic.cli",
                "ask",
                *args,
                "--backend",
                "gateway",
                "--gateway-url",
                url,
                "--gateway-token",
                TOKEN,
                "--format",
                "json",
                "--no-cache",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=wd,
        )


@pytest.mark.parametrize(
    ("request_text", "first", "trigger", "second", "category", "extra"),
    [
        (
            "print the answer",
            "```python\nprint(answer)\n```",
            "NameError",
            "```python\nanswer = 42\nprint(answer)\n```",
            "runtime",
            [],
        ),
        (
            "spin a while",
            "```python\nwhile True:\n    pass\n```",
            "TimeoutError",
            "```python\nprint('bounded')\n```",
            "environment",
            ["--timeout", "3"],
        ),
        (
            "list the files",
            "```bash\nlss -1\n```",
            "command not found",
            "```bash\nls -1 | wc -l\n```",
            "environment",
            ["--language", "bash"],
        ),
        (
            "set result to ten",
            "```python\nresult = 9\n```",
            "CheckFailed",
            "```python\nresult = 10\n```",
            "logical",
            ["--check", "result == 10"],
        ),
    ],
)
async def test_the_flow_fixes_broken_first_attempts_on_the_gateway(
    gateway_url: str,
    request_text: str,
    first: str,
    trigger: str,
    second: str,
    category: str,
    extra: list[str],
) -> None:
    import asyncio
    import json

    from modelserver import ModelServer

    with ModelServer() as server:
        server.add_rule(contains=trigger, reply=second + "\nFix: corrected")
        server.add_rule(contains=request_text, reply=first)
        done = await asyncio.to_thread(
            _ask_via_gateway, gateway_url, server.env(), request_text, *extra
        )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["backend"] == "gateway"
    assert [a["success"] for a in record["attempts"]] == [False, True]
    assert record["attempts"][0]["error"]["category"] == category
