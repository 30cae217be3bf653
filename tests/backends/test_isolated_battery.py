"""The escape battery and kernel behaviour, the same on `sandbox` and `docker`, through the
real executor (the scanner is not involved: the isolation itself is what is tested)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import escape_battery as eb
import pytest
import pytest_asyncio
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.kernel import KernelExecutor

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET_NAME = "ANTHROPIC_API_KEY"
SECRET_VALUE = "sk-ant-sandbox-test-do-not-leak"
MEMORY = "512m"
PIDS = 64
CAP = 20_000


def _require(backend: str) -> None:
    if backend == "sandbox":
        from codeflow_magic.executors.bwrap import sandbox_problem
        from codeflow_magic.executors.limits import cgroup_problem

        problem = sandbox_problem()
        need(problem is None, f"sandbox backend unavailable: {problem}")
        need(os.geteuid() != 0 or cgroup_problem() is None, f"no cgroups: {cgroup_problem()}")
    else:
        from codeflow_magic.executors.docker import daemon_problem

        problem = daemon_problem()
        need(problem is None, f"docker backend unavailable: {problem}")


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp root: the sandbox uid must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-iso-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=[
        pytest.param("sandbox", marks=pytest.mark.sandbox),
        pytest.param("docker", marks=pytest.mark.docker),
    ],
)
async def isolated(request: pytest.FixtureRequest, work_dir: Path) -> AsyncIterator[KernelExecutor]:
    backend: str = request.param
    _require(backend)
    old = os.environ.get(SECRET_NAME)
    os.environ[SECRET_NAME] = SECRET_VALUE
    settings = load_settings(
        extra={
            "execution.memory_limit": MEMORY,
            "execution.pids_limit": PIDS,
            "execution.max_output_chars": CAP,
            "execution.interrupt_grace": 5.0,
        },
        work_dir=work_dir,
    )
    ex = make_executor(settings, work_dir=work_dir, backend=backend)
    assert isinstance(ex, KernelExecutor)
    assert ex.name == backend and ex.supports_install is False
    try:
        await ex.start()
        yield ex
    finally:
        await ex.shutdown()
        if old is None:
            os.environ.pop(SECRET_NAME, None)
        else:
            os.environ[SECRET_NAME] = old


async def test_state_and_png(isolated: KernelExecutor) -> None:
    await eb.check_state_and_png(isolated)


async def test_no_network(isolated: KernelExecutor) -> None:
    await eb.check_no_network(isolated)


async def test_writes_outside_work_dir_fail(isolated: KernelExecutor, work_dir: Path) -> None:
    await eb.check_writes_outside_work_dir_fail(isolated, work_dir)


async def test_shadow_unreadable(isolated: KernelExecutor) -> None:
    await eb.check_shadow_unreadable(isolated)


async def test_api_key_absent(isolated: KernelExecutor) -> None:
    await eb.check_secret_absent(isolated, SECRET_NAME, SECRET_VALUE)


async def test_work_dir_file_visible_on_host(isolated: KernelExecutor, work_dir: Path) -> None:
    await eb.check_work_dir_file(isolated, work_dir)


async def test_endless_loop_interrupted(isolated: KernelExecutor) -> None:
    await eb.check_endless_loop(isolated)


async def test_bash(isolated: KernelExecutor) -> None:
    await eb.check_bash(isolated)


async def test_output_cap(isolated: KernelExecutor) -> None:
    await eb.check_output_cap(isolated, CAP)


async def test_pids_limit(isolated: KernelExecutor) -> None:
    await eb.check_pids_limit(isolated, PIDS)


async def test_three_gb_allocation(isolated: KernelExecutor) -> None:
    await eb.check_memory_limit(isolated, MEMORY)


async def test_oom_kill_reported_and_recovered(isolated: KernelExecutor) -> None:
    """Memory touched piece by piece reaches the hard limit (memory cgroup, or the container's
    limit): the kernel is OOM-killed and the death names the limit. In the sandbox the
    address-space limit may win the race instead: still a clean MemoryError."""
    code = "chunks = []\nwhile True:\n    chunks.append(b'z' * (16 * 1024**2))\n"
    result = await isolated.execute(code, timeout=120)
    assert not result.ok
    if result.status == "died" or isolated.name == "docker":
        assert result.status == "died", result
        assert result.restarted and not result.state_kept
        assert f"out of memory, limit {MEMORY}" in result.evalue, result
    else:
        assert result.ename == "MemoryError", result
    assert (await eb.run_ok(isolated, "print(3 * 3)")).strip() == "9"
