"""`codeflow doctor` tells the truth: real tools found or hidden, real daemon, real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
from needs import need

from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.docker import daemon_problem


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEFLOW_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "codeflow_magic.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=base,
        check=False,
    )


def checks(*args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    proc = doctor("--format", "json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return {c["backend"]: c for c in json.loads(proc.stdout)["backends"]}


def test_reports_every_backend_and_exits_zero() -> None:
    found = checks()
    assert list(found) == ["kernel", "inline", "sandbox", "docker", "gateway"]
    assert found["kernel"]["ok"] is True
    assert "notebook only" in found["inline"]["detail"]
    assert found["gateway"]["ok"] is False and "--gateway-url" in found["gateway"]["fix"]


def test_text_format_names_the_fix() -> None:
    proc = doctor("--backend", "docker", env={"CODEFLOW_DOCKER": "/nonexistent/docker"})
    assert proc.returncode == 0
    assert "docker   FAIL" in proc.stdout
    assert "fix:  apt-get install docker.io" in proc.stdout


@pytest.mark.docker
def test_docker_truth_with_and_without_the_cli() -> None:
    need(daemon_problem() is None, f"dockerd not available: {daemon_problem()}")
    assert checks("--backend", "docker")["docker"]["ok"] is True
    hidden = checks("--backend", "docker", env={"CODEFLOW_DOCKER": "/nonexistent"})["docker"]
    assert hidden["ok"] is False and hidden["fix"] == "apt-get install docker.io"


@pytest.mark.docker
def test_docker_daemon_not_running_and_image_missing() -> None:
    need(daemon_problem() is None, f"dockerd not available: {daemon_problem()}")
    down = checks(
        "--backend", "docker", env={"DOCKER_HOST": "unix:///tmp/codeflow-no-such-docker.sock"}
    )["docker"]
    assert down["ok"] is False and down["fix"] == "dockerd &"
    missing = checks("--backend", "docker", "execution.docker_image=codeflow-absent:none")
    assert missing["docker"]["ok"] is False
    assert missing["docker"]["fix"] == "codeflow sandbox build"


@pytest.mark.sandbox
def test_sandbox_truth_with_and_without_bubblewrap() -> None:
    need(sandbox_problem() is None, f"sandbox not available: {sandbox_problem()}")
    assert checks("--backend", "sandbox")["sandbox"]["ok"] is True
    hidden = checks("--backend", "sandbox", env={"CODEFLOW_BWRAP": "/nonexistent"})["sandbox"]
    assert hidden["ok"] is False and hidden["fix"] == "apt-get install bubblewrap"
    nosetpriv = checks("--backend", "sandbox", env={"CODEFLOW_SETPRIV": "/nonexistent"})
    if os.geteuid() == 0:
        assert nosetpriv["sandbox"]["ok"] is False
        assert "setpriv" in nosetpriv["sandbox"]["detail"]


def test_gateway_unreachable_and_bad_usage() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    found = checks("--backend", "gateway", "--gateway-url", f"http://127.0.0.1:{port}")
    assert found["gateway"]["ok"] is False and "unreachable" in found["gateway"]["detail"]
    bad = doctor("--backend", "nope")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert "Traceback" not in bad.stderr
