"""Timeouts, ignored interrupts, kernel death and cancellation on a real ipykernel."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from jupyter_client.kernelspec import KernelSpecManager

from codeflow_magic.errors import UsageError
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.models import Output

pytestmark = [pytest.mark.kernel, pytest.mark.asyncio(loop_scope="module")]

SWALLOW = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(10)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
)


def _text(outputs: tuple[Output, ...]) -> str:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")


async def _value(ex: KernelExecutor, expr: str) -> str:
    result = await ex.execute(expr, timeout=60)
    assert result.ok, f"{result.ename}: {result.evalue}"
    return str(result.outputs[0]["data"]["text/plain"])


async def test_timeout_interrupts_and_keeps_state(executor: KernelExecutor) -> None:
    await executor.execute("kept = 'still here'")
    result = await executor.execute(
        "import time\nprint('started', flush=True)\ntime.sleep(100)", timeout=2
    )
    assert result.status == "timeout"
    assert result.ename == "TimeoutError"
    assert result.evalue == "execution exceeded 2s; interrupted, state kept"
    assert result.state_kept and not result.restarted
    assert _text(result.outputs) == "started\n"
    assert not any(o["output_type"] == "error" for o in result.outputs)
    assert await _value(executor, "kept") == "'still here'"


async def test_swallowed_interrupt_restarts_kernel(executor: KernelExecutor) -> None:
    await executor.execute("lost = 1")
    result = await executor.execute(SWALLOW, timeout=1.5)
    assert result.status == "timeout"
    assert result.evalue == "execution exceeded 1.5s; kernel restarted, state lost"
    assert result.restarted and not result.state_kept
    after = await executor.execute("lost")
    assert after.status == "error" and after.ename == "NameError"
    assert await _value(executor, "6 * 7") == "42"


async def test_death_is_noticed_and_kernel_restarted(executor: KernelExecutor) -> None:
    await executor.execute("doomed = 1")
    began = time.monotonic()
    result = await executor.execute("import os\nprint('bye', flush=True)\nos._exit(1)", timeout=120)
    elapsed = time.monotonic() - began
    assert result.status == "died"
    assert result.ename == "KernelDied"
    assert "exit code 1" in result.evalue and "restarted" in result.evalue
    assert result.restarted and not result.state_kept
    assert elapsed < 10, "death must be noticed by polling, not by the 120 s timeout"
    after = await executor.execute("doomed")
    assert after.ename == "NameError"
    assert await _value(executor, "1 + 1") == "2"


async def test_leftovers_of_an_interrupted_run_do_not_leak(executor: KernelExecutor) -> None:
    timed_out = await executor.execute(
        "import time\nfor i in range(100):\n    print('tick', i, flush=True)\n    time.sleep(0.05)",
        timeout=1,
    )
    assert timed_out.status == "timeout"
    result = await executor.execute("print('clean')")
    assert result.ok and result.outputs == (
        {"output_type": "stream", "name": "stdout", "text": "clean\n"},
    )


async def test_bash_timeout_kills_the_script(
    executor: KernelExecutor, kernel_work_dir: Path
) -> None:
    result = await executor.execute("sleep 30; touch bash-survived", language="bash", timeout=1.5)
    assert result.status == "timeout" and result.state_kept
    await asyncio.sleep(0.5)
    assert await _value(executor, "import os; os.path.exists('bash-survived')") == "False"


async def test_cancel_interrupts_the_kernel(executor: KernelExecutor) -> None:
    await executor.execute("survives_cancel = True")
    started = asyncio.Event()

    def on_output(out: Output) -> None:
        if "running" in out.get("text", ""):
            started.set()

    task = asyncio.create_task(
        executor.execute(
            "import time\nprint('running', flush=True)\ntime.sleep(100)",
            timeout=300,
            on_output=on_output,
        )
    )
    await asyncio.wait_for(started.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Without the interrupt this would wait for the 100 s sleep and time out.
    result = await executor.execute("survives_cancel", timeout=30)
    assert result.ok and result.outputs[0]["data"]["text/plain"] == "True"


async def test_bad_timeout_is_usage_error(executor: KernelExecutor) -> None:
    with pytest.raises(UsageError, match="timeout must be positive"):
        await executor.execute("1", timeout=0)


async def test_explicit_restart_clears_state(executor: KernelExecutor) -> None:
    await executor.execute("before_restart = 1")
    await executor.restart()
    assert (await executor.execute("before_restart")).ename == "NameError"


@pytest.fixture(scope="module")
def message_mode_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec with message-mode interrupts, found through a private spec manager."""
    root = tmp_path_factory.mktemp("specs")
    spec_dir = root / "cf-message"
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "message-mode python",
                "language": "python",
                "interrupt_mode": "message",
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(root)])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def message_executor(
    message_mode_specs: KernelSpecManager, kernel_work_dir: Path
) -> AsyncIterator[KernelExecutor]:
    ex = KernelExecutor(
        work_dir=kernel_work_dir,
        kernel_name="cf-message",
        name="custom",
        kernel_spec_manager=message_mode_specs,
        supports_install=False,
        interrupt_grace=5.0,
    )
    try:
        yield ex
    finally:
        await ex.shutdown()


async def test_message_mode_kernelspec_timeout(message_executor: KernelExecutor) -> None:
    await message_executor.execute("mm = 5")
    km = message_executor.kernel_manager
    assert km is not None and km.kernel_spec is not None
    assert km.kernel_spec.interrupt_mode == "message"
    result = await message_executor.execute("import time; time.sleep(100)", timeout=2)
    assert result.status == "timeout" and result.state_kept
    assert await _value(message_executor, "mm * 2") == "10"


async def test_install_refused_when_not_supported(message_executor: KernelExecutor) -> None:
    with pytest.raises(UsageError, match="does not allow installing"):
        await message_executor.install("requests")


async def test_death_reason_hook_reaches_result(kernel_work_dir: Path) -> None:
    calls: list[int] = []

    async def reason() -> str:
        calls.append(1)
        return "killed by the memory limit (512 MB)"

    ex = KernelExecutor(work_dir=kernel_work_dir, death_reason=reason)
    try:
        result = await ex.execute("import os; os._exit(137)")
        assert result.status == "died"
        assert result.detail == "killed by the memory limit (512 MB)"
        assert "memory limit" in result.evalue and "exit code 137" in result.evalue
        assert calls == [1]
        assert await _value(ex, "'alive'") == "'alive'"
    finally:
        await ex.shutdown()
