"""Packaging: a wheel built from a clean tree carries the built labextension.

The wheel is what users install, so it must bring the prebuilt extension into
`share/jupyter/labextensions/codeflow-labextension` (no node needed at install time), and the
development install must be what JupyterLab lists as enabled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from needs import REPO_ROOT, need

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PREFIX = "share/jupyter/labextensions/codeflow-labextension/"
BUILD_TIMEOUT = 1200


def clean_copy(dest: Path) -> None:
    """Copy what git would commit (tracked and new, not ignored): no node_modules, no build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO_ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SKIP_JUPYTER_BUILDER", None)
    if not env.get("YARN_NPM_REGISTRY_SERVER") and shutil.which("npm"):
        registry = subprocess.run(
            ["npm", "config", "get", "registry"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
        if registry:
            env["YARN_NPM_REGISTRY_SERVER"] = registry.rstrip("/")
    return env


def test_wheel_from_a_clean_tree_ships_the_labextension(tmp_path: Path) -> None:
    need(shutil.which("node") is not None, "node is not installed (needed to build the wheel)")
    need(shutil.which("git") is not None, "git is not installed (needed to copy a clean tree)")
    tree = tmp_path / "tree"
    clean_copy(tree)
    assert not (tree / "codeflow_magic" / "labextension").exists()
    assert not (tree / "labextension" / "node_modules").exists()

    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(out)],
        cwd=tree,
        env=build_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    wheels = list(out.glob("codeflow_magic-*.whl"))
    assert len(wheels) == 1

    with zipfile.ZipFile(wheels[0]) as whl:
        names = whl.namelist()
        shared = {n.split(PREFIX, 1)[1]: n for n in names if ".data/data/" in n and PREFIX in n}
        assert "package.json" in shared
        assert "install.json" in shared
        assert "static/style.js" in shared
        assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]
        assert any(k.startswith("static/remoteEntry.") for k in shared)
        assert "schemas/codeflow-labextension/plugin.json" in shared

        package = json.loads(whl.read(shared["package.json"]))
        assert package["name"] == "codeflow-labextension"
        build = package["jupyterlab"]["_build"]
        assert build["load"].startswith("static/remoteEntry.")
        assert "extension" in build and "mimeExtension" in build
        assert f"static/{Path(build['load']).name}" in shared

        install = json.loads(whl.read(shared["install.json"]))
        assert install["packageName"] == "codeflow-magic"

        schema = json.loads(whl.read(shared["schemas/codeflow-labextension/plugin.json"]))
        assert set(schema["properties"]) == {"model", "maxAttempts", "backend", "writeback"}
        # The Python package itself is in the wheel, next to the extension.
        assert "codeflow_magic/frontend.py" in names

    # Installed into a clean environment (no node, no checkout), JupyterLab lists it enabled.
    venv = tmp_path / "clean-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0]), "jupyterlab"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    listed = subprocess.run(
        [str(venv / "bin" / "jupyter"), "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV"))},
    )
    ours = [
        line
        for line in (listed.stdout + listed.stderr).splitlines()
        if "codeflow-labextension" in line
    ]
    assert ours and "enabled" in ours[0] and "OK" in ours[0], listed.stdout + listed.stderr
    assert str(venv) in listed.stdout + listed.stderr  # found in the clean prefix, not ours


def test_development_install_is_listed_enabled() -> None:
    need(
        (REPO_ROOT / "codeflow_magic" / "labextension" / "package.json").exists(),
        "the labextension is not built (cd labextension && jlpm build:prod)",
    )
    done = subprocess.run(
        [str(BIN / "jupyter"), "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [
        line for line in (done.stdout + done.stderr).splitlines() if "codeflow-labextension" in line
    ]
    need(bool(lines), "codeflow-labextension is not installed (jupyter labextension develop .)")
    assert any("enabled" in line and "OK" in line for line in lines), lines
