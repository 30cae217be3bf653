"""`codeflow scan` as a real subprocess: languages, formats, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "codeflow_magic.cli", "scan"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_json_report_and_exit_status(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os\n\nos.system('rm -rf ~')\n")
    (tmp_path / "good.py").write_text("import pandas as pd\nprint(pd.__version__)\n")
    (tmp_path / "wipe.sh").write_text("#!/bin/sh\nrm -rf $HOME\n")
    (tmp_path / "cell.ipy").write_text("x = 1\n!cat ~/.ssh/id_rsa\n")
    proc = run("bad.py", "good.py", "wipe.sh", "cell.ipy", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["path"] for r in report] == ["bad.py", "good.py", "wipe.sh", "cell.ipy"]
    assert [r["language"] for r in report] == ["python", "python", "bash", "ipython"]
    assert [r["severity"] for r in report] == ["critical", "none", "critical", "critical"]
    first = report[0]["findings"][0]
    assert set(first) == {"rule", "severity", "category", "line", "message"}
    assert first["line"] == 3 and first["category"] == "process"
    assert report[1]["findings"] == []


def test_fail_on_threshold(tmp_path: Path) -> None:
    (tmp_path / "fetch.py").write_text("import requests\nrequests.get('http://x.invalid')\n")
    assert run("fetch.py", cwd=tmp_path).returncode == 0  # medium < default high
    assert run("fetch.py", "--fail-on", "medium", cwd=tmp_path).returncode == 1
    assert run("fetch.py", "--fail-on", "critical", cwd=tmp_path).returncode == 0


def test_text_format_one_block_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "b.py").write_text("import os\nprint(os.environ)\n")
    proc = run("a.py", "b.py", cwd=tmp_path)
    assert proc.returncode == 1
    blocks = proc.stdout.strip().split("\n\n")
    assert blocks[0] == "a.py (python): none, no findings"
    assert blocks[1].startswith("b.py (python): high, 1 finding")
    assert "line 2: [high/secrets]" in blocks[1]


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("rm -rf ~\n")
    proc = run("notes.txt", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--language" in proc.stderr and "Traceback" not in proc.stderr
    assert run("notes.txt", "--language", "bash", cwd=tmp_path).returncode == 1
    missing = run("nope.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such file: nope.py" in missing.stderr and "Traceback" not in missing.stderr
    bad_option = run("notes.txt", "--fail-on", "severe", cwd=tmp_path)
    assert bad_option.returncode == 2 and "Traceback" not in bad_option.stderr
