"""`--backend sandbox`: the escape battery and kernel behaviour through the real executor."""

from __future__ import annotations

import os
import shutil
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
from codeflow_magic.executors.bwrap import leftover_run_dirs, sandbox_problem
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.executors.limits import cgroup_problem, leftover_cgroups

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="module")]

SECRET_NAME = "ANTHROPIC_API_KEY"
SECRET_VALUE = "sk-ant-sandbox-test-do-not-leak"
MEMORY = "512m"
PIDS = 64
CAP = 20_000


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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(work_dir: Path) -> AsyncIterator[KernelExecutor]:
    _require_sandbox()
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
    ex = make_executor(settings, work_dir=work_dir, backend="sandbox")
    assert isinstance(ex, KernelExecutor)
    assert ex.name == "sandbox" and ex.supports_install is False
    try:
        await ex.start()
        yield ex
    finally:
        await ex.shutdown()
        if old is None:
            os.environ.pop(SECRET_NAME, None)
        else:
            os.environ[SECRET_NAME] = old


async def test_state_and_png(sandbox: KernelExecutor) -> None:
    await eb.check_state_and_png(sandbox)


async def test_no_network(sandbox: KernelExecutor) -> None:
    await eb.check_no_network(sandbox)


async def test_writes_outside_work_dir_fail(sandbox: KernelExecutor, work_dir: Path) -> None:
    await eb.check_writes_outside_work_dir_fail(sandbox, work_dir)


async def test_shadow_unreadable(sandbox: KernelExecutor) -> None:
    await eb.check_shadow_unreadable(sandbox)


async def test_api_key_absent(sandbox: KernelExecutor) -> None:
    await eb.check_secret_absent(sandbox, SECRET_NAME, SECRET_VALUE)


async def test_work_dir_file_visible_on_host(sandbox: KernelExecutor, work_dir: Path) -> None:
    await eb.check_work_dir_file(sandbox, work_dir)


async def test_endless_loop_interrupted(sandbox: KernelExecutor) -> None:
    await eb.check_endless_loop(sandbox)


async def test_bash(sandbox: KernelExecutor) -> None:
    await eb.check_bash(sandbox)


async def test_output_cap(sandbox: KernelExecutor) -> None:
    await eb.check_output_cap(sandbox, CAP)


async def test_pids_limit(sandbox: KernelExecutor) -> None:
    await eb.check_pids_limit(sandbox, PIDS)


async def test_three_gb_allocation(sandbox: KernelExecutor) -> None:
    await eb.check_memory_limit(sandbox, MEMORY)


async def test_oom_kill_reported_and_recovered(sandbox: KernelExecutor) -> None:
    """Touching memory in small pieces passes the address-space limit's headroom only after
    the cgroup limit: the OOM killer takes the kernel and the death names the limit."""
    code = "chunks = []\nwhile True:\n    chunks.append(b'z' * (16 * 1024**2))\n"
    result = await sandbox.execute(code, timeout=120)
    assert not result.ok
    if result.status == "died":
        assert result.restarted and not result.state_kept
        assert f"out of memory, limit {MEMORY}" in result.evalue, result
    else:  # the address-space limit may win the race on some kernels: still a clean failure
        assert result.ename == "MemoryError", result
    assert (await eb.run_ok(sandbox, "print(3 * 3)")).strip() == "9"


async def test_nothing_left_after_death_restart_and_shutdown(work_dir: Path) -> None:
    _require_sandbox()
    cgroups_before = set(leftover_cgroups())
    runs_before = set(leftover_run_dirs())
    settings = load_settings(extra={"execution.memory_limit": MEMORY}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend="sandbox")
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    try:
        first = set(leftover_cgroups()) - cgroups_before
        assert first, "the kernel runs in its own cgroups"
        pids = _pids_in(first)
        assert pids
        died = await ex.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert died.status == "died" and died.restarted, died
        assert (await eb.run_ok(ex, "print('again')")).strip() == "again"
        second = set(leftover_cgroups()) - cgroups_before
        assert second and not (second & first), "the dead kernel's cgroups are gone"
        assert not any(_alive(p) for p in pids)
        await ex.restart()
        third = set(leftover_cgroups()) - cgroups_before
        assert third and not (third & second)
        pids = _pids_in(third)
    finally:
        await ex.shutdown()
    assert set(leftover_cgroups()) == cgroups_before
    assert set(leftover_run_dirs()) == runs_before
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
