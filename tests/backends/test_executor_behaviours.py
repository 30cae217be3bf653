"""Executor behaviours every kernel backend shares (issue 21): a run after a cancelled one
gets its own output, a container reaps zombies and reports a self-kill as a death, and a
shutdown during a run ends that run as a failure instead of raising CancelledError."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.docker import daemon_problem
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.models import ExecutionResult

BACKENDS = [
    pytest.param("kernel", marks=pytest.mark.kernel),
    pytest.param("sandbox", marks=pytest.mark.sandbox),
    pytest.param("docker", marks=pytest.mark.docker),
]


def _require(backend: str) -> None:
    if backend == "sandbox":
        problem = sandbox_problem()
        need(problem is None, f"sandbox backend unavailable: {problem}")
    elif backend == "docker":
        problem = daemon_problem()
        need(problem is None, f"docker backend unavailable: {problem}")


def stdout(result: ExecutionResult) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in result.outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Under /tmp, not pytest's 0700 tmp root: sandbox and container uids must reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-behave-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def executor(request: pytest.FixtureRequest, work_dir: Path) -> AsyncIterator[KernelExecutor]:
    backend: str = request.param
    _require(backend)
    settings = load_settings(extra={"execution.memory_limit": "512m"}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend=backend)
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
async def test_run_after_a_cancelled_run_keeps_its_output(executor: KernelExecutor) -> None:
    assert (await executor.execute("x = 5")).ok
    for i in range(20):
        task = asyncio.ensure_future(executor.execute("import time; time.sleep(10)"))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await executor.execute("print('after', x)")
        assert after.ok and stdout(after) == "after 5\n", (i, after)


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
async def test_self_kill_is_reported_as_a_death(executor: KernelExecutor) -> None:
    assert (await executor.execute("x = 1")).ok
    died = await executor.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert died.status == "died" and died.restarted and not died.state_kept, died
    assert "SIGKILL" in died.evalue, died
    again = await executor.execute("print('x' in dir())")
    assert again.ok and stdout(again) == "False\n", again


ZOMBIES = """\
import os, subprocess, time

for _ in range(150):
    os.system('sleep 0.01 &')
time.sleep(1.5)


def zombies():
    count = 0
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open(f'/proc/{pid}/stat') as fh:
                    state = fh.read().rsplit(')', 1)[1].split()[0]
            except OSError:
                continue
            count += state == 'Z'
    return count


print(zombies())
print(subprocess.run(['echo', 'forked'], capture_output=True, text=True).stdout, end='')
"""


@pytest.mark.docker
@pytest.mark.parametrize("executor", ["docker"], indirect=True)
async def test_container_reaps_orphaned_background_jobs(executor: KernelExecutor) -> None:
    """150 background jobs end as orphans; with no init they stay zombies until the pids
    limit (128) stops every fork."""
    result = await executor.execute(ZOMBIES)
    assert result.ok, result
    count, forked = stdout(result).splitlines()
    assert int(count) <= 5 and forked == "forked", result


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
async def test_shutdown_during_a_run_ends_it_as_a_failure(executor: KernelExecutor) -> None:
    task = asyncio.ensure_future(
        executor.execute("print('started', flush=True)\nimport time\ntime.sleep(60)")
    )
    await asyncio.sleep(1.5)
    await executor.shutdown()
    result = await asyncio.wait_for(task, 20)  # not the 60 s the code would take
    assert result.status == "died" and result.ename == "KernelShutdown", result
    assert "shut down" in result.evalue and not result.state_kept
    assert stdout(result) == "started\n"


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
async def test_a_failed_attempt_is_rolled_back_on_every_backend(executor: KernelExecutor) -> None:
    from codeflow_magic import rollback

    assert (await executor.execute("kept = [1, 2]\nlevel = 1")).ok
    begun = await rollback.call(executor, "begin", token="b", max_bytes=64 * 1024**2)
    assert begun.get("names", 0) >= 2, begun
    failed = await executor.execute("kept.append(3)\nlevel = 2\nextra = 1\nraise ValueError")
    assert failed.status == "error"
    back = await rollback.call(executor, "rollback", token="b", code="")
    assert back["ok"] and back["removed"] == ["extra"], back
    assert stdout(await executor.execute("print(kept, level, 'extra' in dir())")) == (
        "[1, 2] 1 False\n"
    )
    await rollback.call(executor, "discard", token="b")
