"""Output written to fds 1 and 2 (child processes, `os.write`, C code) is the attempt's stream
output, in order with `print`, on every backend; none of it reaches codeflow's own stdout.

Under pytest the kernels inherit PYTEST_CURRENT_TEST, which turns ipykernel's own fd capture
off; the gateway here runs without it, so its kernels have ipykernel's capture on and codeflow
replaces it. Both paths are covered on the local kernel too.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import gatewayserver
import pytest
import pytest_asyncio
from IPython.core.interactiveshell import InteractiveShell
from modelserver import ModelServer
from needs import need

from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.base import Executor
from codeflow_magic.executors.bwrap import sandbox_problem
from codeflow_magic.executors.docker import daemon_problem
from codeflow_magic.executors.inline import InlineExecutor
from codeflow_magic.models import Output

TOKEN = "fd-gw-token-5678"
CODE = """\
import os, subprocess
print('A-mark')
os.system('echo X-mark')
print('B-mark')
subprocess.run(['echo', 'Y-mark'])
os.write(1, b'Z-mark\\n')
print('C-mark')
"""
EXPECTED = "A-mark\nX-mark\nB-mark\nY-mark\nZ-mark\nC-mark\n"
# Forges a record line on fd 1 and writes to fd 2 from a child; ends with a child's output and
# no print after it (the end of the request must still collect it).
CLI_CODE = (
    CODE
    + """\
os.system('echo E-mark >&2')
os.system("echo '{\\"success\\": true, \\"forged\\": 1}'")
os.system('echo last-mark')
"""
)
CLI_EXPECTED = EXPECTED + '{"success": true, "forged": 1}\nlast-mark\n'
MARKS = ("A-mark", "X-mark", "Y-mark", "Z-mark", "E-mark", "forged", "last-mark")


def stream_text(outputs: Sequence[Output] | Sequence[dict[str, Any]], name: str) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def _require(backend: str) -> None:
    if backend == "sandbox":
        problem = sandbox_problem()
        need(problem is None, f"sandbox backend unavailable: {problem}")
    elif backend == "docker":
        problem = daemon_problem()
        need(problem is None, f"docker backend unavailable: {problem}")


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    # Under /tmp, not pytest's 0700 tmp root: sandbox and container uids must reach it.
    path = Path(tempfile.mkdtemp(prefix="cf-fd-test-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    """A real kernel gateway whose kernels run with ipykernel's own fd capture on."""
    need(gatewayserver.available(), "jupyter_kernel_gateway is not installed in this environment")
    try:
        with gatewayserver.kernel_gateway(TOKEN, drop_env=("PYTEST_CURRENT_TEST",)) as url:
            yield url
    except gatewayserver.GatewayError as exc:
        pytest.fail(str(exc))


def _settings(work_dir: Path, backend: str, gateway_url: str = "") -> Any:
    extra: dict[str, Any] = {"execution.memory_limit": "512m"}
    if backend == "gateway":
        extra.update({"execution.gateway_url": gateway_url, "execution.gateway_token": TOKEN})
    return load_settings(extra=extra, work_dir=work_dir)


@pytest_asyncio.fixture
async def executor(request: pytest.FixtureRequest, work_dir: Path) -> AsyncIterator[Executor]:
    backend: str = request.param
    _require(backend)
    url = request.getfixturevalue("gateway_url") if backend == "gateway" else ""
    ex = make_executor(_settings(work_dir, backend, url), work_dir=work_dir, backend=backend)
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()


BACKENDS = [
    pytest.param("kernel", marks=pytest.mark.kernel),
    pytest.param("sandbox", marks=pytest.mark.sandbox),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("gateway", marks=pytest.mark.gateway),
]


@pytest.mark.parametrize("executor", BACKENDS, indirect=True)
async def test_child_and_fd_output_in_order_with_print(
    executor: Executor, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):  # a race would show within a few runs
        result = await executor.execute(CODE)
        assert result.ok, result
        assert stream_text(result.outputs, "stdout") == EXPECTED
    # stderr of a child, and a child's output with nothing printed after it
    result = await executor.execute("import os\nos.system('echo E-mark >&2')\nx = 1")
    assert result.ok and stream_text(result.outputs, "stderr") == "E-mark\n", result
    result = await executor.execute("import os\n_ = os.system('echo last-mark')")
    assert result.ok and stream_text(result.outputs, "stdout") == "last-mark\n", result
    # `stdout=sys.stdout` is the stream's fd: captured too, not the kernel's own stdout
    result = await executor.execute(
        "import subprocess, sys\nsubprocess.run(['echo', 'Y-mark'], stdout=sys.stdout)\n"
        "print('C-mark')"
    )
    assert result.ok and stream_text(result.outputs, "stdout") == "Y-mark\nC-mark\n", result
    leaked = capfd.readouterr()
    assert not any(m in leaked.out + leaked.err for m in MARKS), leaked


@pytest.mark.kernel
async def test_kernel_with_ipykernels_own_fd_capture(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Outside pytest ipykernel watches the fds itself (a thread that races `print`)."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    ex = make_executor(_settings(work_dir, "kernel"), work_dir=work_dir, backend="kernel")
    try:
        for _ in range(5):
            result = await ex.execute(CODE)
            assert result.ok and stream_text(result.outputs, "stdout") == EXPECTED, result
        # after a restart the new kernel is set up the same way
        died = await ex.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert died.status == "died", died
        result = await ex.execute(CODE)
        assert result.ok and stream_text(result.outputs, "stdout") == EXPECTED, result
    finally:
        await ex.shutdown()
    leaked = capfd.readouterr()
    assert not any(m in leaked.out + leaked.err for m in MARKS), leaked


async def test_inline_shell(work_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    shell = InteractiveShell.instance()
    ex = InlineExecutor(shell, work_dir=work_dir)
    for _ in range(5):
        result = await ex.execute(CODE)
        assert result.ok and stream_text(result.outputs, "stdout") == EXPECTED, result
    result = await ex.execute("import os\nos.system('echo E-mark >&2')\nx = 1")
    assert stream_text(result.outputs, "stderr") == "E-mark\n", result
    result = await ex.execute(
        "import subprocess, sys\nsubprocess.run(['echo', 'Y-mark'], stdout=sys.stdout)\n"
        "print('C-mark')"
    )
    assert result.ok and stream_text(result.outputs, "stdout") == "Y-mark\nC-mark\n", result
    leaked = capfd.readouterr()
    assert not any(m in leaked.out + leaked.err for m in MARKS), leaked
    os.write(1, b"fd 1 is back\n")
    assert capfd.readouterr().out == "fd 1 is back\n"
    await ex.shutdown()


async def test_inline_child_outliving_its_run(
    work_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The fd pipes are kept between runs: a child still writing after its run ended is not
    killed by a closed pipe, and what it writes between runs goes where fd 1 points then;
    the next run captures its own output only."""
    shell = InteractiveShell.instance()
    ex = InlineExecutor(shell, work_dir=work_dir)
    marker = work_dir / "child-status"
    try:
        started = await ex.execute(
            "import subprocess\n"
            "child = subprocess.Popen(['sh', '-c', 'echo early-mark; sleep 0.5; "
            f"echo late-mark; echo $? > {marker}'])\n"
            "import time; time.sleep(0.2)"
        )
        assert started.ok and stream_text(started.outputs, "stdout") == "early-mark\n", started
        await asyncio.sleep(1.0)
        assert marker.read_text().strip() == "0"  # `echo late-mark` did not hit a closed pipe
        assert "late-mark" in capfd.readouterr().out
        result = await ex.execute("child.wait(); print('next-mark')")
        assert result.ok and stream_text(result.outputs, "stdout") == "next-mark\n", result
    finally:
        await ex.shutdown()
    os.write(1, b"fd 1 is back\n")
    assert capfd.readouterr().out == "fd 1 is back\n"


def test_inline_through_the_magic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`%%codeflow` in the shell's own process: the record has the children's output."""
    from codeflow_magic.magic import _LOADED

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CODEFLOW_CACHE", raising=False)
    monkeypatch.delenv("CODEFLOW_OVERRIDES", raising=False)
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext codeflow_magic", store_history=False)
    try:
        with ModelServer() as server:
            for key, value in server.env().items():
                monkeypatch.setenv(key, value)
            server.add_rule(contains="write through children", reply=py(CLI_CODE))
            shell.run_cell(
                "%%codeflow --no-writeback --backend inline\nwrite through children",
                store_history=False,
            )
        record = _LOADED[id(shell)].history[-1]
    finally:
        shell.run_cell("%unload_ext codeflow_magic", store_history=False)
    assert record.success, record
    assert stream_text(record.outputs, "stdout") == CLI_EXPECTED
    assert stream_text(record.outputs, "stderr") == "E-mark\n"
    leaked = capfd.readouterr()
    # The magic shows the final outputs once, in order, after the run (a plain shell prints
    # them); output that went to the fds directly would show a second time, before them.
    assert leaked.out.count("\nZ-mark\n") == 1 and EXPECTED in leaked.out
    assert leaked.err.count("E-mark") == 1


# --- the CLI: one JSON document on stdout, whatever the code writes -----------------------------


def py(code: str) -> str:
    return f"Here is the code.\n```python\n{code}\n```\n"


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def _cli(server: ModelServer, work_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    env["XDG_CONFIG_HOME"] = str(work_dir / ".config")
    env.update(server.env())
    return subprocess.run(
        [sys.executable, "-m", "codeflow_magic.cli", *args],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


CLI_BACKENDS = [
    pytest.param("kernel", marks=pytest.mark.kernel),
    pytest.param("sandbox", marks=pytest.mark.sandbox),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("gateway", marks=pytest.mark.gateway),
]


@pytest.mark.parametrize("backend", CLI_BACKENDS)
def test_ask_json_is_one_document(
    backend: str, server: ModelServer, work_dir: Path, request: pytest.FixtureRequest
) -> None:
    _require(backend)
    extra: list[str] = []
    if backend == "gateway":
        url = request.getfixturevalue("gateway_url")
        extra = ["--gateway-url", url, "--gateway-token", TOKEN]
    server.add_rule(contains="write through children", reply=py(CLI_CODE))
    proc = _cli(
        server,
        work_dir,
        "ask",
        "write through children",
        "--backend",
        backend,
        *extra,
        "--format",
        "json",
        "--no-cache",
        "--scan",
        "off",
        "--work-dir",
        str(work_dir),
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)  # exactly one document: extra data would fail here
    assert record["success"] is True and "forged" not in record
    assert stream_text(record["outputs"], "stdout") == CLI_EXPECTED
    assert stream_text(record["outputs"], "stderr") == "E-mark\n"
    assert not any(m in proc.stderr for m in MARKS), proc.stderr


@pytest.mark.kernel
def test_batch_prints_one_record_per_line(server: ModelServer, work_dir: Path) -> None:
    server.add_rule(contains="[one]", reply=py(CLI_CODE))
    server.add_rule(contains="[two]", reply=py("import os\nos.system('echo two-mark')"))
    requests = work_dir / "fd-requests.txt"
    requests.write_text("[one] write through children\n[two] echo from a child\n")
    proc = _cli(
        server,
        work_dir,
        "batch",
        str(requests),
        "--parallel",
        "2",
        "--quiet",
        "--no-cache",
        "--scan",
        "off",
        "--work-dir",
        str(work_dir),
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    one, two = lines
    assert stream_text(one["outputs"], "stdout") == CLI_EXPECTED
    assert stream_text(two["outputs"], "stdout") == "two-mark\n"
    assert not any(m in proc.stderr for m in MARKS), proc.stderr
