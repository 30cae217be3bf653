"""`--backend sandbox`: the local kernel inside a bubblewrap sandbox.

The kernel is launched by a jupyter_client provisioner, so everything the local kernel
executor does (interrupts, restarts, death polling, output handling) applies unchanged. The
provisioner wraps the kernel command in: a tiny shell launcher that puts itself into
memory/pids/cpu cgroups, `prlimit` (address-space limit for a clean MemoryError), `setpriv`
(an unprivileged uid: bwrap launched as root creates no user namespace, and root would read
/etc/shadow) and `bwrap` (no network, read-only system, private /tmp, only the work dir
writable, a cleared environment so API keys never reach generated code).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Int, List, Unicode

from ..errors import BackendUnavailable
from .limits import (
    CGROUP_PREFIX,
    CgroupSet,
    cgroup_problem,
    child_pids,
    cmdline,
    disk_hook,
    parse_size,
)
from .provisioner import DiagnosingProvisioner

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo

    from ..config import Settings
    from .base import Executor

PROVISIONER_NAME = "codeflow-bwrap"
NOBODY = 65534
KERNEL_ENV_PASSTHROUGH = ("LANG", "LC_ALL", "TZ")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")

# What the last kernel of a sandbox died of, by sandbox id (read by the executor's death hook).
_DEATHS: dict[str, str] = {}
_ACTIVE: dict[str, BubblewrapProvisioner] = {}

_LAUNCHER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


def tool(name: str) -> str | None:
    """Where a tool is; `CODEFLOW_<NAME>` overrides PATH lookup (tests point it at nothing)."""
    override = os.environ.get(f"CODEFLOW_{name.upper()}")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    return shutil.which(name)


def python_prefixes() -> list[str]:
    """Directories the kernel's Python needs (the venv and the interpreter it is built on)."""
    found: list[str] = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        real = os.path.realpath(prefix)
        for candidate in (prefix, real):
            if candidate.startswith("/usr") or candidate in found:
                continue
            found.append(candidate)
    exe = os.path.realpath(sys.executable)
    if not exe.startswith("/usr/"):
        folder = str(Path(exe).parent.parent)
        if folder not in found:
            found.append(folder)
    return found


def can_access(path: str, uid: int, test: str = "-r") -> bool:
    """Whether `uid` can access `path` (checked as that uid, so ACLs and parents count)."""
    if os.geteuid() != 0 or uid == os.geteuid():
        return os.access(path, os.W_OK if test == "-w" else os.R_OK | os.X_OK)
    setpriv = tool("setpriv")
    if not setpriv:
        return False
    proc = subprocess.run(
        [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "test", test, path],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def grant_work_dir(work_dir: str, uid: int, who: str, *, check: bool = True) -> None:
    """Make `work_dir` writable for the unprivileged `uid` (an ACL entry, never chmod o+w)."""
    if check and can_access(work_dir, uid, "-w") and can_access(work_dir, uid, "-x"):
        return
    setfacl = tool("setfacl")
    if os.geteuid() == 0 and setfacl:
        subprocess.run(
            [setfacl, "-m", f"u:{uid}:rwx,d:u:{uid}:rwx", work_dir],
            capture_output=True,
            check=False,
        )
        if not check or can_access(work_dir, uid, "-w"):
            return
    raise BackendUnavailable(
        f"the work dir {work_dir} is not writable by the {who} uid {uid} "
        "(or a parent directory is not searchable); use a work dir under /tmp or /home, "
        "or install acl (`apt-get install acl`) so access can be granted"
    )


def sandbox_problem(uid: int = NOBODY) -> tuple[str, str] | None:
    """(why the sandbox cannot work here, the command that fixes it), or None when it can."""
    if not sys.platform.startswith("linux"):
        return ("bubblewrap sandboxes need Linux", "use --backend docker or gateway")
    if not tool("bwrap"):
        return ("bubblewrap (bwrap) is not installed", "apt-get install bubblewrap")
    if os.geteuid() == 0:
        if not tool("setpriv"):
            return ("setpriv is missing (needed to drop root)", "apt-get install util-linux")
        for prefix in python_prefixes():
            if not can_access(os.path.join(prefix, "bin"), uid, "-x") and not can_access(
                prefix, uid, "-x"
            ):
                return (
                    f"the Python environment {prefix} is not readable by the sandbox uid {uid}",
                    f"chmod -R o+rX {prefix} (or use a Python outside a private home)",
                )
    if not tool("prlimit"):
        return ("prlimit is missing", "apt-get install util-linux")
    return None


class BubblewrapProvisioner(DiagnosingProvisioner):
    """Launch the kernel under cgroups + rlimits + an unprivileged uid + bubblewrap."""

    sandbox_uid = Int(-1, help="uid to run as when launched by root (-1: 65534).").tag(config=True)
    extra_ro_binds = List(Unicode(), help="More directories bound read-only.").tag(config=True)

    _cgroups: CgroupSet | None = None
    # A safety net for a host process that ends without shutting the kernel down (an
    # exception, a closed pipe): run at garbage collection or interpreter exit.
    _cgroup_guard: weakref.finalize | None = None  # type: ignore[type-arg]
    exit_status_is_shell = True
    """bwrap reports a kernel killed by signal n as exit status 128+n."""

    # --- helpers -------------------------------------------------------------------------
    @property
    def tmp_bytes(self) -> int:
        """The private /tmp: at most the disk limit (it is the code's temp space)."""
        disk = parse_size(self.disk_limit, what="disk limit")
        if not self.tmp_size:
            return disk
        return min(parse_size(self.tmp_size, what="tmp size"), disk)

    @property
    def uid(self) -> int:
        if os.geteuid() != 0:
            return os.geteuid()
        return self.sandbox_uid if self.sandbox_uid >= 0 else NOBODY

    def _bwrap_argv(self, work_dir: str, run_dir: str) -> list[str]:
        bwrap = tool("bwrap")
        assert bwrap is not None
        argv = [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
            if os.path.islink(link):
                argv += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                argv += ["--ro-bind", link, link]
        argv += ["--ro-bind", "/etc", "/etc"]
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(self.tmp_bytes),
            "--tmpfs",
            "/tmp",
        ]
        # After the private /tmp: a Python environment (or work dir) that lives under /tmp on
        # the host must be bound over it, not hidden by it. bwrap applies mounts in order.
        for prefix in [*python_prefixes(), *self.extra_ro_binds]:
            argv += ["--ro-bind", prefix, prefix]
        argv += [
            "--bind",
            work_dir,
            work_dir,
            "--bind",
            run_dir,
            run_dir,
            "--remount-ro",
            "/",
            "--chdir",
            work_dir,
            "--clearenv",
        ]
        for key, value in self._kernel_env().items():
            argv += ["--setenv", key, value]
        if os.geteuid() == 0:
            # bwrap would otherwise keep the setuid-less root-in-namespace ability to unshare.
            argv.insert(1, "--disable-userns")
        return argv

    def _kernel_env(self) -> dict[str, str]:
        venv_bin = os.path.join(sys.prefix, "bin")
        env = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "IPYTHONDIR": "/tmp/.ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter-runtime",
            "JUPYTER_DATA_DIR": "/tmp/.jupyter",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "CODEFLOW_SANDBOX": "bwrap",
            # Parent polling cannot work across the pid namespace; 1 turns it off quietly.
            "JPY_PARENT_PID": "1",
        }
        for key in KERNEL_ENV_PASSTHROUGH:
            if key in os.environ:
                env[key] = os.environ[key]
        spec_env = dict(getattr(self.kernel_spec, "env", None) or {})
        for key, value in spec_env.items():
            if not any(word in key.upper() for word in SECRET_WORDS):
                env[key] = str(value)
        return env

    # --- provisioner API -----------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        problem = sandbox_problem(self.uid)
        if problem:
            raise BackendUnavailable(f"sandbox unavailable: {problem[0]} (fix: {problem[1]})")
        km = self.parent
        work_dir = os.path.realpath(self.work_dir or kwargs.get("cwd") or os.getcwd())
        if not os.path.isdir(work_dir):
            raise BackendUnavailable(f"work dir {work_dir} does not exist")
        grant_work_dir(work_dir, self.uid, "sandbox")
        if self._run_dir is None or not os.path.isdir(self._run_dir):
            # Short path: unix socket paths are limited to 107 bytes.
            self._run_dir = tempfile.mkdtemp(prefix="cfbw-", dir="/tmp")
            self._run_dir_guard = weakref.finalize(self, shutil.rmtree, self._run_dir, True)
            os.chmod(self._run_dir, 0o700)
            if os.geteuid() == 0:
                os.chown(self._run_dir, self.uid, self.uid)
        if km is not None and not getattr(km, "_connection_file_written", False):
            # The kernel lives in its own network namespace: only IPC sockets can reach it.
            km.transport = "ipc"
            km.connection_file = os.path.join(self._run_dir, "kernel.json")
            km.ip = os.path.join(self._run_dir, "kernel-ipc")
        kwargs = await super().pre_launch(**kwargs)
        if km is not None and os.geteuid() == 0:
            os.chown(km.connection_file, self.uid, self.uid)

        limits = self.limits
        self._launches += 1
        cg_files: list[str] = []
        if os.geteuid() == 0 and cgroup_problem() is None:
            self._destroy_cgroups()
            self._cgroups = CgroupSet(f"{CGROUP_PREFIX}{self._sid()}-{self._launches}", limits)
            self._cgroups.create()
            self._cgroup_guard = weakref.finalize(self, _destroy_quietly, self._cgroups)
            cg_files = [str(p) for p in self._cgroups.procs_files]
        prlimit = tool("prlimit")
        assert prlimit is not None
        # RLIMIT_FSIZE: no file the code writes (in the work dir or anywhere) grows past the
        # disk limit; the write fails with EFBIG (Python ignores SIGXFSZ, and so do the
        # programs it starts). The private /tmp is a tmpfs of the same size (ENOSPC).
        limit_argv = [
            prlimit,
            f"--as={limits.address_space}:{limits.address_space}",
            f"--fsize={limits.disk}:{limits.disk}",
        ]
        if not cg_files:
            limit_argv.append(f"--nproc={limits.pids}:{limits.pids}")
        drop: list[str] = []
        if os.geteuid() == 0:
            setpriv = tool("setpriv")
            assert setpriv is not None
            uid = self.uid
            drop = [
                setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]
        cmd = [
            "/bin/sh",
            "-c",
            _LAUNCHER,
            "codeflow-sandbox",
            *cg_files,
            "--",
            *limit_argv,
            "--",
            *drop,
            *self._bwrap_argv(work_dir, self._run_dir),
            *kwargs["cmd"],
            *disk_hook(self._run_dir, limits.disk, self.tmp_bytes),
        ]
        kwargs["cmd"] = cmd
        # Only the launcher sees this environment; bwrap clears it for the kernel.
        kwargs["env"] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        kwargs["cwd"] = self._run_dir
        _DEATHS.pop(self._sid(), None)
        _ACTIVE[self._sid()] = self
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        return await super().launch_kernel(cmd, **kwargs)

    async def poll(self) -> int | None:
        ret: int | None = await super().poll()
        if ret is not None and self.process is not None:
            self._note_death()
        return ret

    async def kernel_pid(self) -> int | None:
        """The ipykernel process (bwrap forks it below itself, inside the pid namespace)."""
        pid = self.pid
        for _ in range(4):
            if not isinstance(pid, int):
                return None
            argv = cmdline(pid)
            if not argv:
                return None
            if os.path.basename(argv[0]) != "bwrap":
                return pid
            children = child_pids(pid)
            pid = children[0] if len(children) == 1 else None
        return None

    def _note_death(self) -> None:
        reason = self.death_reason()
        if reason:
            _DEATHS[self._sid()] = reason

    def death_reason(self) -> str:
        if self._cgroups is not None and self._cgroups.oom_kills() > 0:
            return f"killed: out of memory, limit {self.limits.memory_text}"
        return ""

    def _destroy_cgroups(self) -> None:
        if self._cgroups is not None:
            self._note_death()
            self._cgroups.destroy()
            self._cgroups = None
        if self._cgroup_guard is not None:
            self._cgroup_guard.detach()
            self._cgroup_guard = None

    async def kill(self, restart: bool = False) -> None:
        await super().kill(restart=restart)
        if self._cgroups is not None:
            # Processes in their own session escape the process-group kill: kill the cgroup.
            self._note_death()
            self._cgroups.destroy(timeout=0.5)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        self._destroy_cgroups()
        if not restart:
            _ACTIVE.pop(self._sid(), None)
            if self._run_dir_guard is not None:
                self._run_dir_guard()
                self._run_dir_guard = None
            self._run_dir = None


def _destroy_quietly(cgroups: CgroupSet) -> None:
    """Kill what is left in a kernel's cgroups and remove them; never raises (runs at exit)."""
    with contextlib.suppress(Exception):
        cgroups.destroy(timeout=2.0)


def sandbox_death_reason(sandbox_id: str) -> Callable[[], Awaitable[str]]:
    """The executor's death hook: 'killed: out of memory, limit 512m' after an OOM kill."""

    async def reason() -> str:
        active = _ACTIVE.get(sandbox_id)
        live = active.death_reason() if active is not None else ""
        return live or _DEATHS.pop(sandbox_id, "")

    return reason


def write_kernelspec(
    folder: Path,
    name: str,
    argv: list[str],
    provisioner: str,
    config: dict[str, Any],
    display_name: str,
) -> None:
    """A kernelspec that names our provisioner; message-mode interrupts (SIGINT kills bwrap)."""
    spec_dir = folder / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": argv,
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {
            "debugger": False,
            "kernel_provisioner": {"provisioner_name": provisioner, "config": config},
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def sandbox_kernelspec_dir(settings: Settings, work_dir: Path, sandbox_id: str) -> Path:
    """Write the sandbox kernelspec into a fresh temp dir and return the dir."""
    limits_ok = parse_size(settings.execution.memory_limit)
    del limits_ok  # validated early so a bad value is a usage error before any kernel starts
    folder = Path(tempfile.mkdtemp(prefix="codeflow-spec-"))
    write_kernelspec(
        folder,
        "codeflow-sandbox",
        [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        PROVISIONER_NAME,
        {
            "work_dir": str(work_dir),
            "memory_limit": settings.execution.memory_limit,
            "disk_limit": settings.execution.disk_limit,
            "cpu_limit": float(settings.execution.cpu_limit),
            "pids_limit": int(settings.execution.pids_limit),
            "sandbox_id": sandbox_id,
        },
        "Python (codeflow sandbox)",
    )
    return folder


def make_sandbox_executor(settings: Settings, *, work_dir: Path) -> Executor:
    """The local kernel executor, launched through the bubblewrap provisioner."""
    from jupyter_client.kernelspec import KernelSpecManager

    from .kernel import KernelExecutor

    problem = sandbox_problem()
    if problem:
        raise BackendUnavailable(f"--backend sandbox: {problem[0]}; fix: {problem[1]}")
    sandbox_id = uuid.uuid4().hex[:12]
    folder = sandbox_kernelspec_dir(settings, work_dir, sandbox_id)
    ex = settings.execution
    executor = KernelExecutor(
        work_dir=work_dir,
        kernel_name="codeflow-sandbox",
        name="sandbox",
        timeout=ex.timeout,
        interrupt_grace=ex.interrupt_grace,
        max_output_chars=ex.max_output_chars,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder)]),
        supports_install=False,
        secret_env=tuple(ex.secret_env),
        death_reason=sandbox_death_reason(sandbox_id),
    )
    weakref.finalize(executor, shutil.rmtree, str(folder), True)
    return executor


def leftover_run_dirs() -> list[str]:
    """Sandbox run dirs still on disk (tests count them before/after)."""
    with contextlib.suppress(OSError):
        return sorted(str(p) for p in Path("/tmp").glob("cfbw-*"))
    return []
