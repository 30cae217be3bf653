"""`execution.disk_limit` on the sandbox and docker backends: a program that writes until it
fails stops at the limit with an environment error that names the limit, the host's free space
drops by no more than the limit, and the user's files are untouched.

The cap is RLIMIT_FSIZE (no file grows past the limit; the write fails with EFBIG) plus a
temp space that is a tmpfs of the limit's size (ENOSPC). A start-up file in the kernel rewrites
either error so that it names the limit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from needs import need

from codeflow_magic.analysis import classify
from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.executors.limits import parse_size

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = "64m"
LIMIT_BYTES = parse_size(LIMIT, what="disk limit")
MIB = 1024**2
# Other processes on the machine write too: the free-space check allows this much besides.
NOISE = 32 * MIB

WRITE_UNTIL_FULL = """\
chunk = b"\\1" * (1 << 20)
with open({path!r}, "wb") as fh:
    while True:
        fh.write(chunk)
        fh.flush()
"""


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


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp root: the sandbox uid must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-disk-test-", dir="/tmp"))
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
    settings = load_settings(
        extra={"execution.disk_limit": LIMIT, "execution.memory_limit": "512m"},
        work_dir=work_dir,
    )
    ex = make_executor(settings, work_dir=work_dir, backend=backend)
    assert isinstance(ex, KernelExecutor)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


async def test_writing_a_file_until_it_fails_stops_at_the_limit(
    isolated: KernelExecutor, work_dir: Path
) -> None:
    keep = work_dir / "keep.csv"
    keep.write_text("a,b\n1,2\n")
    target = work_dir / "fill.bin"
    free_before = _free(work_dir)
    code = WRITE_UNTIL_FULL.format(path="fill.bin")
    result = await isolated.execute(code, timeout=120)
    try:
        free_after = _free(work_dir)
        size = target.stat().st_size
        assert not result.ok and result.status == "error", result
        error = classify(result, code)
        assert error.category == "environment", error
        assert f"disk limit of {LIMIT}" in (result.evalue or ""), result.evalue
        assert size <= LIMIT_BYTES
        assert size >= LIMIT_BYTES - MIB  # it was the limit that stopped it, not something else
        assert free_before - free_after <= LIMIT_BYTES + NOISE
        assert keep.read_text() == "a,b\n1,2\n"
        # The kernel lives on, with its state, and can write again once space is freed.
        small = f"small-{uuid.uuid4().hex[:8]}.txt"
        follow = await isolated.execute(
            f"import os\nos.remove('fill.bin')\nopen({small!r}, 'w').write('ok')", timeout=60
        )
        assert follow.ok, follow
        assert (work_dir / small).read_text() == "ok"
    finally:
        target.unlink(missing_ok=True)


async def test_temp_space_is_capped_and_off_the_host_disk(
    isolated: KernelExecutor, work_dir: Path
) -> None:
    free_before = _free(work_dir)
    code = WRITE_UNTIL_FULL.format(path="/tmp/fill.bin")
    result = await isolated.execute(code, timeout=120)
    free_after = _free(work_dir)
    assert not result.ok, result
    assert classify(result, code).category == "environment"
    assert f"disk limit of {LIMIT}" in (result.evalue or ""), result.evalue
    assert "No space left on device" in (result.evalue or "")
    # The temp space is memory-backed: filling it takes nothing from the host's disk.
    assert free_before - free_after <= NOISE
    size = await isolated.execute(
        "import os\nprint(os.path.getsize('/tmp/fill.bin'))\nos.remove('/tmp/fill.bin')",
        timeout=60,
    )
    assert size.ok, size
    printed = "".join(str(o.get("text", "")) for o in size.outputs if o.get("name") == "stdout")
    assert 0 < int(printed.strip()) <= LIMIT_BYTES


async def test_shell_programs_started_by_the_code_are_capped_too(
    isolated: KernelExecutor, work_dir: Path
) -> None:
    target = work_dir / "dd.bin"
    code = (
        "import subprocess\n"
        "r = subprocess.run(['dd', 'if=/dev/zero', 'of=dd.bin', 'bs=1M', 'count=200'],\n"
        "                   capture_output=True, text=True)\n"
        "print(r.returncode)\n"
    )
    try:
        result = await isolated.execute(code, timeout=120)
        assert result.ok, result
        assert target.stat().st_size <= LIMIT_BYTES
    finally:
        target.unlink(missing_ok=True)


async def test_other_errors_are_not_rewritten(isolated: KernelExecutor) -> None:
    result = await isolated.execute("open('/nonexistent-dir/x', 'w')", timeout=60)
    assert not result.ok
    assert result.ename == "FileNotFoundError"
    assert "disk limit" not in (result.evalue or "")
