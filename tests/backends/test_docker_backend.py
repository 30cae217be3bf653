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
    settings = load_settings(extra={"execution.memory_limit": MEMORY}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend="docker")
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    assert ex.kernel_manager is not None and ex.kernel_manager.provisioner is not None
    sandbox_id = ex.kernel_manager.provisioner.sandbox_id
    assert sandbox_id

    run_dirs: set[str] = set()

    def mine() -> set[str]:
        """This executor's containers (other tests' come and go meanwhile); notes its run dir."""
        assert ex.kernel_manager is not None
        run_dirs.add(str(ex.kernel_manager.provisioner._run_dir))  # type: ignore[union-attr]
        return set(leftover_containers(sandbox_id))

    try:
        first = mine()
        assert len(first) == 1
        # a kernel that exits on its own (a self-kill: test_executor_behaviours.py)
        died = await ex.execute("import os\nos._exit(9)")
        assert died.status == "died" and died.restarted, died
        assert (await eb.run_ok(ex, "print('again')")).strip() == "again"
        second = mine()
        assert len(second) == 1 and not (second & first), "the dead container is removed"
        await ex.restart()
        third = mine()
        assert len(third) == 1 and not (third & second)
        # Killing the docker CLI (the process jupyter_client started) leaves the container
        # running; the next restart must still remove it.
        km = ex.kernel_manager
        assert km is not None and km.provisioner is not None
        os.kill(km.provisioner.pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert mine() == third
        await ex.restart()
        fourth = mine()
        assert len(fourth) == 1 and not (fourth & third)
        assert (await eb.run_ok(ex, "print('back')")).strip() == "back"
    finally:
        await ex.shutdown()
    assert set(leftover_containers(sandbox_id)) == set()
    assert run_dirs and all(d.startswith("/tmp/cfdk-") for d in run_dirs)
    assert not [d for d in run_dirs if Path(d).exists()], "no run dir is left behind"


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
