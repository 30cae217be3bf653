"""Resource limits shared by the sandbox and docker backends, and what Linux says about a
kernel process that died or stopped answering.

Sizes are written the way docker and the config file write them (`512m`, `2g`); the sandbox
enforces them through a memory/pids/cpu cgroup (v1 or v2, whatever the machine mounts) plus
rlimits, so a runaway cell hits a clean `MemoryError` first and the OOM killer only as a
backstop. A dead kernel never explains itself: its exit status, its memory cgroup's OOM counter
and `/proc/<pid>/status` (stopped? SIGINT ignored or blocked?) are what tell the user why.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

CGROUP_ROOT = Path(os.environ.get("CODEFLOW_CGROUP_ROOT", "/sys/fs/cgroup"))
CGROUP_PREFIX = "codeflow-"
AS_HEADROOM = 256 * 1024**2
"""Virtual memory above the memory limit: an idle kernel maps ~215 MB with MALLOC_ARENA_MAX=2."""

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int, *, what: str = "memory limit") -> int:
    """`512m` -> 536870912. Raises ConfigError with the accepted forms on bad input."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise ConfigError(
                f"{what} {text!r} is not a size; write a number with an optional unit "
                "k, m, g or t (for example 512m or 2g)"
            )
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 32 * 1024**2:
        raise ConfigError(f"{what} {text!r} is too small; the kernel needs at least 32m")
    return value


DISK_HOOK_NAME = "codeflow_disk_limit.py"

_DISK_HOOK = """\
def _codeflow_disk_limit(disk, tmp):
    import errno
    import os

    def explain(shell, etype, value, tb, tb_offset=None):
        code = getattr(value, "errno", None)
        if "disk limit" in str(value) or "temp space" in str(value):
            pass
        elif code == errno.EFBIG:
            value.strerror = (
                f"No space left on device: the disk limit of {disk} is reached "
                "(execution.disk_limit: no file may grow past it)"
            )
        elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            try:
                st = os.statvfs("/tmp")
                tmp_full = st.f_bavail * st.f_frsize < (1 << 20)
            except OSError:
                tmp_full = False
            if tmp_full and tmp == disk:
                value.strerror = (
                    f"No space left on device: the disk limit of {disk} is reached "
                    "(execution.disk_limit: temp space holds at most that)"
                )
            elif tmp_full:
                value.strerror = (
                    f"No space left on device: the temp space of {tmp} is full "
                    f"(execution.disk_limit is {disk}; /tmp holds at most {tmp})"
                )
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    get_ipython().set_custom_exc((OSError,), explain)


_codeflow_disk_limit(DISK, TMP)
del _codeflow_disk_limit
"""


def disk_hook(run_dir: str, disk: int, tmp: int) -> list[str]:
    """Write the kernel start-up file that names the limit when a write fails for lack of
    space (EFBIG past the file-size limit, ENOSPC on the capped temp space); return the kernel
    arguments that run it. The file lives in the run dir, which the sandbox binds."""
    path = os.path.join(run_dir, DISK_HOOK_NAME)
    text = _DISK_HOOK.replace("DISK, TMP", f"{format_size(disk)!r}, {format_size(tmp)!r}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
    return [f"--IPKernelApp.exec_files={json.dumps([path])}"]


def format_size(value: int) -> str:
    """The inverse of parse_size for messages: 536870912 -> `512m`."""
    for unit in ("t", "g", "m", "k"):
        size = _UNITS[unit]
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


@dataclass(frozen=True)
class Limits:
    memory: int
    cpus: float
    pids: int
    disk: int = 1024**3
    """Largest file the code may write; its temp space is at most this large."""

    @property
    def address_space(self) -> int:
        return self.memory + AS_HEADROOM

    @property
    def memory_text(self) -> str:
        return format_size(self.memory)


def cgroup_version() -> int:
    """2 on a unified hierarchy, 1 when per-controller hierarchies are mounted, 0 if none."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return 2
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
        return 1
    return 0


def cgroup_problem() -> str | None:
    """Why this process cannot create resource-limited cgroups, or None when it can."""
    version = cgroup_version()
    if version == 0:
        return f"no cgroup filesystem with a memory controller under {CGROUP_ROOT}"
    dirs = [CGROUP_ROOT / c for c in ("memory", "pids", "cpu")] if version == 1 else [CGROUP_ROOT]
    for folder in dirs:
        if not folder.is_dir():
            return f"cgroup controller {folder} is not mounted"
        if not os.access(folder, os.W_OK):
            return f"no write access to {folder} (run as root or delegate a cgroup)"
    if version == 2:
        controllers = (CGROUP_ROOT / "cgroup.subtree_control").read_text().split()
        missing = {"memory", "pids", "cpu"} - set(controllers)
        if missing:
            return "cgroup v2 controllers not enabled for children: " + ", ".join(sorted(missing))
    return None


class CgroupSet:
    """The cgroup directories of one kernel launch (v1: one per controller; v2: one)."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.version = cgroup_version()
        if self.version == 2:
            self.dirs = [CGROUP_ROOT / name]
        else:
            self.dirs = [CGROUP_ROOT / c / name for c in ("memory", "pids", "cpu")]

    def create(self) -> None:
        for folder in self.dirs:
            folder.mkdir(exist_ok=True)
        mem, pids = self.limits.memory, self.limits.pids
        period = 100_000
        quota = max(1000, int(self.limits.cpus * period))
        if self.version == 2:
            (base,) = self.dirs
            _write(base / "memory.max", str(mem))
            with contextlib.suppress(OSError):
                _write(base / "memory.swap.max", "0")
            _write(base / "pids.max", str(pids))
            _write(base / "cpu.max", f"{quota} {period}")
        else:
            memory, pid_dir, cpu = self.dirs
            _write(memory / "memory.limit_in_bytes", str(mem))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                with contextlib.suppress(OSError):
                    _write(swap, str(mem))
            _write(pid_dir / "pids.max", str(pids))
            _write(cpu / "cpu.cfs_period_us", str(period))
            _write(cpu / "cpu.cfs_quota_us", str(quota))

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in path.read_text().split())
        return found

    def oom_kills(self) -> int:
        """How many processes the OOM killer took in this cgroup (0 if unknown)."""
        path = self.dirs[0] / ("memory.events" if self.version == 2 else "memory.oom_control")
        return read_oom_kills(path) or 0

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill whatever is left inside and remove the directories."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            removed = True
            for folder in self.dirs:
                if folder.is_dir():
                    try:
                        folder.rmdir()
                    except OSError:
                        removed = False
            if removed or time.monotonic() > deadline:
                return
            time.sleep(0.05)


def leftover_cgroups() -> list[Path]:
    """Every codeflow cgroup directory on this machine (tests count them before/after)."""
    roots = (
        [CGROUP_ROOT]
        if cgroup_version() == 2
        else [CGROUP_ROOT / c for c in ("memory", "pids", "cpu")]
    )
    found: list[Path] = []
    for root in roots:
        with contextlib.suppress(OSError):
            found.extend(p for p in root.iterdir() if p.name.startswith(CGROUP_PREFIX))
    return found


def _write(path: Path, value: str) -> None:
    path.write_text(value)


# --- what the machine says about a kernel process ------------------------------------------

VMSTAT = Path("/proc/vmstat")

SIGNAL_MEANINGS: dict[int, str] = {
    signal.SIGSEGV: (
        "segmentation fault, an invalid memory access in native code such as ctypes "
        "or a C extension"
    ),
    signal.SIGBUS: "bus error: native code touched memory that is not backed any more",
    signal.SIGILL: "illegal instruction in native code",
    signal.SIGFPE: "arithmetic fault in native code",
    signal.SIGABRT: "aborted by native code, a failed C assertion or abort()",
    signal.SIGKILL: "sent from outside the kernel",
    signal.SIGTERM: "sent from outside the kernel",
}


def read_oom_kills(path: Path) -> int | None:
    """The `oom_kill` field of a memory.events / memory.oom_control / vmstat file, if any."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def oom_counter_file(pid: int) -> Path:
    """Where OOM kills that may hit `pid` are counted: its memory cgroup, else the system.

    A memory-limited container or slice running codeflow OOM-kills the kernel inside its own
    cgroup; a machine out of memory counts the kill in /proc/vmstat only.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return VMSTAT
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if "memory" in controllers.split(","):
            candidate = CGROUP_ROOT / "memory" / relative / "memory.oom_control"
        elif hierarchy == "0" and not controllers and cgroup_version() == 2:
            candidate = CGROUP_ROOT / relative / "memory.events"
        else:
            continue
        if read_oom_kills(candidate) is not None:
            return candidate
    return VMSTAT


@dataclass(frozen=True)
class OomWatch:
    """An OOM-kill counter read when a kernel started, to compare after it died."""

    path: Path
    count: int | None

    @classmethod
    def of(cls, pid: int | None) -> OomWatch:
        path = oom_counter_file(pid) if pid else VMSTAT
        return cls(path, read_oom_kills(path))

    def fired(self) -> bool:
        """Whether the OOM killer took a process since the watch began."""
        now = read_oom_kills(self.path)
        return self.count is not None and now is not None and now > self.count


def exit_signal(code: int | None, *, shell_convention: bool = False) -> int | None:
    """The signal that ended a process: a negative Popen status, or 128+n from a wrapper
    (bwrap, docker) that reports its child's signal the way shells do."""
    if code is None:
        return None
    if code < 0:
        return -code
    if shell_convention and 128 < code < 128 + 65:
        return code - 128
    return None


def signal_text(signum: int) -> str:
    """`SIGSEGV (segmentation fault: ...)` for a signal number."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    meaning = SIGNAL_MEANINGS.get(signum)
    return f"{name} ({meaning})" if meaning else name


@dataclass(frozen=True)
class ProcStatus:
    """The parts of /proc/<pid>/status that say why a process does not react."""

    state: str
    ignored: int
    blocked: int

    def ignores(self, signum: int) -> bool:
        return bool(self.ignored >> (signum - 1) & 1)

    def blocks(self, signum: int) -> bool:
        return bool(self.blocked >> (signum - 1) & 1)


def proc_status(pid: int) -> ProcStatus | None:
    """State and signal masks of `pid` (the main thread's blocked mask), None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    try:
        return ProcStatus(
            state=fields.get("State", "?")[:1],
            ignored=int(fields.get("SigIgn", "0"), 16),
            blocked=int(fields.get("SigBlk", "0"), 16),
        )
    except ValueError:
        return None


def unresponsive_reason(pid: int | None) -> str:
    """Why a kernel did not react to an interrupt, when its process status shows it."""
    status = proc_status(pid) if pid else None
    if status is None:
        return ""
    if status.state in ("T", "t"):
        return "the kernel process was stopped (SIGSTOP or a debugger) and could not answer"
    if status.state == "D":
        return "the kernel process was stuck in uninterruptible I/O"
    if status.ignores(signal.SIGINT):
        return "the code set SIGINT to be ignored (signal.SIG_IGN), so the interrupt had no effect"
    if status.blocks(signal.SIGINT):
        return (
            "the code blocked SIGINT in the kernel's main thread (signal.pthread_sigmask), "
            "so the interrupt never arrived"
        )
    return ""


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc; empty when unreadable)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat.rsplit(b")", 1)[-1].split()
            if len(fields) > 1 and fields[1] == str(pid).encode():
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def kill_tagged(key: str, value: str) -> int:
    """SIGKILL every process whose environment holds `key=value`; returns how many.

    A child the kernel started in a session of its own escapes the kernel's process group, and
    once the kernel is dead no parent link leads to it; the environment it inherited still does.
    """
    needle = f"{key}={value}".encode()
    own = os.getpid()
    killed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == own:
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
    return killed
