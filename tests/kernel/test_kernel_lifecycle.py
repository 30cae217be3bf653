"""Start, shutdown, environment and configuration of the local kernel executor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeflow_magic.config import load_settings
from codeflow_magic.errors import BackendError, BackendUnavailable
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.secrets import scrub_env as _scrub_env

pytestmark = [pytest.mark.kernel]


def test_scrub_env_drops_credentials_by_name() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": "a",
        "ANTHROPIC_BASE_URL": "b",
        "OPENAI_ORG": "c",
        "GITHUB_TOKEN": "d",
        "hf_token": "e",
        "DB_PASSWORD": "f",
        "MY_SECRET_THING": "g",
        "AWS_ACCESS_KEY_ID": "h",
        "AWS_SECRET_ACCESS_KEY": "i",
        "AWS_SESSION_TOKEN": "j",
        "AWS_REGION": "eu-west-1",
        "STRIPE_KEY": "k",
        "CUSTOM_THING": "l",
        "GOOGLE_APPLICATION_CREDENTIALS": "m",
    }
    kept = _scrub_env(environ, ["custom_thing"])
    assert kept == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "AWS_REGION": "eu-west-1",
    }
    assert environ["ANTHROPIC_API_KEY"] == "a", "the input mapping is not changed"


@pytest.mark.asyncio
async def test_kernel_cannot_read_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-123")
    monkeypatch.setenv("CODEFLOW_DB_URL", "hidden")
    monkeypatch.setenv("CODEFLOW_VISIBLE_MARKER", "visible")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ex = KernelExecutor(
        work_dir=tmp_path,
        secret_env=["CODEFLOW_DB_URL"],
        env={"CODEFLOW_INJECTED": "yes"},
    )
    try:
        result = await ex.execute(
            "import os\n"
            "print([os.environ.get(n) for n in ('ANTHROPIC_API_KEY', "
            "'CODEFLOW_DB_URL', 'CODEFLOW_VISIBLE_MARKER', 'CODEFLOW_INJECTED')])\n"
            "print(os.environ['MPLBACKEND'])\n"
            "print(os.environ['IPYTHONDIR'], os.environ['JUPYTER_RUNTIME_DIR'])"
        )
        lines = result.outputs[0]["text"].splitlines()
        assert lines[0] == "[None, None, 'visible', 'yes']"
        assert "inline" in lines[1]
        run_dir = ex.run_dir
        assert run_dir is not None
        assert lines[2].split() == [str(run_dir / "ipython"), str(run_dir / "runtime")]
        bash = await ex.execute('echo "[${ANTHROPIC_API_KEY:-unset}]"', language="bash")
        assert bash.outputs[0]["text"] == "[unset]\n"
    finally:
        await ex.shutdown()


@pytest.mark.asyncio
async def test_concurrent_starts_share_one_kernel(tmp_path: Path) -> None:
    ex = KernelExecutor(work_dir=tmp_path)
    try:
        await asyncio.gather(ex.start(), ex.start(), ex.start())
        km = ex.kernel_manager
        assert km is not None
        first = await ex.execute("import os; os.getpid()")
        await ex.start()
        assert ex.kernel_manager is km
        again = await ex.execute("os.getpid()")
        assert first.outputs[0]["data"] == again.outputs[0]["data"]
        # The kernel is ours alone: one connection file in our private run dir.
        run_dir = ex.run_dir
        assert run_dir is not None and len(str(run_dir)) < 40
        assert km.connection_file == str(run_dir / "kernel.json")
        assert km.transport == "ipc"
    finally:
        await ex.shutdown()


@pytest.mark.asyncio
async def test_shutdown_is_idempotent_and_removes_run_dir(tmp_path: Path) -> None:
    ex = KernelExecutor(work_dir=tmp_path)
    await ex.start()
    run_dir = ex.run_dir
    km = ex.kernel_manager
    assert run_dir is not None and run_dir.is_dir() and km is not None
    await ex.shutdown()
    assert not run_dir.exists()
    assert not await km.is_alive()
    assert ex.kernel_manager is None and not ex.started
    await ex.shutdown()  # again: nothing to do, no error


@pytest.mark.asyncio
async def test_async_context_manager_and_fresh_namespace(tmp_path: Path) -> None:
    async with KernelExecutor(work_dir=tmp_path) as ex:
        assert ex.started
        assert await ex.describe_state() == ""
        await ex.execute("answer = 42")
        assert await ex.describe_state() == "answer: int = 42"
        run_dir = ex.run_dir
    assert run_dir is not None and not run_dir.exists()


@pytest.mark.asyncio
async def test_unknown_kernel_name(tmp_path: Path) -> None:
    ex = KernelExecutor(work_dir=tmp_path, kernel_name="no-such-kernel-xyz")
    with pytest.raises(BackendUnavailable, match="no Jupyter kernel named 'no-such-kernel-xyz'"):
        await ex.start()
    assert ex.run_dir is None


@pytest.mark.asyncio
async def test_missing_work_dir(tmp_path: Path) -> None:
    ex = KernelExecutor(work_dir=tmp_path / "absent")
    with pytest.raises(BackendError, match="does not exist"):
        await ex.start()


def test_from_settings_reads_execution_section(tmp_path: Path) -> None:
    settings = load_settings(
        extra={
            "execution.timeout": 7.5,
            "execution.interrupt_grace": 1.5,
            "execution.max_output_chars": 5000,
            "execution.kernel_name": "python3",
            "execution.secret_env": ["MY_DB_URL"],
        },
        work_dir=tmp_path,
    )
    ex = make_executor(settings, work_dir=tmp_path, backend="kernel")
    assert isinstance(ex, KernelExecutor)
    assert (ex.timeout, ex.interrupt_grace, ex.max_output_chars) == (7.5, 1.5, 5000)
    assert ex.kernel_name == "python3" and ex.secret_env == ("MY_DB_URL",)
    assert ex.work_dir == tmp_path.resolve()
    assert not ex.started
