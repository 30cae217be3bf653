"""`--backend docker` specifics: no orphaned containers, a clear error without docker, the
image built on first use. The escape battery shared with the sandbox is in
`test_isolated_battery.py`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import escape_battery as eb
import pytest
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendUnavailable
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.docker import daemon_problem, leftover_containers
from codeflow_magic.executors.image import image_exists
from codeflow_magic.executors.kernel import KernelExecutor

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

MEMORY = "512m"


def _require_docker() -> None:
    problem = daemon_problem()
    need(problem is None, f"docker backend unavailable: {problem}")


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cf-dk-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
