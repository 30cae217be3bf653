"""Run the real `codeflow` command and write notebooks for it, as the tests of every layer do.

Importable by a name no test module shadows (like `modelserver`). The environment of a run
holds no key, base URL or setting of ours from the outer environment, and no notebook session
name (the magic would read that notebook's cells as context).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def clean_env(home: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The outer environment less our variables (and the config folder under `home`)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_", "JPY_"))
    }
    if home is not None:
        env["XDG_CONFIG_HOME"] = str(home / ".config")
    env.update(extra or {})
    return env


def codeflow(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    home: Path | None = None,
    timeout: float = 300,
    input: str | None = None,
    prelude: str = "",
) -> Result:
    """`codeflow ARGS` to completion; `prelude` is Python run in the process before the CLI
    (to stage what only a test may change, such as codeflow's default model)."""
    launch = "import sys\nfrom codeflow_magic.cli import main\nsys.exit(main(sys.argv[1:]))"
    command = (
        [sys.executable, "-c", f"{prelude}\n{launch}", *args] if prelude else [*CODEFLOW, *args]
    )
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=clean_env(home, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_notebook(
    path: Path, cells: Sequence[str | nbformat.NotebookNode], *, ids: str = "cell-"
) -> Path:
    """A python3 notebook of `cells` (a string is a code cell) with ids `cell-0`, `cell-1`..."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{ids}{index}"
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path
