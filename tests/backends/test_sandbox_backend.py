"""`--backend sandbox` specifics: cleanup after death and restart, a clear error without
bubblewrap. The escape battery shared with docker is in `test_isolated_battery.py`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import escape_battery as eb
import pytest
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendUnavailable
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.executors.limits import CGROUP_PREFIX, cgroup_problem, leftover_cgroups

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]

MEMORY = "512m"


def _require_sandbox() -> None:
    problem = sandbox_problem()
    need(problem is None, f"sandbox backend unavailable: {problem}")
    need(os.geteuid() != 0 or cgroup_problem() is None, f"no cgroups: {cgroup_problem()}")


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp root: the sandbox uid must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-sbx-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_nothing_left_after_death_restart_and_shutdown(work_dir: Path) -> None:
    _require_sandbox()
    settings = load_settings(extra={"execution.memory_limit": MEMORY}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend="sandbox")
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    assert ex.kernel_manager is not None and ex.kernel_manager.provisioner is not None
    sandbox_id = ex.kernel_manager.provisioner.sandbox_id
    assert sandbox_id
    run_dirs: set[str] = set()

    def mine() -> set[Path]:
        """This executor's cgroups (other tests' sandboxes come and go meanwhile); notes its
        run dir."""
        assert ex.kernel_manager is not None
        run_dirs.add(str(ex.kernel_manager.provisioner._run_dir))  # type: ignore[union-attr]
        return {p for p in leftover_cgroups() if p.name.startswith(f"{CGROUP_PREFIX}{sandbox_id}-")}

    try:
        first = mine()
        assert first, "the kernel runs in its own cgroups"
        pids = _pids_in(first)
        assert pids
        died = await ex.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert died.status == "died" and died.restarted, died
        assert (await eb.run_ok(ex, "print('again')")).strip() == "again"
        second = mine()
        assert second and not (second & first), "the dead kernel's cgroups are gone"
        assert not any(_alive(p) for p in pids)
        await ex.restart()
        third = mine()
        assert third and not (third & second)
        pids = _pids_in(third)
    finally:
        await ex.shutdown()
    assert {p for p in leftover_cgroups() if sandbox_id in p.name} == set()
    assert run_dirs and all(d.startswith("/tmp/cfbw-") for d in run_dirs)
    assert not [d for d in run_dirs if Path(d).exists()], "no run dir is left behind"
    assert not any(_alive(p) for p in pids)


async def test_missing_bubblewrap_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, work_dir: Path
) -> None:
    monkeypatch.setenv("CODEFLOW_BWRAP", "/nonexistent/bwrap")
    settings = load_settings(work_dir=work_dir)
    with pytest.raises(BackendUnavailable, match=r"apt-get install bubblewrap"):
        make_executor(settings, work_dir=work_dir, backend="sandbox")


def _pids_in(cgroups: set[Path]) -> set[int]:
    pids: set[int] = set()
    for folder in cgroups:
        procs = folder / "cgroup.procs"
        if procs.exists():
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
