"""Build the docker kernel image from local parts (`codeflow sandbox build`).

No image registry is assumed: the base is a Debian minbase root filesystem made with
debootstrap from the mirror this machine's apt already uses, imported with `docker import`;
Python packages come from wheels downloaded on the host (the container has no network) and
are installed by a plain Dockerfile. The rootfs tarball and wheels are cached, so rebuilding
with other packages takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, UsageError

BASE_PACKAGES: tuple[str, ...] = ("ipykernel", "matplotlib", "pandas", "numpy")
DEBIAN_PACKAGES = "python3,python3-venv"
KERNEL_PYTHON = "/opt/codeflow/bin/python"
DEFAULT_IMAGE = "codeflow-kernel:latest"
IMAGE_NAME = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"  # an optional registry host[:port]
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)
"""Docker's reference grammar (name[:tag]), so a typo fails before a three-minute build."""

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"codeflow: {message}", file=sys.stderr, flush=True)


def docker_cli() -> str | None:
    """The docker CLI to use; `CODEFLOW_DOCKER` overrides PATH lookup (empty -> none)."""
    override = os.environ.get("CODEFLOW_DOCKER")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    return shutil.which("docker")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codeflow"


def os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.MULTILINE)
    return match.group(1) if match else "bookworm"


def apt_mirror(codename: str | None = None, root: Path = Path("/etc/apt")) -> str:
    """The Debian mirror URI apt uses here for the release's main suite (read, never assumed)."""
    codename = codename or os_codename()
    candidates: list[tuple[str, list[str], list[str]]] = []  # (uri, suites, components)
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    candidates.append(
                        (
                            uri,
                            fields.get("suites", "").split(),
                            fields.get("components", "").split(),
                        )
                    )
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    candidates.append((parts[1], [parts[2]], parts[3:]))
    for uri, suites, components in candidates:
        if codename in suites and "main" in components:
            return uri
    raise BackendUnavailable(
        f"no apt source for Debian {codename} main found in {root}; "
        "debootstrap needs a mirror to build the kernel image"
    )


def image_exists(image: str, docker: str | None = None) -> bool:
    docker = docker or docker_cli()
    if not docker:
        return False
    proc = subprocess.run(
        [docker, "image", "inspect", image], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def _run(cmd: Sequence[str], what: str, **kwargs: Any) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BackendUnavailable(f"{what} failed (exit {proc.returncode}):\n{tail}")


def rootfs_tarball(progress: Progress = _stderr) -> Path:
    """A cached debootstrap minbase root filesystem with python3 (made once, ~1 minute)."""
    codename = os_codename()
    target = cache_dir() / f"rootfs-{codename}-minbase.tar"
    if target.exists():
        return target
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise BackendUnavailable(
            "debootstrap is missing; install it with `apt-get install debootstrap`"
        )
    if os.geteuid() != 0:
        raise BackendUnavailable("building the root filesystem with debootstrap needs root")
    mirror = apt_mirror(codename)
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {codename} minbase from the apt mirror (about a minute, once)")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        _run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={DEBIAN_PACKAGES}",
                codename,
                str(root),
                mirror,
            ],
            "debootstrap",
        )
        partial = target.with_suffix(".partial")
        _run(["tar", "-C", str(root), "-cf", str(partial), "."], "packing the root filesystem")
        partial.rename(target)
    return target


def base_image(docker: str, progress: Progress = _stderr) -> str:
    """`docker import` the cached rootfs (a no-op when the image is already there)."""
    name = f"codeflow-rootfs:{os_codename()}"
    if image_exists(name, docker):
        return name
    tarball = rootfs_tarball(progress)
    progress(f"importing {tarball.name} as {name}")
    _run([docker, "import", str(tarball), name], "docker import")
    return name


def download_wheels(packages: Sequence[str], progress: Progress = _stderr) -> Path:
    """Wheels for `packages` and their dependencies, downloaded on the host and cached."""
    key = hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()[:16]
    folder = cache_dir() / f"wheels-{key}"
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    progress("downloading wheels: " + ", ".join(packages))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-d",
            str(folder),
            *packages,
        ],
        "pip download",
    )
    done.write_text("\n".join(packages))
    return folder


def dockerfile(base: str, packages: Sequence[str]) -> str:
    quoted = " ".join(f"'{p}'" for p in packages)
    return f"""FROM {base}
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/codeflow \\
 && /opt/codeflow/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \\
      --find-links /tmp/wheels {quoted} \\
 && rm -rf /tmp/wheels
ENV PATH=/opt/codeflow/bin:/usr/local/bin:/usr/bin:/bin \\
    HOME=/tmp \\
    LANG=C.UTF-8 \\
    PYTHONNOUSERSITE=1 \\
    MALLOC_ARENA_MAX=2
LABEL codeflow.packages="{",".join(packages)}"
WORKDIR /tmp
"""


def validate_packages(packages: Iterable[str]) -> list[str]:
    """The requirement strings, checked before docker is looked for: a shell character in one
    is a usage error, never part of a command."""
    out: list[str] = []
    for raw in packages:
        name = raw.strip()
        if not name:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~ ]*", name):
            raise UsageError(f"{name!r} is not a package name or requirement")
        out.append(name)
    return out


def build_image(
    image: str = DEFAULT_IMAGE,
    packages: Iterable[str] = (),
    *,
    progress: Progress = _stderr,
) -> str:
    """Build `image` with ipykernel, matplotlib, pandas, numpy and `packages`."""
    docker = docker_cli()
    if not docker:
        raise BackendUnavailable(
            "the docker CLI is missing; install it with `apt-get install docker.io`"
        )
    wanted = list(dict.fromkeys([*BASE_PACKAGES, *validate_packages(packages)]))
    base = base_image(docker, progress)
    wheels = download_wheels(wanted, progress)
    progress(f"building {image}")
    with tempfile.TemporaryDirectory(prefix="codeflow-image-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(wheels, ctx / "wheels", ignore=shutil.ignore_patterns(".complete"))
        (ctx / "Dockerfile").write_text(dockerfile(base, wanted))
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        _run([docker, "build", "-q", "-t", image, str(ctx)], "docker build", env=env)
    progress(f"built {image}")
    return image


def ensure_image(image: str, packages: Iterable[str] = (), progress: Progress = _stderr) -> None:
    """Build the image on first use (with progress on stderr); no-op when it exists."""
    if image_exists(image):
        return
    progress(f"docker image {image} not found; building it now (first use only)")
    build_image(image, packages, progress=progress)
