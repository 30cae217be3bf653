"""`execution.disk_limit` without starting a sandbox: the setting, the flags each backend gets,
and the kernel start-up file that names the limit when a write fails for lack of space."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeflow_magic.config import load_settings
from codeflow_magic.errors import ConfigError
from codeflow_magic.executors.bwrap import BubblewrapProvisioner, sandbox_kernelspec_dir
from codeflow_magic.executors.docker import DockerProvisioner
from codeflow_magic.executors.limits import DISK_HOOK_NAME, disk_hook, parse_size


def test_default_is_one_gigabyte_and_bad_values_are_rejected() -> None:
    assert load_settings().execution.disk_limit == "1g"
    assert load_settings(extra={"execution.disk_limit": "64m"}).execution.disk_limit == "64m"
    with pytest.raises(ConfigError):
        load_settings(extra={"execution.disk_limit": "lots"})


def test_sandbox_temp_space_is_a_tmpfs_of_the_disk_limit(tmp_path: Path) -> None:
    prov = BubblewrapProvisioner(kernel_id="t", kernel_spec=None, disk_limit="96m")
    argv = prov._bwrap_argv(str(tmp_path), str(tmp_path))
    at = argv.index("--tmpfs")
    assert argv[at - 2 : at + 2] == ["--size", str(96 * 1024**2), "--tmpfs", "/tmp"]
    assert prov.limits.disk == 96 * 1024**2
    # An explicit smaller /tmp stays smaller; a larger one is cut to the disk limit.
    assert BubblewrapProvisioner(disk_limit="1g", tmp_size="256m").tmp_bytes == 256 * 1024**2
    assert BubblewrapProvisioner(disk_limit="64m", tmp_size="1g").tmp_bytes == 64 * 1024**2


def test_kernelspecs_carry_the_disk_limit(tmp_path: Path) -> None:
    settings = load_settings(extra={"execution.disk_limit": "80m"})
    folder = sandbox_kernelspec_dir(settings, tmp_path, "abc")
    try:
        spec = json.loads((folder / "codeflow-sandbox" / "kernel.json").read_text())
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    assert spec["metadata"]["kernel_provisioner"]["config"]["disk_limit"] == "80m"
    assert DockerProvisioner(disk_limit="80m").limits.disk == parse_size("80m")


def test_disk_hook_is_written_to_the_run_dir_and_passed_to_the_kernel(tmp_path: Path) -> None:
    args = disk_hook(str(tmp_path), 64 * 1024**2, 64 * 1024**2)
    path = tmp_path / DISK_HOOK_NAME
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o644"
    assert args == [f"--IPKernelApp.exec_files={json.dumps([str(path)])}"]


@pytest.mark.parametrize(
    ("raise_code", "renamed"),
    [
        ("raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), 'big.bin')", True),
        # Out of space while this machine's /tmp has room: not the temp-space cap, left alone.
        ("raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'big.bin')", False),
        ("open('/nonexistent-dir/x', 'w')", False),
        ("raise PermissionError(errno.EACCES, 'denied')", False),
    ],
)
def test_disk_hook_names_the_limit_only_for_disk_full_errors(
    tmp_path: Path, raise_code: str, renamed: bool
) -> None:
    disk_hook(str(tmp_path), 64 * 1024**2, 32 * 1024**2)
    hook = tmp_path / DISK_HOOK_NAME
    script = (
        "import errno, os\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        f"shell.safe_execfile({str(hook)!r}, shell.user_ns, raise_exceptions=True)\n"
        "assert '_codeflow_disk_limit' not in shell.user_ns\n"
        f"result = shell.run_cell({'import errno, os; ' + raise_code!r})\n"
        "print('EVALUE=' + str(result.error_in_exec))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipy")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    evalue = proc.stdout.rsplit("EVALUE=", 1)[1]
    if renamed:
        assert "No space left on device: the disk limit of 64m is reached" in evalue
        assert "execution.disk_limit" in evalue and "big.bin" in evalue
        assert f"[Errno {errno.EFBIG}]" in evalue
    else:
        assert "disk limit" not in evalue


def test_disk_hook_names_the_temp_space_when_it_is_what_filled_up(tmp_path: Path) -> None:
    disk_hook(str(tmp_path), 64 * 1024**2, 32 * 1024**2)
    hook = tmp_path / DISK_HOOK_NAME
    script = (
        "import os\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "class Full:\n"
        "    f_bavail = 0\n"
        "    f_frsize = 4096\n"
        "real = os.statvfs\n"
        "os.statvfs = lambda p: Full() if p == '/tmp' else real(p)\n"
        "shell = InteractiveShell.instance()\n"
        f"shell.safe_execfile({str(hook)!r}, shell.user_ns, raise_exceptions=True)\n"
        "result = shell.run_cell('import errno\\nraise OSError(errno.ENOSPC, \"full\")')\n"
        "print('EVALUE=' + str(result.error_in_exec))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipy")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    evalue = proc.stdout.rsplit("EVALUE=", 1)[1]
    assert "No space left on device: the temp space of 32m is full" in evalue
    assert "execution.disk_limit is 64m" in evalue
