"""`codeflow doctor`: which execution backends work on this machine, and how to fix the rest.

Every check does the real thing at small scale (find the kernelspec, run Python inside
bubblewrap as the sandbox uid, ask dockerd, look for the image, call the gateway with the
token), so the report is what `--backend X` would meet, not a guess from PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import BACKENDS

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class Check:
    backend: str
    ok: bool
    detail: str
    fix: str = ""
    warning: str = ""
    configured: bool = True
    """False for a backend that needs settings nobody gave (a gateway URL): not a failure."""


def check_kernel(settings: Settings) -> Check:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = settings.execution.kernel_name
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return Check(
            "kernel",
            False,
            f"no Jupyter kernel named {name!r}",
            f"{sys.executable} -m ipykernel install --user",
        )
    exe = spec.argv[0] if spec.argv else ""
    if exe not in ("python", "python3", "{python}") and not shutil.which(exe):
        return Check(
            "kernel",
            False,
            f"kernel {name!r} starts {exe}, which is missing",
            f"{sys.executable} -m ipykernel install --user --name {name}",
        )
    return Check("kernel", True, f"Jupyter kernel {name!r} ({spec.display_name})")


def check_inline(settings: Settings) -> Check:
    del settings
    return Check(
        "inline",
        True,
        "notebook only: runs in the notebook's own kernel via %%codeflow",
        warning="not available from the command line",
    )


def _sandbox_smoke() -> str | None:
    """Run Python inside the real sandbox (as the sandbox uid); None when it worked."""
    from .bwrap import NOBODY, BubblewrapProvisioner, tool

    with tempfile.TemporaryDirectory(prefix="cf-doctor-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)
        prov = BubblewrapProvisioner(kernel_id="doctor", kernel_spec=None)
        argv = prov._bwrap_argv(tmp, tmp)
        if os.geteuid() == 0:
            setpriv = tool("setpriv") or "setpriv"
            argv = [
                setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--inh-caps=-all",
                *argv,
            ]
        argv += [sys.executable, "-c", "import ipykernel, socket; print('inside')"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if proc.returncode != 0 or "inside" not in proc.stdout:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {proc.returncode}"
    return None


def disk_note(settings: Settings) -> str:
    """What `execution.disk_limit` caps on the isolated backends, and what it does not."""
    limit = settings.execution.disk_limit
    return (
        f"disk limit {limit}: no file the code writes grows past it and its temp space is a "
        "memory-backed tmpfs of at most that size; the total of many files in the work dir is "
        "not capped (that needs a project quota on the work dir's filesystem)"
    )


def _notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def check_sandbox(settings: Settings) -> Check:
    from .bwrap import sandbox_problem
    from .limits import cgroup_problem

    problem = sandbox_problem()
    if problem:
        return Check("sandbox", False, problem[0], problem[1])
    failure = _sandbox_smoke()
    if failure:
        return Check(
            "sandbox",
            False,
            f"bubblewrap could not start Python: {failure}",
            "sysctl -w kernel.unprivileged_userns_clone=1 (user namespaces must be allowed)",
        )
    warning = ""
    if os.geteuid() == 0:
        cg = cgroup_problem()
        if cg:
            warning = f"no cgroup access ({cg}): memory backstop, pids and cpu limits off"
    else:
        warning = "not root: limits are rlimits only (no cgroups)"
    return Check(
        "sandbox",
        True,
        "bubblewrap sandbox starts Python as an unprivileged uid",
        warning=_notes(warning, disk_note(settings)),
    )


def check_docker(settings: Settings) -> Check:
    from .docker import daemon_problem
    from .image import docker_cli, image_exists

    docker = docker_cli()
    if not docker:
        return Check(
            "docker", False, "the docker CLI is not installed", "apt-get install docker.io"
        )
    problem = daemon_problem(docker)
    if problem:
        return Check("docker", False, problem[0], problem[1])
    image = settings.execution.docker_image
    if not image_exists(image, docker):
        return Check(
            "docker",
            False,
            f"image {image} is not built (first use builds it, ~3 minutes)",
            "codeflow sandbox build",
        )
    return Check(
        "docker",
        True,
        f"dockerd answers and image {image} is present",
        warning=disk_note(settings),
    )


def check_gateway(settings: Settings) -> Check:
    url = settings.execution.gateway_url.rstrip("/")
    if not url:
        return Check(
            "gateway",
            False,
            "not configured (no gateway URL given)",
            "codeflow ask ... --backend gateway --gateway-url URL (or execution.gateway_url=URL)",
            configured=False,
        )
    token = settings.execution.gateway_token
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(f"{url}/api/kernelspecs", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Check(
                "gateway",
                False,
                f"{url} rejected the token (HTTP {exc.code})",
                "pass the gateway's token: --gateway-token TOKEN",
            )
        return Check(
            "gateway",
            False,
            f"{url} answered HTTP {exc.code}",
            "check that the URL points at a Jupyter Kernel Gateway",
        )
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "gateway",
            False,
            f"{url} is unreachable ({reason})",
            "start it: jupyter kernelgateway --KernelGatewayApp.auth_token=TOKEN",
        )
    name = settings.execution.kernel_name
    specs = data.get("kernelspecs", {}) if isinstance(data, dict) else {}
    if specs and name not in specs:
        return Check(
            "gateway",
            False,
            f"{url} has no kernel {name!r} (has: {', '.join(specs)})",
            "--kernel NAME with one of the gateway's kernels",
        )
    return Check("gateway", True, f"{url} answers with kernel {name!r}")


CHECKS = {
    "kernel": check_kernel,
    "inline": check_inline,
    "sandbox": check_sandbox,
    "docker": check_docker,
    "gateway": check_gateway,
}


def run_checks(settings: Settings, backends: list[str] | None = None) -> list[Check]:
    out: list[Check] = []
    for name in backends or list(BACKENDS):
        try:
            out.append(CHECKS[name](settings))
        except Exception as exc:  # a broken check must not hide the other backends
            out.append(Check(name, False, f"check failed: {exc}"))
    return out
