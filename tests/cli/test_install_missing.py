"""`--install-missing auto`: a missing package is installed into the kernel and the same code
re-runs without another model call. The package is a wheel built here, served from a local
folder (no index), and removed again afterwards."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelserver import ModelServer

pytestmark = pytest.mark.kernel

PKG = "cfdemo_tinypkg"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel, written by hand (no build backend needed offline)."""
    dist = f"{PKG}-0.1.dist-info"
    files = {
        f"{PKG}/__init__.py": b"VALUE = 'installed and imported'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: 0.1\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: codeflow-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{dist}/RECORD,,\n"
    wheel = folder / f"{PKG}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist}/RECORD", record)
    return wheel


@pytest.fixture
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("wheels")
    build_wheel(folder)
    yield folder
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", PKG], check=False)


def test_missing_package_is_installed_and_rerun_without_a_model_call(
    codeflow, server: ModelServer, wheel_dir: Path
) -> None:
    server.add_rule(
        contains="tiny package", reply=f"```python\nimport {PKG}\nprint({PKG}.VALUE)\n```"
    )
    res = codeflow(
        "ask",
        "use the tiny package",
        "--install-missing",
        "auto",
        "--format",
        "json",
        "--no-cache",
        env={
            "PIP_FIND_LINKS": str(wheel_dir),
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        },
    )
    assert res.code == 0, res.stderr
    record = res.json()
    assert [a["kind"] for a in record["attempts"]] == ["generate", "install"]
    assert record["attempts"][0]["error"]["category"] == "import"
    assert record["outputs"][0]["text"] == "installed and imported\n"
    assert len(server.requests) == 1  # the re-run asked the model nothing


def test_install_missing_off_asks_the_model_instead(codeflow, server: ModelServer) -> None:
    server.add_rule(
        contains="ModuleNotFoundError", reply="```python\nprint('used the stdlib')\n```"
    )
    server.add_rule(contains="tiny package", reply=f"```python\nimport {PKG}\n```")
    res = codeflow("ask", "use the tiny package", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    assert [a["kind"] for a in record["attempts"]] == ["generate", "fix"]
    fix_prompt = server.requests[1].last_user
    assert "Error class: import" in fix_prompt and "not installed" in fix_prompt
    assert "Do not try to install" in fix_prompt
