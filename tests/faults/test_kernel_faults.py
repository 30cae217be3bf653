"""Kernel faults, injected for real on the `kernel`, `sandbox` and `docker` backends.

Death mid-run (`os._exit`, a segfault through ctypes, the OOM killer), a kernel that stops
answering (SIGSTOP from outside, a paused container, SIGINT blocked in C), an interrupt that is
ignored (SIG_IGN) and a restart that fails: each must be noticed, explained as an environment
failure, recovered where possible, and leave nothing behind. What a run leaves is found from its
own work directory (every kernel runs there), so other work on the machine is never counted:
the kernel processes, every process whose command line names their run directories (launchers,
bwrap, the docker CLI), those directories, the kernels' cgroups and containers, and the test
process's own children.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from modelserver import ModelServer
from needs import need

from codeflow_magic.analysis import classify
from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendError
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.docker import LABEL, daemon_problem, leftover_containers
from codeflow_magic.executors.kernel import KernelExecutor, native_stack
from codeflow_magic.executors.limits import (
    CGROUP_ROOT,
    cgroup_problem,
    exit_signal,
    leftover_cgroups,
)
from codeflow_magic.models import ExecutionResult, Output

pytestmark = [pytest.mark.kernel]

MEMORY = "512m"
LOCAL_MEMORY = 600 * 1024**2
"""The memory-limited group a local kernel (or a whole CLI run) is put in for OOM kills."""
RUN_TIMEOUT = 240.0
"""Upper bound for one execution in these tests: a hang fails the test instead of stalling."""

# The pause lets the printed line leave the kernel: output sent before a death is kept.
EXIT_CODE = "import os, time\nprint('going', flush=True)\ntime.sleep(0.5)\nos._exit(1)"
SEGFAULT_CODE = "import ctypes\nctypes.string_at(0)"
GROW_CODE = "chunks = []\nwhile True:\n    chunks.append(b'z' * (16 * 1024**2))\n"
# In the sandbox an address-space limit (memory + 256 MB) gives a clean MemoryError before the
# memory cgroup fills; 200 MB in the private /tmp (tmpfs, charged to the cgroup, not to the
# address space) makes the cgroup fill first, so the OOM killer is what stops the kernel.
ISOLATED_OOM_CODE = (
    "with open('/tmp/ballast', 'wb') as fh:\n"
    "    for _ in range(25):\n"
    "        fh.write(b'b' * (8 * 1024**2))\n" + GROW_CODE
)
SIGN_IGNORED_CODE = (
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ignoring', flush=True)\nwhile True:\n    pass\n"
)
SIGINT_BLOCKED_CODE = (
    "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
    "print('blocked', flush=True)\ntime.sleep(600)\n"
)
READY_CODE = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"

BACKENDS = [
    pytest.param("kernel", id="kernel"),
    pytest.param("sandbox", marks=pytest.mark.sandbox, id="sandbox"),
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
]


# --- what a run leaves on the machine --------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int
    """Start time in clock ticks: with the pid, it names one process even if the pid is reused."""


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].split()
    return int(fields[1]), fields[0].decode(), int(fields[19])


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def running(proc: Proc) -> bool:
    """Alive and not a zombie (the same process: pid and start time match)."""
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start and stat[1] != "Z"


def descendants(root: int) -> set[Proc]:
    """Every process below `root` (zombies included: an unreaped child is a leak too)."""
    table: dict[int, tuple[int, int]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            table[pid] = (stat[0], stat[2])
    found: set[Proc] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and Proc(pid, start) not in found:
                found.add(Proc(pid, start))
                frontier.append(pid)
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Give asynchronous teardown (a killed process being reaped) time; no timing asserted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Footprint:
    """Watches one work directory while a scenario runs, then proves nothing is left.

    A background thread polls /proc: processes whose cwd is the work dir are kernels; their
    `-f` connection files name run directories; processes whose command line names such a
    directory are launchers (the sandbox launcher and bwrap, the docker CLI) whose stderr
    (the kernel log) names the executor's run directory and whose `--name` names the container.
    """

    def __init__(self, work_dir: Path, *, docker: bool = False) -> None:
        self.work_dir = str(work_dir.resolve())
        self.docker = docker
        self.kernels: dict[Proc, list[str]] = {}
        self.helpers: dict[Proc, list[str]] = {}
        self.run_dirs: set[str] = set()
        self.cgroups: set[str] = set()
        self.containers: set[str] = set()
        self.children_before = descendants(os.getpid())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="footprint", daemon=True)

    def __enter__(self) -> Footprint:
        self.scan()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.scan()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.scan()

    def scan(self) -> None:
        with self._lock:
            table: list[tuple[Proc, list[str], str]] = []
            for pid in _pids():
                stat = _stat(pid)
                if stat is None or stat[1] == "Z":
                    continue
                table.append((Proc(pid, stat[2]), _argv(pid), _link(f"/proc/{pid}/cwd")))
            for proc, argv, cwd in table:
                if cwd == self.work_dir and any("ipykernel" in a for a in argv):
                    self.kernels[proc] = argv  # latest: a launcher may exec the kernel
                    if "-f" in argv[:-1]:
                        self.run_dirs.add(os.path.dirname(argv[argv.index("-f") + 1]))
                    self._note_cgroups(proc.pid)
            for proc, argv, _ in table:
                line = " ".join(argv)
                if proc in self.kernels or not any(d in line for d in self.run_dirs):
                    continue
                self.helpers.setdefault(proc, argv)
                self._note_cgroups(proc.pid)
                log = _link(f"/proc/{proc.pid}/fd/2")
                if log.endswith("/kernel.log"):
                    self.run_dirs.add(os.path.dirname(log))
                if argv and os.path.basename(argv[0]) == "docker" and "--name" in argv:
                    self.containers.add(argv[argv.index("--name") + 1])

    def _note_cgroups(self, pid: int) -> None:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            name = line.rsplit("/", 1)[-1]
            if name.startswith("codeflow-"):
                self.cgroups.add(name)

    def kernel_now(self) -> int:
        """The pid of the ipykernel process running now (on this machine's pid namespace)."""
        self.scan()
        with self._lock:
            alive = [
                p
                for p, argv in self.kernels.items()
                if running(p) and os.path.basename(argv[0]).startswith("python")
            ]
        assert len(alive) == 1, f"expected one running kernel, found {alive}"
        return alive[0].pid

    # -- the proof ---------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Everything of this run still present, described; empty when clean."""
        found: list[str] = []
        with self._lock:
            tracked = {**self.kernels, **self.helpers}
            run_dirs, cgroups, containers = set(self.run_dirs), self.cgroups, self.containers
        found += [f"process {p.pid} {' '.join(a)[:160]}" for p, a in tracked.items() if running(p)]
        for pid in _pids():
            cwd = _link(f"/proc/{pid}/cwd")
            line = " ".join(_argv(pid))
            stat = _stat(pid)
            if stat is None or stat[1] == "Z":
                continue
            if cwd == self.work_dir or any(d in line for d in run_dirs):
                found.append(f"process {pid} in the run's dirs: {line[:160]}")
        found += [f"run dir {d}" for d in sorted(run_dirs) if os.path.exists(d)]
        live_cgroups = {p.name for p in leftover_cgroups()}
        found += [f"cgroup {c}" for c in sorted(cgroups & live_cgroups)]
        if self.docker:
            found += [f"container {c}" for c in sorted(containers & set(leftover_containers()))]
            found += [f"container {c} mounting the work dir" for c in self._containers_here()]
        new_children = {
            p for p in descendants(os.getpid()) - self.children_before if _stat(p.pid) is not None
        }
        found += [f"child process {p.pid} {' '.join(_argv(p.pid))[:160]}" for p in new_children]
        return sorted(set(found))

    def _containers_here(self) -> list[str]:
        if daemon_problem() is not None:
            return []
        proc = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label={LABEL}",
                "--filter",
                f"volume={self.work_dir}",
                "--format",
                "{{.Names}}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return proc.stdout.split()

    def assert_clean(self, *, kernels_at_least: int) -> None:
        assert len(self.kernels) >= kernels_at_least, (
            f"the watch saw {len(self.kernels)} kernel(s), expected {kernels_at_least}: "
            f"{self.kernels}"
        )
        # The executor's own run dir (connection file, or the log the launcher writes to).
        assert any(os.path.basename(d).startswith("cf-") for d in self.run_dirs), self.run_dirs
        wait_until(lambda: not self.leftovers())
        left = self.leftovers()
        assert not left, "left behind:\n" + "\n".join(left)


# --- fixtures and helpers ----------------------------------------------------------------------


def require(backend: str) -> None:
    if backend == "sandbox":
        problem = sandbox_problem()
        need(problem is None, f"sandbox backend unavailable: {problem}")
        need(os.geteuid() != 0 or cgroup_problem() is None, f"no cgroups: {cgroup_problem()}")
    elif backend == "docker":
        problem_text = daemon_problem()
        need(problem_text is None, f"docker backend unavailable: {problem_text}")
        need(os.geteuid() == 0, "finding container processes from the host needs root")


@pytest.fixture
def work_dir() -> Iterator[Path]:
    # Under /tmp, not pytest's 0700 tree: the sandbox uid and the container user must reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-fault-", dir="/tmp")).resolve()
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def executor_for(backend: str, work_dir: Path, **extra: Any) -> KernelExecutor:
    settings = load_settings(
        extra={
            "execution.memory_limit": MEMORY,
            "execution.interrupt_grace": 2.0,
            **extra,
        },
        work_dir=work_dir,
    )
    ex = make_executor(settings, work_dir=work_dir, backend=backend)
    assert isinstance(ex, KernelExecutor)
    return ex


async def run(
    ex: KernelExecutor,
    code: str,
    timeout: float = RUN_TIMEOUT,
    on_output: Callable[[Output], None] | None = None,
) -> ExecutionResult:
    return await asyncio.wait_for(
        ex.execute(code, timeout=timeout, on_output=on_output), RUN_TIMEOUT + 60
    )


async def stdout_of(ex: KernelExecutor, code: str) -> str:
    result = await run(ex, code, timeout=60)
    assert result.ok, result
    return "".join(
        str(o.get("text", "")) for o in result.outputs if o.get("output_type") == "stream"
    )


async def check_recovered(ex: KernelExecutor) -> None:
    """State is gone (a fresh kernel), and the fresh kernel works."""
    lost = await run(ex, "kept_before_fault", timeout=60)
    assert lost.ename == "NameError", lost
    assert (await stdout_of(ex, "print(6 * 7)")).strip() == "42"


async def died(ex: KernelExecutor, code: str) -> ExecutionResult:
    await stdout_of(ex, "kept_before_fault = 1")
    result = await run(ex, code)
    assert result.status == "died", result
    assert result.ename == "KernelDied" and result.restarted and not result.state_kept
    assert "it was restarted with empty state" in result.evalue
    return result


class MemoryGroup:
    """A memory-limited cgroup, like a container or a systemd scope with MemoryMax that a user
    runs codeflow in (next to the ones the sandbox makes, never inside another's)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.version = 2 if (CGROUP_ROOT / "cgroup.controllers").exists() else 1
        name = f"cf-fault-test-{uuid.uuid4().hex[:8]}"
        last: OSError | None = None
        base = CGROUP_ROOT / "memory" if self.version == 1 else CGROUP_ROOT
        for parent in [base]:
            folder = parent / name
            try:
                folder.mkdir()
            except OSError as exc:
                last = exc
                continue
            try:
                self._limit(folder)
            except OSError as exc:
                last = exc
                folder.rmdir()
                continue
            self.path = folder
            return
        raise RuntimeError(f"cannot create a memory cgroup: {last}")

    def _limit(self, folder: Path) -> None:
        if self.version == 2:
            (folder / "memory.max").write_text(str(self.limit))
            with suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
        else:
            (folder / "memory.limit_in_bytes").write_text(str(self.limit))
            swap = folder / "memory.memsw.limit_in_bytes"
            if swap.exists():
                with suppress(OSError):
                    swap.write_text(str(self.limit))

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def join_argv(self) -> list[str]:
        """A command prefix that moves itself into this group, then execs the rest."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs)]

    def remove(self) -> None:
        deadline = time.monotonic() + 20
        while self.path.exists():
            with suppress(OSError):
                for pid in self.procs.read_text().split():
                    with suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            with suppress(OSError):
                self.path.rmdir()
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)


@pytest.fixture
def memory_group() -> Iterator[MemoryGroup]:
    need(
        os.geteuid() == 0 and cgroup_problem() is None,
        f"a memory cgroup for the local kernel needs root and cgroups: {cgroup_problem()}",
    )
    group = MemoryGroup(LOCAL_MEMORY)
    try:
        yield group
    finally:
        group.remove()
    assert not group.path.exists()


def write_spec(root: Path, name: str, argv: list[str]) -> KernelSpecManager:
    """A kernelspec under `root/kernels/name` (so JUPYTER_PATH=root finds it too)."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {"argv": argv, "display_name": name, "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root / "kernels")])


KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]

FLAKY = """#!/bin/sh
# Starts the kernel once; every later start fails, as a kernel whose environment broke would.
marker="$1"
shift
if [ -e "$marker" ]; then
    echo "flaky kernel: the environment is gone, refusing to start again" >&2
    exit 3
fi
touch "$marker"
exec "$@"
"""


VANISHING = """#!/bin/sh
# Starts the kernel once and removes itself: the next start cannot even be launched.
rm -f "$0"
exec "$@"
"""


def flaky_spec(root: Path) -> KernelSpecManager:
    script = root / "flaky-kernel.sh"
    script.write_text(FLAKY)
    script.chmod(0o755)
    return write_spec(root, "cf-flaky", [str(script), str(root / "started-once"), *KERNEL_ARGV])


def vanishing_spec(root: Path) -> KernelSpecManager:
    script = root / "vanishing-kernel.sh"
    script.write_text(VANISHING)
    script.chmod(0o755)
    return write_spec(root, "cf-vanishing", [str(script), *KERNEL_ARGV])


# --- how a fault is put into words (pure) -----------------------------------------------------

FAULT_LOG = """[IPKernelApp] WARNING | something at start
Fatal Python error: Segmentation fault

Thread 0x00007f00 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait

Current thread 0x00007f01 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/tmp/ipykernel_77/1155308586.py", line 3 in crash
  File "/tmp/ipykernel_77/1155308586.py", line 5 in <module>
  File "/venv/lib/python3.11/site-packages/IPython/core/interactiveshell.py", line 3823 in run_code

Extension modules: zmq.backend.cython._zmq (total: 1)
"""


def test_native_stack_reads_like_a_traceback_cut_at_the_cell() -> None:
    assert native_stack(FAULT_LOG) == (
        "Fatal Python error: Segmentation fault (most recent call last):\n"
        '  File "<cell>", line 5 in <module>\n'
        '  File "<cell>", line 3 in crash\n'
        '  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at'
    )
    assert native_stack("[IPKernelApp] nothing fatal here\n") == ""
    died = ExecutionResult(
        status="died",
        ename="KernelDied",
        evalue="the kernel died (exit code -11): killed by SIGSEGV",
        traceback=(native_stack(FAULT_LOG),),
        detail="killed by SIGSEGV",
    )
    error = classify(died, "import ctypes\ndef crash():\n    ctypes.string_at(0)\n\ncrash()")
    assert error.line == 3 and error.source_line == "    ctypes.string_at(0)"


@pytest.mark.parametrize(
    ("code", "shell", "expected"),
    [
        (-11, False, signal.SIGSEGV),
        (139, True, signal.SIGSEGV),
        (137, True, signal.SIGKILL),
        (139, False, None),  # a plain process that exited with 139 was not signalled
        (1, True, None),
        (0, False, None),
        (None, True, None),
    ],
)
def test_exit_status_to_signal(code: int | None, shell: bool, expected: int | None) -> None:
    assert exit_signal(code, shell_convention=shell) == expected


def test_timeout_classification_carries_why_the_interrupt_failed() -> None:
    result = ExecutionResult(
        status="timeout",
        ename="TimeoutError",
        evalue="execution exceeded 2s; kernel restarted, state lost",
        restarted=True,
        state_kept=False,
        detail="the run ignored the interrupt for 2s: the kernel process was stopped",
    )
    error = classify(result, "x")
    assert error.category == "environment"
    assert error.evalue.endswith(
        "(the run ignored the interrupt for 2s: the kernel process was stopped)"
    )
    kept = classify(
        ExecutionResult(
            status="timeout",
            ename="TimeoutError",
            evalue="execution exceeded 2s; interrupted, state kept",
            detail="the run was interrupted after the time limit",
        ),
        "x",
    )
    assert kept.evalue == "execution exceeded 2s; interrupted, state kept"


# --- 1. death mid-run --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_death_by_os_exit(backend: str, work_dir: Path) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            result = await died(ex, EXIT_CODE)
            assert "(exit code 1)" in result.evalue, result
            assert "SIG" not in result.evalue, "an exit status is not a signal"
            assert any("going" in str(o.get("text", "")) for o in result.outputs)
            error = classify(result, EXIT_CODE)
            assert error.category == "environment"
            assert "exit code 1" in error.root_cause
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_death_by_segfault_names_the_signal_and_the_line(
    backend: str, work_dir: Path
) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            result = await died(ex, SEGFAULT_CODE)
            assert "killed by SIGSEGV (segmentation fault" in result.evalue, result
            assert result.detail.startswith("killed by SIGSEGV"), result
            # The fault handler's stack, from the kernel's own stderr, points at the cell line.
            stack = "\n".join(result.traceback)
            assert stack.startswith("Fatal Python error: Segmentation fault"), stack
            assert 'File "<cell>", line 2 in <module>' in stack, stack
            assert "in string_at" in stack, stack
            error = classify(result, SEGFAULT_CODE)
            assert error.category == "environment"
            assert error.line == 2 and error.source_line == "ctypes.string_at(0)"
            assert "SIGSEGV" in error.root_cause and "ctypes.string_at(0)" in error.root_cause
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


async def test_local_kernel_oom_killed_in_a_memory_limited_group(
    work_dir: Path, memory_group: MemoryGroup, tmp_path: Path
) -> None:
    """The local kernel has no memory limit of its own; run where memory is limited (a
    container, a systemd scope: here a cgroup its kernelspec joins), the OOM killer stops it
    and the death says so, from the OOM counter of the kernel's memory cgroup."""
    specs = write_spec(tmp_path, "cf-limited", [*memory_group.join_argv(), *KERNEL_ARGV])
    with Footprint(work_dir) as fp:
        ex = KernelExecutor(work_dir=work_dir, kernel_name="cf-limited", kernel_spec_manager=specs)
        try:
            await ex.start()
            assert str((await stdout_of(ex, "import os\nprint(os.getpid())")).strip()) in (
                memory_group.procs.read_text().split()
            ), "the kernel runs in the limited group"
            before = memory_group.oom_kills()
            result = await died(ex, GROW_CODE)
            assert memory_group.oom_kills() > before, "the OOM killer did it"
            assert "(exit code -9)" in result.evalue, result
            assert "killed: out of memory" in result.evalue, result
            assert result.detail.startswith("killed: out of memory"), result
            assert classify(result, GROW_CODE).category == "environment"
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


DETACHED_CHILD = (
    "import subprocess\n"
    "child = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_children_in_their_own_session_do_not_outlive_the_kernel(
    backend: str, work_dir: Path
) -> None:
    """A child in a session of its own escapes the kernel's process group; it must still go
    when the kernel dies and when the executor shuts down."""
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            printed = await stdout_of(ex, DETACHED_CHILD)
            assert wait_until(lambda: len(_sleepers(work_dir)) == 1, 5), _whereabouts(printed)
            sleepers = _sleepers(work_dir)
            result = await run(ex, DETACHED_CHILD + "import os, time\ntime.sleep(0.3)\nos._exit(1)")
            assert result.status == "died", result
            assert wait_until(lambda: not any(running(p) for p in sleepers))
            assert len(_sleepers(work_dir)) == 0, "the dead kernel's children are gone"
            printed = await stdout_of(ex, DETACHED_CHILD)
            assert wait_until(lambda: len(_sleepers(work_dir)) == 1, 5), _whereabouts(printed)
            sleepers = _sleepers(work_dir)
        finally:
            await ex.shutdown()
        assert wait_until(lambda: not any(running(p) for p in sleepers))
    fp.assert_clean(kernels_at_least=2)


def _whereabouts(printed: str) -> str:
    """What became of the child a run said it started (for a failure message)."""
    pid = int(printed.split()[0]) if printed.split() else -1
    return f"child {pid}: argv {_argv(pid)}, cwd {_link(f'/proc/{pid}/cwd')!r}, state {_stat(pid)}"


def _sleepers(work_dir: Path) -> list[Proc]:
    """`sleep 600` processes started from the work dir (the children these tests start)."""
    found: list[Proc] = []
    for pid in _pids():
        stat = _stat(pid)
        if (
            stat is not None
            and stat[1] != "Z"
            and _argv(pid) == ["sleep", "600"]
            and _link(f"/proc/{pid}/cwd") == str(work_dir)
        ):
            found.append(Proc(pid, stat[2]))
    return found


async def test_local_kernel_killed_from_outside_is_not_called_oom(work_dir: Path) -> None:
    with Footprint(work_dir) as fp:
        ex = executor_for("kernel", work_dir)
        try:
            await stdout_of(ex, "kept_before_fault = 1")
            seen = asyncio.Event()

            def on_output(out: Output) -> None:
                if "ready" in str(out.get("text", "")):
                    seen.set()

            task = asyncio.ensure_future(run(ex, READY_CODE, on_output=on_output))
            await asyncio.wait_for(seen.wait(), 60)
            os.kill(fp.kernel_now(), signal.SIGKILL)
            result = await task
            assert result.status == "died", result
            assert "(exit code -9): killed by SIGKILL (sent from outside the kernel);" in (
                result.evalue
            ), result
            assert "out of memory" not in result.evalue and "possibly" not in result.evalue
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sandbox", marks=pytest.mark.sandbox, id="sandbox"),
        pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    ],
)
async def test_isolated_kernel_oom_killed_under_its_memory_limit(
    backend: str, work_dir: Path
) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            result = await died(ex, ISOLATED_OOM_CODE)
            assert f"(exit code 137): killed: out of memory, limit {MEMORY}" in result.evalue
            assert result.detail == f"killed: out of memory, limit {MEMORY}"
            error = classify(result, ISOLATED_OOM_CODE)
            assert error.category == "environment"
            assert f"out of memory, limit {MEMORY}" in error.root_cause
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


# --- 2. a kernel that stops answering; 3. an interrupt that is ignored ---------------------------


async def _hang(
    ex: KernelExecutor, code: str, marker: str, on_marker: Callable[[], None] | None = None
) -> ExecutionResult:
    """Run `code` with a 2 s limit; `on_marker` runs once its marker line is printed."""
    await stdout_of(ex, "kept_before_fault = 1")
    seen = threading.Event()

    def on_output(out: Output) -> None:
        if marker in str(out.get("text", "")) and not seen.is_set():
            seen.set()
            if on_marker is not None:
                on_marker()

    result = await run(ex, code, timeout=2, on_output=on_output)
    assert seen.is_set(), result
    assert result.status == "timeout", result
    assert result.restarted and not result.state_kept, result
    assert result.evalue == "execution exceeded 2s; kernel restarted, state lost"
    assert result.detail.startswith("the run ignored the interrupt for 2s: "), result
    return result


@pytest.mark.parametrize("backend", BACKENDS)
async def test_stopped_kernel_is_restarted_and_explained(backend: str, work_dir: Path) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            stopped: list[int] = []

            def stop() -> None:
                pid = fp.kernel_now()
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

            result = await _hang(ex, READY_CODE, "ready", stop)
            assert stopped
            assert "the kernel process was stopped (SIGSTOP" in result.detail, result
            error = classify(result, READY_CODE)
            assert error.category == "environment"
            assert "stopped (SIGSTOP" in error.evalue and "stopped (SIGSTOP" in error.root_cause
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.docker
async def test_paused_container_is_restarted_and_explained(work_dir: Path) -> None:
    require("docker")
    with Footprint(work_dir, docker=True) as fp:
        ex = executor_for("docker", work_dir)
        try:
            paused: list[str] = []

            def pause() -> None:
                fp.scan()
                (name,) = fp.containers
                subprocess.run(["docker", "pause", name], check=True, capture_output=True)
                paused.append(name)

            result = await _hang(ex, READY_CODE, "ready", pause)
            assert paused
            assert "the container was paused (docker pause)" in result.detail, result
            assert classify(result, READY_CODE).category == "environment"
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigint_blocked_in_native_sleep(backend: str, work_dir: Path) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            result = await _hang(ex, SIGINT_BLOCKED_CODE, "blocked")
            assert "blocked SIGINT in the kernel's main thread" in result.detail, result
            assert classify(result, SIGINT_BLOCKED_CODE).category == "environment"
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ignored_interrupt_escalates_to_restart(backend: str, work_dir: Path) -> None:
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        ex = executor_for(backend, work_dir)
        try:
            result = await _hang(ex, SIGN_IGNORED_CODE, "ignoring")
            assert "the code set SIGINT to be ignored (signal.SIG_IGN)" in result.detail
            error = classify(result, SIGN_IGNORED_CODE)
            assert error.category == "environment"
            assert "SIG_IGN" in error.evalue and "SIG_IGN" in error.root_cause
            await check_recovered(ex)
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=2)


# --- 4. a restart that fails -------------------------------------------------------------------


async def test_failed_restart_after_death_is_a_backend_error(
    work_dir: Path, tmp_path: Path
) -> None:
    specs = flaky_spec(tmp_path)
    with Footprint(work_dir) as fp:
        ex = KernelExecutor(work_dir=work_dir, kernel_name="cf-flaky", kernel_spec_manager=specs)
        try:
            assert (await stdout_of(ex, "print('first start works')")).strip() == (
                "first start works"
            )
            run_dir = ex.run_dir
            assert run_dir is not None
            with pytest.raises(BackendError) as failed:
                await run(ex, EXIT_CODE)
            message = str(failed.value)
            assert message.startswith(
                "the kernel could not be restarted after it died (exit code 1)"
            ), message
            assert "the kernel said:\nflaky kernel: the environment is gone" in message
            # Nothing half-alive: the executor let go of the kernel and its run dir.
            assert not ex.started and ex.run_dir is None and not run_dir.exists()
            # Asking again tries a fresh start, which fails with the same explanation.
            with pytest.raises(BackendError, match="did not become ready") as again:
                await run(ex, "print(1)")
            assert "flaky kernel: the environment is gone" in str(again.value)
            assert not ex.started and ex.run_dir is None
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=1)


async def test_restart_that_cannot_launch_is_a_backend_error(
    work_dir: Path, tmp_path: Path
) -> None:
    specs = vanishing_spec(tmp_path)
    with Footprint(work_dir) as fp:
        ex = KernelExecutor(
            work_dir=work_dir, kernel_name="cf-vanishing", kernel_spec_manager=specs
        )
        try:
            assert (await stdout_of(ex, "print('once')")).strip() == "once"
            with pytest.raises(BackendError) as failed:
                await run(ex, SEGFAULT_CODE)
            message = str(failed.value)
            assert message.startswith(
                "the kernel could not be restarted after it died (exit code -11): killed by SIGSEGV"
            ), message
            assert "No such file or directory" in message and "vanishing-kernel.sh" in message
            # The dead kernel's crash report belongs to the death, not to the failed start.
            assert "Extension modules" not in message and 'File "' not in message, message
            assert not ex.started and ex.run_dir is None
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=1)


async def test_failed_restart_after_ignored_interrupt(work_dir: Path, tmp_path: Path) -> None:
    specs = flaky_spec(tmp_path)
    with Footprint(work_dir) as fp:
        ex = KernelExecutor(
            work_dir=work_dir,
            kernel_name="cf-flaky",
            kernel_spec_manager=specs,
            interrupt_grace=1.0,
        )
        try:
            with pytest.raises(BackendError) as failed:
                await run(ex, SIGN_IGNORED_CODE, timeout=1.5)
            message = str(failed.value)
            assert "could not be restarted after the run ignored the interrupt" in message
            assert "flaky kernel: the environment is gone" in message
            assert not ex.started
        finally:
            await ex.shutdown()
    fp.assert_clean(kernels_at_least=1)


# --- 5. a host that ends without shutting its kernel down ---------------------------------------

ABANDONING_HOST = """
import asyncio, sys
from pathlib import Path
from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor

async def main() -> None:
    work_dir = Path(sys.argv[2])
    settings = load_settings(extra={"execution.memory_limit": "512m"}, work_dir=work_dir)
    ex = make_executor(settings, work_dir=work_dir, backend=sys.argv[1])
    died = await ex.execute("import ctypes\\nctypes.string_at(0)", timeout=120)
    assert died.status == "died", died
    child = await ex.execute(sys.argv[3], timeout=120)
    assert child.ok, child
    print("abandoning", flush=True)
    raise RuntimeError("the host gives up without shutting the kernel down")

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_host_that_ends_without_shutdown_leaves_nothing(backend: str, work_dir: Path) -> None:
    """An API user whose program raises (or a pipe that closes) never calls shutdown: the
    kernel, its detached children, its cgroups, container and run dirs still go at exit."""
    require(backend)
    with Footprint(work_dir, docker=backend == "docker") as fp:
        proc = subprocess.run(
            [sys.executable, "-c", ABANDONING_HOST, backend, str(work_dir), DETACHED_CHILD],
            cwd=work_dir.parent,
            env={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "abandoning\n", proc.stderr
    assert "the host gives up" in proc.stderr
    fp.assert_clean(kernels_at_least=2)


# --- 6. whole CLI runs: the flow, the fix request, and nothing left behind ----------------------


def ask(
    server: ModelServer,
    work_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_")) and k != "PYTEST_CURRENT_TEST"
    }
    home = work_dir / ".home"  # removed with the work dir
    clean["XDG_CONFIG_HOME"] = str(home / ".config")
    clean["XDG_CACHE_HOME"] = str(home / ".cache")
    clean.update(server.env())
    clean.update(env or {})
    return subprocess.run(
        [
            *(prefix or []),
            sys.executable,
            "-m",
            "codeflow_magic.cli",
            "ask",
            *args,
            "--format",
            "json",
            "--no-cache",
            "--scan",
            "off",
            "--work-dir",
            str(work_dir),
        ],
        cwd=work_dir,
        env=clean,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def fenced(code: str) -> str:
    return f"Here it is.\n```python\n{code}\n```\n"


FIXED = "print('recovered')"


@dataclass(frozen=True)
class CliDeath:
    backend: str
    code: str
    cause: str
    """What the fix request must name."""


CLI_DEATHS = [
    pytest.param(CliDeath("kernel", EXIT_CODE, "(exit code 1)"), id="kernel-exit"),
    pytest.param(CliDeath("kernel", SEGFAULT_CODE, "killed by SIGSEGV"), id="kernel-segfault"),
    pytest.param(
        CliDeath("sandbox", SEGFAULT_CODE, "killed by SIGSEGV"),
        marks=pytest.mark.sandbox,
        id="sandbox-segfault",
    ),
    pytest.param(
        CliDeath("sandbox", ISOLATED_OOM_CODE, f"killed: out of memory, limit {MEMORY}"),
        marks=pytest.mark.sandbox,
        id="sandbox-oom",
    ),
    pytest.param(
        CliDeath("docker", SEGFAULT_CODE, "killed by SIGSEGV"),
        marks=pytest.mark.docker,
        id="docker-segfault",
    ),
    pytest.param(
        CliDeath("docker", ISOLATED_OOM_CODE, f"killed: out of memory, limit {MEMORY}"),
        marks=pytest.mark.docker,
        id="docker-oom",
    ),
]


def _check_repaired(
    proc: subprocess.CompletedProcess[str], server: ModelServer, cause: str, *more: str
) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    record: dict[str, Any] = json.loads(proc.stdout)
    attempts = record["attempts"]
    assert [a["success"] for a in attempts] == [False, True], attempts
    first = attempts[0]["error"]
    assert first["category"] == "environment", first
    assert cause in first["evalue"], first
    # The model was told: the second request is a fix request naming the cause.
    assert len(server.requests) == 2, server.prompts()
    fix = server.requests[1].last_user
    assert "Error class: environment" in fix, fix
    for needed in (cause, *more):
        assert needed in fix, (needed, fix)
    out = "".join(str(o.get("text", "")) for o in record["outputs"])
    assert out == "recovered\n", record["outputs"]
    return record


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_DEATHS)
def test_cli_run_recovers_from_death(case: CliDeath, work_dir: Path) -> None:
    require(case.backend)
    with ModelServer() as server:
        server.add_rule(contains="Error class: environment", reply=fenced(FIXED), times=1)
        server.add_rule(contains="crash on purpose", reply=fenced(case.code), times=1)
        with Footprint(work_dir, docker=case.backend == "docker") as fp:
            proc = ask(
                server,
                work_dir,
                "crash on purpose",
                "--backend",
                case.backend,
                "--memory-limit",
                MEMORY,
            )
        record = _check_repaired(proc, server, case.cause, "restarted with empty state")
        assert record["backend"] == case.backend
        if case.code == SEGFAULT_CODE:
            fix = server.requests[1].last_user
            assert "Failing line 2: ctypes.string_at(0)" in fix, fix
            assert 'File "<cell>", line 2 in <module>' in fix, fix
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.slow
def test_cli_run_in_a_memory_limited_group_recovers_from_oom_kill(
    work_dir: Path, memory_group: MemoryGroup
) -> None:
    """codeflow itself runs in a memory-limited group; the local kernel grows until the OOM
    killer takes it; the model hears "out of memory" and the second attempt works."""
    with ModelServer() as server:
        server.add_rule(contains="Error class: environment", reply=fenced(FIXED), times=1)
        server.add_rule(contains="use all memory", reply=fenced(GROW_CODE), times=1)
        before = memory_group.oom_kills()
        with Footprint(work_dir) as fp:
            proc = ask(
                server,
                work_dir,
                "use all memory",
                "--backend",
                "kernel",
                prefix=memory_group.join_argv(),
            )
        assert memory_group.oom_kills() > before
        _check_repaired(proc, server, "killed: out of memory", "restarted with empty state")
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.slow
def test_cli_ignored_interrupt_is_explained_to_the_model(work_dir: Path) -> None:
    with ModelServer() as server:
        server.add_rule(contains="Error class: environment", reply=fenced(FIXED), times=1)
        server.add_rule(contains="spin forever", reply=fenced(SIGN_IGNORED_CODE), times=1)
        with Footprint(work_dir) as fp:
            proc = ask(
                server,
                work_dir,
                "spin forever",
                "--backend",
                "kernel",
                "--timeout",
                "2",
                "execution.interrupt_grace=1",
            )
        _check_repaired(
            proc,
            server,
            "kernel restarted, state lost",
            "the code set SIGINT to be ignored (signal.SIG_IGN)",
        )
    fp.assert_clean(kernels_at_least=2)


@pytest.mark.slow
def test_cli_failed_restart_exits_4_without_traceback(work_dir: Path, tmp_path: Path) -> None:
    flaky_spec(tmp_path)
    with ModelServer() as server:
        server.add_rule(contains="crash on purpose", reply=fenced(EXIT_CODE))
        with Footprint(work_dir) as fp:
            proc = ask(
                server,
                work_dir,
                "crash on purpose",
                "--backend",
                "kernel",
                "--kernel",
                "cf-flaky",
                env={"JUPYTER_PATH": str(tmp_path)},
            )
        assert proc.returncode == 4, (proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "could not be restarted after it died (exit code 1)" in proc.stderr
        assert "flaky kernel: the environment is gone, refusing to start again" in proc.stderr
        assert len(server.requests) == 1, "no fix is asked for when the backend is broken"
    fp.assert_clean(kernels_at_least=1)
