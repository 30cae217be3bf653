"""`codeflow ask --backend sandbox|docker` end to end: the real CLI process, the loopback model,
real isolated kernels. The escape battery holds through the whole flow and the flow still
repairs a broken first attempt."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer
from needs import need

from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.docker import daemon_problem

BACKENDS = [
    pytest.param("sandbox", marks=pytest.mark.sandbox),
    pytest.param("docker", marks=pytest.mark.docker),
]

ESCAPE_CODE = """\
import os, socket
r = {}
try:
    socket.create_connection(('1.1.1.1', 53), timeout=3)
    r['net'] = 'open'
except OSError:
    r['net'] = 'blocked'
try:
    open('/etc/shadow').read()
    r['shadow'] = 'read'
except OSError:
    r['shadow'] = 'denied'
try:
    open('/usr/codeflow-cli-escape', 'w').write('x')
    r['write'] = 'wrote'
except OSError:
    r['write'] = 'denied'
r['key'] = os.environ.get('ANTHROPIC_API_KEY')
open('inside.txt', 'w').write('made inside')
print(r)
"""


def _require(backend: str) -> None:
    problem = sandbox_problem() if backend == "sandbox" else daemon_problem()
    need(problem is None, f"{backend} backend unavailable: {problem}")


def py(code: str, note: str = "") -> str:
    return f"Here is the code.\n```python\n{code}\n```\n{note}"


@pytest.fixture
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cf-cli-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def ask(server: ModelServer, work_dir: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    env["XDG_CONFIG_HOME"] = str(work_dir / ".config")
    env.update(server.env())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeflow_magic.cli",
            "ask",
            *args,
            "--format",
            "json",
            "--no-cache",
            "--work-dir",
            str(work_dir),
        ],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    record = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, record, proc.stderr


def final_stdout(record: dict[str, Any]) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in record.get("outputs", ())
        if o.get("output_type") == "stream"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_escape_battery_through_the_flow(backend: str, server: ModelServer, work_dir: Path) -> None:
    _require(backend)
    assert "ANTHROPIC_API_KEY" in server.env()  # the CLI itself holds a key
    server.add_rule(contains="probe the machine", reply=py(ESCAPE_CODE))
    code, record, stderr = ask(
        server, work_dir, "probe the machine", "--backend", backend, "--scan", "off"
    )
    assert code == 0, stderr
    seen = ast.literal_eval(final_stdout(record).strip())
    assert seen == {"net": "blocked", "shadow": "denied", "write": "denied", "key": None}
    assert (work_dir / "inside.txt").read_text() == "made inside"
    assert not os.path.exists("/usr/codeflow-cli-escape")
    assert record["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_flow_fixes_a_broken_first_attempt(
    backend: str, server: ModelServer, work_dir: Path
) -> None:
    _require(backend)
    server.add_rule(
        contains="NameError",
        reply=py("answer = 42\nprint(answer)", "Root cause: undefined name.\nFix: define it."),
    )
    server.add_rule(contains="print the answer", reply=py("print(answer)"))
    code, record, stderr = ask(server, work_dir, "print the answer", "--backend", backend)
    assert code == 0, stderr
    assert [a["success"] for a in record["attempts"]] == [False, True]
    assert record["attempts"][0]["error"]["category"] == "runtime"
    assert final_stdout(record) == "42\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_limit_is_an_environment_failure_then_fixed(
    backend: str, server: ModelServer, work_dir: Path
) -> None:
    _require(backend)
    server.add_rule(
        contains="memory",
        reply=py("print('small enough')", "Root cause: too much memory.\nFix: allocate less."),
        times=1,
    )
    server.add_rule(contains="allocate a lot", reply=py("big = b'x' * (3 * 1024**3)"))
    code, record, stderr = ask(
        server,
        work_dir,
        "allocate a lot",
        "--backend",
        backend,
        "--memory-limit",
        "512m",
        "--scan",
        "off",
    )
    first = record["attempts"][0]
    assert first["success"] is False, stderr
    assert first["error"]["category"] == "environment", first["error"]
    assert first["error"]["ename"] in ("MemoryError", "KernelDied"), first["error"]
    assert code == 0, stderr
    assert final_stdout(record) == "small enough\n"
