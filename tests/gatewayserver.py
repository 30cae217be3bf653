"""A real Jupyter Kernel Gateway on a loopback port, for tests and benchmarks.

Importable by a name no test module shadows (like `modelserver`). The gateway gets private
Jupyter and IPython folders, an auth token, and an environment without keys or tokens of the
machine; its kernels inherit that environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

TOKEN = "gw-test-token-1234"


class GatewayError(RuntimeError):
    """The gateway could not be started (the message says why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return shutil.which("jupyter-kernelgateway", path=os.path.dirname(sys.executable)) is not None


@contextmanager
def kernel_gateway(
    token: str = TOKEN, *, drop_env: tuple[str, ...] = (), start_timeout: float = 60.0
) -> Iterator[str]:
    """Run a gateway until the block ends; yields its base URL.

    `drop_env` names variables its kernels must not inherit (say `PYTEST_CURRENT_TEST`, which
    turns ipykernel's own fd capture off).
    """
    port = free_port()
    home = tempfile.mkdtemp(prefix="cf-kg-")
    env = {
        k: v
        for k, v in os.environ.items()
        if "KEY" not in k and "TOKEN" not in k and k not in drop_env
    }
    env.update(
        JUPYTER_RUNTIME_DIR=os.path.join(home, "runtime"),
        JUPYTER_DATA_DIR=os.path.join(home, "data"),
        IPYTHONDIR=os.path.join(home, "ipython"),
    )
    log_path = os.path.join(home, "gateway.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kernel_gateway",
            "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={port}",
            f"--KernelGatewayApp.auth_token={token}",
            "--KernelGatewayApp.port_retries=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
        cwd=home,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                with open(log_path, "rb") as fh:
                    err = fh.read().decode(errors="replace")
                raise GatewayError(f"kernel gateway exited: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise GatewayError(
                        f"kernel gateway did not listen within {start_timeout:g} s"
                    ) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
