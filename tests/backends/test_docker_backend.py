"""`--backend docker`: the escape battery and kernel behaviour through the real executor."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import escape_battery as eb
import pytest
import pytest_asyncio
from conftest import need

from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendUnavailable
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.docker import daemon_problem, leftover_containers
from codeflow_magic.executors.image import image_exists
from codeflow_magic.executors.kernel import KernelExecutor

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

SECRET_NAME = "ANTHROPIC_API_KEY"
SECRET_VALUE = "sk-ant-sandbox-test-do-not-leak"
MEMORY = "512m"
PIDS = 64
CAP = 20_000


def _require_docker() -> None:
    problem = daemon_problem()
    need(problem is None, f"docker backend unavailable: {problem}")


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cf-dk-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def docker_ex(work_dir: Path) -> AsyncIterator[KernelExecutor]:
    _require_docker()
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
    ex = make_executor(settings, work_dir=work_dir, backend="docker")
    assert isinstance(ex, KernelExecutor)
    assert ex.name == "docker" and ex.supports_install is False
    try:
        await ex.start()
        yield ex
    finally:
        await ex.shutdown()
        if old is None:
            os.environ.pop(SECRET_NAME, None)
        else:
            os.environ[SECRET_NAME] = old


async def test_state_and_png(docker_ex: KernelExecutor) -> None:
    await eb.check_state_and_png(docker_ex)


async def test_no_network(docker_ex: KernelExecutor) -> None:
    await eb.check_no_network(docker_ex)


async def test_writes_outside_work_dir_fail(docker_ex: KernelExecutor, work_dir: Path) -> None:
    await eb.check_writes_outside_work_dir_fail(docker_ex, work_dir)


async def test_shadow_unreadable(docker_ex: KernelExecutor) -> None:
    await eb.check_shadow_unreadable(docker_ex)


async def test_api_key_absent(docker_ex: KernelExecutor) -> None:
    await eb.check_secret_absent(docker_ex, SECRET_NAME, SECRET_VALUE)


async def test_work_dir_file_visible_on_host(docker_ex: KernelExecutor, work_dir: Path) -> None:
    await eb.check_work_dir_file(docker_ex, work_dir)


async def test_endless_loop_interrupted(docker_ex: KernelExecutor) -> None:
    await eb.check_endless_loop(docker_ex)


async def test_bash(docker_ex: KernelExecutor) -> None:
    await eb.check_bash(docker_ex)


async def test_output_cap(docker_ex: KernelExecutor) -> None:
    await eb.check_output_cap(docker_ex, CAP)


async def test_pids_limit(docker_ex: KernelExecutor) -> None:
    await eb.check_pids_limit(docker_ex, PIDS)


async def test_three_gb_allocation(docker_ex: KernelExecutor) -> None:
    await eb.check_memory_limit(docker_ex, MEMORY)


async def test_oom_kill_reported_and_recovered(docker_ex: KernelExecutor) -> None:
    """Memory touched piece by piece: the container's limit is hit, docker OOM-kills the
    kernel, and the death names the limit (read from State.OOMKilled before removal)."""
    code = "chunks = []\nwhile True:\n    chunks.append(b'z' * (16 * 1024**2))\n"
    result = await docker_ex.execute(code, timeout=120)
    assert result.status == "died", result
    assert result.restarted and not result.state_kept
    assert f"out of memory, limit {MEMORY}" in result.evalue, result
    assert (await eb.run_ok(docker_ex, "print(3 * 3)")).strip() == "9"


async def test_no_container_left_after_death_restart_and_shutdown(work_dir: Path) -> None:
    _require_docker()
    before = set(leftover_containers())
    runs_before = set(Path("/tmp").glob("cfdk-*"))
    settings = load_settings(extra={"execution.memory_limit": MEMORY}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend="docker")
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    try:
        first = set(leftover_containers()) - before
        assert len(first) == 1
        # the kernel is pid 1 in the container (immune to its own SIGKILL): exit hard instead
        died = await ex.execute("import os\nos._exit(9)")
        assert died.status == "died" and died.restarted, died
        assert (await eb.run_ok(ex, "print('again')")).strip() == "again"
        second = set(leftover_containers()) - before
        assert len(second) == 1 and not (second & first), "the dead container is removed"
        await ex.restart()
        third = set(leftover_containers()) - before
        assert len(third) == 1 and not (third & second)
        # Killing the docker CLI (the process jupyter_client started) leaves the container
        # running; the next restart must still remove it.
        km = ex.kernel_manager
        assert km is not None and km.provisioner is not None
        os.kill(km.provisioner.pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert set(leftover_containers()) - before == third
        await ex.restart()
        fourth = set(leftover_containers()) - before
        assert len(fourth) == 1 and not (fourth & third)
        assert (await eb.run_ok(ex, "print('back')")).strip() == "back"
    finally:
        await ex.shutdown()
    assert set(leftover_containers()) == before
    assert set(Path("/tmp").glob("cfdk-*")) == runs_before


async def test_missing_docker_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> None:
    monkeypatch.setenv("CODEFLOW_DOCKER", "/nonexistent/docker")
    settings = load_settings(work_dir=work_dir)
    with pytest.raises(BackendUnavailable, match=r"apt-get install docker.io"):
        make_executor(settings, work_dir=work_dir, backend="docker")


async def test_image_present_after_first_use() -> None:
    _require_docker()
    assert image_exists("codeflow-kernel:latest")
