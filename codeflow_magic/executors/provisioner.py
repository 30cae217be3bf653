"""What the isolating provisioners (bubblewrap, docker) share, and the hooks the kernel
executor asks them when a kernel dies or ignores an interrupt.

A plain local kernel is explained from its own process; an isolated one is not where its
launcher's process id points (bwrap forks it inside a pid namespace, docker's CLI is not the
container), so the provisioner that launched it says where it is and why it stopped.
"""

from __future__ import annotations

import uuid
import weakref

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Float, Int, Unicode

from .limits import Limits, parse_size

__all__ = ["DiagnosingProvisioner"]


class DiagnosingProvisioner(LocalProvisioner):  # type: ignore[misc]
    """A local provisioner that launches the kernel isolated, under limits, and can explain it."""

    work_dir = Unicode("", help="Directory bound writable; the kernel's working directory.").tag(
        config=True
    )
    memory_limit = Unicode("1g", help="Memory limit (512m, 2g ...).").tag(config=True)
    cpu_limit = Float(1.0, help="CPU cores.").tag(config=True)
    pids_limit = Int(128, help="Maximum processes.").tag(config=True)
    tmp_size = Unicode("256m", help="Size of the private /tmp (at most the disk limit).").tag(
        config=True
    )
    disk_limit = Unicode(
        "1g", help="Largest file the code may write, and the size of its private /tmp."
    ).tag(config=True)
    sandbox_id = Unicode("", help="Names this sandbox's resources and death reasons.").tag(
        config=True
    )

    _run_dir: str | None = None
    _launches = 0
    # A safety net for a host process that ends without shutting the kernel down (an
    # exception, a closed pipe): run at garbage collection or interpreter exit.
    _run_dir_guard: weakref.finalize | None = None  # type: ignore[type-arg]

    exit_status_is_shell = False
    """True when the launcher reports a kernel killed by signal n as exit status 128+n."""

    @property
    def limits(self) -> Limits:
        return Limits(
            parse_size(self.memory_limit),
            self.cpu_limit,
            self.pids_limit,
            parse_size(self.disk_limit, what="disk limit"),
        )

    def _sid(self) -> str:
        if not self.sandbox_id:
            self.sandbox_id = uuid.uuid4().hex[:12]
        return str(self.sandbox_id)

    # -- hooks the kernel executor calls -------------------------------------------------

    async def kernel_pid(self) -> int | None:
        """The kernel's process id as this machine sees it (default: the launched process)."""
        pid = self.pid
        return pid if isinstance(pid, int) else None

    async def unresponsive_reason(self) -> str:
        """Why the kernel could not answer an interrupt, if the isolation shows it."""
        return ""

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return min(recommended, 3.0)
