"""`--backend docker`: the local kernel executor with the kernel inside a container.

A jupyter_client provisioner starts `docker run -i --init` with no network, a read-only root, no
capabilities, an unprivileged user and memory/cpu/pids limits. The connection-file directory
is bind-mounted at the same path, so the client talks to the kernel over IPC sockets exactly as
it does locally. The process jupyter_client watches is the docker CLI; killing it would leave
the container running, so kill/cleanup go through `docker kill` / `docker rm -f`, and the
container is kept until cleanup so that `State.OOMKilled` can explain a death.

`--init` puts docker's init (tini) at pid 1 and the kernel below it: the init reaps the
orphans of background jobs (a kernel at pid 1 would leave them as zombies until the pids limit
stops every fork), and a kernel that kills itself dies like anywhere else (pid 1 is immune to
its own signals, so it would keep running and report success).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Unicode

from ..errors import BackendUnavailable
from .bwrap import grant_work_dir, write_kernelspec
from .image import DEFAULT_IMAGE, KERNEL_PYTHON, docker_cli, ensure_image, image_exists
from .limits import child_pids, disk_hook, parse_size
from .provisioner import DiagnosingProvisioner

if TYPE_CHECKING:
    from jupyter_client.connect import KernelConnectionInfo

    from ..config import Settings
    from .base import Executor

PROVISIONER_NAME = "codeflow-docker"
CONTAINER_PREFIX = "codeflow-"
LABEL = "codeflow.sandbox"
_DEATHS: dict[str, str] = {}
_ACTIVE: dict[str, DockerProvisioner] = {}
_CLI_ENV_KEEP = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)


def _cli_env() -> dict[str, str]:
    """The docker CLI's own environment: nothing that could be forwarded by accident."""
    return {k: v for k, v in os.environ.items() if k in _CLI_ENV_KEEP}


def daemon_problem(docker: str | None = None) -> tuple[str, str] | None:
    """(why docker cannot run kernels here, the fixing command), or None."""
    docker = docker or docker_cli()
    if not docker:
        return ("the docker CLI is not installed", "apt-get install docker.io")
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            env=_cli_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (f"the docker CLI does not answer ({exc})", "dockerd &")
    if proc.returncode != 0 or not proc.stdout.strip():
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        return (f"dockerd is not running or not reachable ({detail})", "dockerd &")
    return None


def _docker_sync(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    docker = docker_cli() or "docker"
    return subprocess.run(
        [docker, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_cli_env(),
        check=False,
    )


async def _docker(*args: str, timeout: float = 30.0) -> tuple[int, str]:
    docker = docker_cli() or "docker"
    proc = await asyncio.create_subprocess_exec(
        docker,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_cli_env(),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, ""
    return proc.returncode or 0, out.decode(errors="replace")


def leftover_containers(sandbox_id: str = "") -> list[str]:
    """Names of codeflow kernel containers on this daemon, running or not (for tests); with
    `sandbox_id`, only those of that executor (others may come and go meanwhile)."""
    label = f"{LABEL}={sandbox_id}" if sandbox_id else LABEL
    proc = _docker_sync("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
    return sorted(proc.stdout.split()) if proc.returncode == 0 else []


class DockerProvisioner(DiagnosingProvisioner):
    """Launch the kernel in a locked-down container; clean it up on every exit path."""

    image = Unicode(DEFAULT_IMAGE, help="Image with python + ipykernel.").tag(config=True)
    container_user = Unicode("", help="uid:gid in the container (default 1000:1000 for root).").tag(
        config=True
    )

    _container: str | None = None
    # A safety net for a host process that ends without shutting the kernel down: the
    # container would outlive it (killing the docker CLI does not stop it).
    _container_guard: weakref.finalize | None = None  # type: ignore[type-arg]
    exit_status_is_shell = True
    """`docker run` reports a kernel killed by signal n as exit status 128+n."""

    @property
    def user(self) -> tuple[int, int]:
        if self.container_user:
            uid, _, gid = self.container_user.partition(":")
            return int(uid), int(gid or uid)
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        return 1000, 1000

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        docker = docker_cli()
        problem = daemon_problem(docker)
        if problem:
            raise BackendUnavailable(f"docker unavailable: {problem[0]} (fix: {problem[1]})")
        assert docker is not None
        km = self.parent
        work_dir = os.path.realpath(self.work_dir or kwargs.get("cwd") or os.getcwd())
        if not os.path.isdir(work_dir):
            raise BackendUnavailable(f"work dir {work_dir} does not exist")
        uid, gid = self.user
        if os.geteuid() == 0:
            grant_work_dir(work_dir, uid, "container", check=False)
        if self._run_dir is None or not os.path.isdir(self._run_dir):
            self._run_dir = tempfile.mkdtemp(prefix="cfdk-", dir="/tmp")
            self._run_dir_guard = weakref.finalize(self, shutil.rmtree, self._run_dir, True)
            os.chmod(self._run_dir, 0o700)
            if os.geteuid() == 0:
                os.chown(self._run_dir, uid, gid)
        if km is not None and not getattr(km, "_connection_file_written", False):
            km.transport = "ipc"
            km.connection_file = os.path.join(self._run_dir, "kernel.json")
            km.ip = os.path.join(self._run_dir, "kernel-ipc")
        kwargs = await super().pre_launch(**kwargs)
        if km is not None and os.geteuid() == 0:
            os.chown(km.connection_file, uid, gid)
        await self._remove_container()
        self._launches += 1
        self._container = f"{CONTAINER_PREFIX}{self._sid()}-{self._launches}"
        self._container_guard = weakref.finalize(self, _remove_quietly, self._container)
        limits = self.limits
        tmp = (
            min(parse_size(self.tmp_size, what="tmp size"), limits.disk)
            if self.tmp_size
            else limits.disk
        )
        env = {
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "MPLCONFIGDIR": "/tmp/.matplotlib",
            "IPYTHONDIR": "/tmp/.ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter-runtime",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "JPY_PARENT_PID": "1",
            "CODEFLOW_SANDBOX": "docker",
        }
        cmd = [
            docker,
            "run",
            "-i",
            "--init",
            "--name",
            self._container,
            "--label",
            f"{LABEL}={self._sid()}",
            "--network",
            "none",
            "--read-only",
            "--tmpfs",
            f"/tmp:rw,size={tmp},mode=1777",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            f"{uid}:{gid}",
            "--memory",
            str(limits.memory),
            "--memory-swap",
            str(limits.memory),
            "--cpus",
            f"{limits.cpus:g}",
            "--pids-limit",
            str(limits.pids),
            # No file grows past the disk limit (EFBIG); /tmp above is a tmpfs of that size.
            "--ulimit",
            f"fsize={limits.disk}:{limits.disk}",
            "-v",
            f"{self._run_dir}:{self._run_dir}",
            "-v",
            f"{work_dir}:{work_dir}",
            "-w",
            work_dir,
        ]
        for key, value in env.items():
            cmd += ["-e", f"{key}={value}"]
        hook = disk_hook(self._run_dir, limits.disk, tmp)
        cmd += [self.image, *kwargs["cmd"], *hook]
        kwargs["cmd"] = cmd
        kwargs["env"] = _cli_env()
        kwargs["cwd"] = self._run_dir
        _DEATHS.pop(self._sid(), None)
        _ACTIVE[self._sid()] = self
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        return await super().launch_kernel(cmd, **kwargs)

    async def poll(self) -> int | None:
        ret: int | None = await super().poll()
        if ret is not None and self.process is not None:
            await self._note_death()
        return ret

    async def death_reason(self) -> str:
        if not self._container:
            return ""
        code, out = await _docker("inspect", "-f", "{{.State.OOMKilled}}", self._container)
        if code == 0 and out.strip() == "true":
            return f"killed: out of memory, limit {self.limits.memory_text}"
        return ""

    async def kernel_pid(self) -> int | None:
        """The kernel's process id on this machine (the one child of the container's init)."""
        if not self._container:
            return None
        code, out = await _docker("inspect", "-f", "{{.State.Pid}}", self._container)
        init = int(out.strip()) if code == 0 and out.strip().isdigit() else 0
        if not init:
            return None
        children = child_pids(init)
        return children[0] if len(children) == 1 else init

    async def unresponsive_reason(self) -> str:
        """A paused container cannot answer an interrupt; say so."""
        if not self._container:
            return ""
        code, out = await _docker("inspect", "-f", "{{.State.Paused}}", self._container)
        if code == 0 and out.strip() == "true":
            return "the container was paused (docker pause) and could not answer"
        return ""

    async def _note_death(self) -> None:
        reason = await self.death_reason()
        if reason:
            _DEATHS[self._sid()] = reason

    async def _remove_container(self) -> None:
        if self._container:
            await self._note_death()
            await _docker("rm", "-f", self._container)
            self._container = None
        if self._container_guard is not None:
            self._container_guard.detach()
            self._container_guard = None

    async def kill(self, restart: bool = False) -> None:
        if self._container:
            await _docker("kill", self._container)
        await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        if self._container:
            await _docker("kill", "--signal", "TERM", self._container)
        await super().terminate(restart=restart)

    async def send_signal(self, signum: int) -> None:
        # Signals to the docker CLI do not reach the kernel reliably; interrupts are messages.
        if self._container:
            await _docker("kill", "--signal", str(signum), self._container)
            return
        await super().send_signal(signum)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        await self._remove_container()
        if not restart:
            _ACTIVE.pop(self._sid(), None)
            if self._run_dir_guard is not None:
                self._run_dir_guard()
                self._run_dir_guard = None
            self._run_dir = None


def _remove_quietly(container: str) -> None:
    """`docker rm -f` a kernel container; never raises (runs at garbage collection or exit)."""
    with contextlib.suppress(Exception):
        _docker_sync("rm", "-f", container, timeout=60)


def docker_death_reason(sandbox_id: str) -> Callable[[], Awaitable[str]]:
    """The executor's death hook: reads OOMKilled of the current container."""

    async def reason() -> str:
        active = _ACTIVE.get(sandbox_id)
        live = await active.death_reason() if active is not None else ""
        return live or _DEATHS.pop(sandbox_id, "")

    return reason


def make_docker_executor(settings: Settings, *, work_dir: Path) -> Executor:
    """The local kernel executor, launched through the docker provisioner (image built on
    first use, with progress on stderr)."""
    from jupyter_client.kernelspec import KernelSpecManager

    from .kernel import KernelExecutor

    ex = settings.execution
    parse_size(ex.memory_limit)  # a bad value is a usage error before anything starts
    problem = daemon_problem()
    if problem:
        raise BackendUnavailable(f"--backend docker: {problem[0]}; fix: {problem[1]}")
    if not image_exists(ex.docker_image):
        ensure_image(ex.docker_image, list(ex.docker_packages))
    sandbox_id = uuid.uuid4().hex[:12]
    folder = Path(tempfile.mkdtemp(prefix="codeflow-spec-"))
    write_kernelspec(
        folder,
        "codeflow-docker",
        [KERNEL_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        PROVISIONER_NAME,
        {
            "image": ex.docker_image,
            "work_dir": str(work_dir),
            "memory_limit": ex.memory_limit,
            "disk_limit": ex.disk_limit,
            "cpu_limit": float(ex.cpu_limit),
            "pids_limit": int(ex.pids_limit),
            "sandbox_id": sandbox_id,
        },
        "Python (codeflow docker)",
    )
    executor = KernelExecutor(
        work_dir=work_dir,
        kernel_name="codeflow-docker",
        name="docker",
        timeout=ex.timeout,
        interrupt_grace=ex.interrupt_grace,
        max_output_chars=ex.max_output_chars,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder)]),
        supports_install=False,
        secret_env=tuple(ex.secret_env),
        death_reason=docker_death_reason(sandbox_id),
    )
    weakref.finalize(executor, shutil.rmtree, str(folder), True)
    return executor
