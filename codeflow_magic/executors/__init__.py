"""Execution backends behind the one `Executor` protocol.

`make_executor` is the only place that maps a backend name to a class, and it imports the
backend lazily: loading the docker SDK or a websocket client costs nothing unless used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .base import Executor

if TYPE_CHECKING:
    from ..config import Settings

BACKENDS: tuple[str, ...] = ("kernel", "inline", "sandbox", "docker", "gateway")

__all__ = ["BACKENDS", "Executor", "make_executor"]


def make_executor(
    settings: Settings,
    *,
    work_dir: Path | None = None,
    backend: str | None = None,
    shell: Any = None,
) -> Executor:
    """Build (not start) the executor for `backend` (default: the configured one)."""
    name = (backend or settings.execution.backend).lower()
    wd = Path(work_dir or settings.execution.work_dir or Path.cwd()).resolve()
    if name == "kernel":
        from .kernel import KernelExecutor

        return KernelExecutor.from_settings(settings, work_dir=wd)
    if name == "inline":
        if shell is None:
            raise UsageError(
                "--backend inline needs a running IPython shell (use it in a notebook)"
            )
        from .inline import InlineExecutor

        return InlineExecutor.from_settings(settings, shell=shell, work_dir=wd)
    if name == "sandbox":
        from .bwrap import make_sandbox_executor

        return make_sandbox_executor(settings, work_dir=wd)
    if name == "docker":
        from .docker import make_docker_executor

        return make_docker_executor(settings, work_dir=wd)
    if name == "gateway":
        from .gateway import GatewayExecutor

        return GatewayExecutor.from_settings(settings, work_dir=wd)
    raise UsageError(f"unknown backend {name!r}; choose one of " + ", ".join(BACKENDS))
