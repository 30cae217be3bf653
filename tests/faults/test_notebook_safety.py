"""Notebook safety under `codeflow run`: atomic writes, stop signals, concurrent runs, bad input.

Every fault is injected into a real `codeflow run` subprocess on a real notebook, with a real
kernel: SIGKILL at random moments and in the middle of a write, SIGINT and SIGTERM while the
loopback model server holds a request, a second run while the first holds the notebook, and
files that are not notebooks. What is checked each time is what a user would find afterwards:
the input untouched, the output either the old file or a valid notebook, one clear line on
stderr, the documented exit status, and no kernel process left running.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from modelserver import ModelServer

from codeflow_magic.models import RECORD_MIME
from codeflow_magic.nbfiles import read_notebook, write_atomic

PY = "```python\n{}\n```"


# -- helpers ------------------------------------------------------------------------------------


def kernels_of(notebook: Path) -> set[int]:
    """Processes started for `notebook`: the runner gives its kernel JPY_SESSION_NAME=<path>,
    and anything the kernel starts inherits it (zombies have no environment and do not count)."""
    needle = b"JPY_SESSION_NAME=" + str(notebook.resolve()).encode() + b"\0"
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ:
            found.add(int(entry))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 120.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def messages(stderr: str) -> list[str]:
    """codeflow's own lines on stderr (the progress bar's lines aside)."""
    return [line for line in stderr.splitlines() if line.startswith("codeflow:")]


def is_valid_notebook(raw: bytes) -> bool:
    try:
        nbformat.validate(nbformat.reads(raw.decode("utf-8"), as_version=4))
    except Exception:
        return False
    return True


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time, but for the private
    config and cache folders the runs are given (the notebook locks live there)."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] not in (".cache", ".config")
    }


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def kill_leftovers(notebook: Path) -> None:
    """A SIGKILLed runner cannot stop its kernel; end those kernels (this test started them)."""
    for pid in kernels_of(notebook):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert wait_until(lambda: not kernels_of(notebook), timeout=30)


# -- atomic writes ------------------------------------------------------------------------------


def test_write_atomic_keeps_the_mode_and_writes_what_utf8_can_hold(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    write_atomic(target, '{"text": "file-\udcff.txt"}')
    assert target.read_bytes().decode("utf-8") == '{"text": "file-\ufffd.txt"}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert temps(tmp_path) == []
    nested = tmp_path / "new" / "folder" / "report.md"
    write_atomic(nested, "# report\n")
    assert nested.read_text(encoding="utf-8") == "# report\n"
    link = tmp_path / "link.ipynb"
    link.symlink_to(target.name)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new"


def test_an_nbformat_3_notebook_is_read_as_version_4(tmp_path: Path) -> None:
    v3 = nbformat.v3.new_notebook(
        worksheets=[nbformat.v3.new_worksheet(cells=[nbformat.v3.new_code_cell("1 + 1")])]
    )
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.v3.writes_json(v3), encoding="utf-8")
    nb = read_notebook(path)
    assert nb.nbformat == 4 and nb.cells[0].source == "1 + 1"


@pytest.mark.kernel
@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_the_old_output_or_a_valid_notebook(
    tmp_path: Path, write_notebook: Callable[..., Path], codeflow_popen: Callable[..., Any]
) -> None:
    """The big cell makes the write take a while; kills land at random moments of the run and,
    watching for the temporary file, in the middle of the write itself."""
    source = write_notebook(
        tmp_path / "big.ipynb", ["x = 1", "print('y' * 60_000_000)", "print('last')"]
    )
    output = tmp_path / "big.out.ipynb"
    old = write_notebook(tmp_path / "old.ipynb", ["print('the old output')"]).read_bytes()
    source_bytes = source.read_bytes()

    began = time.monotonic()
    full = codeflow_popen("run", source.name)
    assert full.wait(timeout=600) == 0, full.stderr.read() if full.stderr else ""
    duration = time.monotonic() - began
    assert is_valid_notebook(output.read_bytes())

    rng = random.Random(20240611)
    outcomes: list[str] = []
    caught_mid_write = 0
    plans = [("random", rng.uniform(0.05, 1.3) * duration) for _ in range(5)]
    plans += [("mid-write", 0.0)] * 4
    for kind, delay in plans:
        output.write_bytes(old)
        proc = codeflow_popen("run", source.name)
        if kind == "random":
            time.sleep(delay)
        else:
            assert wait_until(
                lambda p=proc: bool(temps(tmp_path)) or p.poll() is not None, step=0.002
            )
        proc.kill()
        proc.wait(timeout=60)
        raw = output.read_bytes()
        assert raw == old or is_valid_notebook(raw), f"{kind} kill after {delay:.2f}s: torn file"
        outcomes.append("old" if raw == old else "new")
        if kind == "mid-write" and raw == old and temps(tmp_path):
            caught_mid_write += 1
        assert source.read_bytes() == source_bytes
        kill_leftovers(source)
    assert caught_mid_write >= 1, outcomes  # a write was really cut short, and did no harm

    # the same for --inplace: the input itself is only ever replaced whole
    for _ in range(2):
        proc = codeflow_popen("run", source.name, "--inplace")
        assert wait_until(lambda p=proc: bool(temps(tmp_path)) or p.poll() is not None, step=0.002)
        proc.kill()
        proc.wait(timeout=60)
        raw = source.read_bytes()
        assert raw == source_bytes or is_valid_notebook(raw)
        kill_leftovers(source)

    # the next run removes what killed writes left behind
    output.write_bytes(old)
    final = codeflow_popen("run", source.name)
    assert final.wait(timeout=600) == 0
    assert temps(tmp_path) == [] and is_valid_notebook(output.read_bytes())


# -- SIGINT and SIGTERM -------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "inplace"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, False), (signal.SIGTERM, 143, True)],
    ids=["sigint", "sigterm", "sigterm-inplace"],
)
def test_a_stop_signal_saves_the_finished_cells_and_leaves_no_kernel(
    tmp_path: Path,
    write_notebook: Callable[..., Path],
    codeflow_popen: Callable[..., Any],
    signum: int,
    status: int,
    inplace: bool,
) -> None:
    source = write_notebook(
        tmp_path / "steps.ipynb",
        [
            "%load_ext codeflow_magic",
            "x = 1",
            "%%codeflow\nfirst quick request",
            "%%codeflow\nsecond slow request",
            "y = 2",
        ],
    )
    before = source.read_bytes()
    output = tmp_path / "steps.out.ipynb"
    assert kernels_of(source) == set()
    with ModelServer() as server:
        # anchored on the `Request:` line: the second prompt quotes the cells above it
        server.add_rule("Request:\nfirst quick request", PY.format("a = 41 + 1\nprint(a)"))
        server.add_rule("Request:\nsecond slow request", text=PY.format("b = 2"), latency=600)
        args = [source.name, "--inplace"] if inplace else [source.name]
        proc = codeflow_popen("run", *args, env=server.env())
        assert wait_until(lambda: any("second slow" in r.last_user for r in server.requests))
        assert kernels_of(source), "the probe sees the run's kernel"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=300)
    name = signal.Signals(signum).name

    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    (message,) = messages(stderr)
    assert f"stopped by {name} during cell 5 of 6" in message  # (one cell was written back)
    assert kernels_of(source) == set()
    if inplace:
        assert source.read_bytes() == before and not output.exists()
        assert "the notebook is unchanged" in message
        return
    assert source.read_bytes() == before
    assert f"wrote {output.name}" in message and "2 code cell(s) marked not run" in message
    nb = nbformat.read(output, as_version=4)
    nbformat.validate(nb)
    by_id = {c.id: c for c in nb.cells}
    assert [by_id[f"cell-{i}"].execution_count for i in range(5)] == [1, 2, 3, None, None]
    request = by_id["cell-2"]
    (record,) = [o.data[RECORD_MIME] for o in request.outputs if RECORD_MIME in o.get("data", {})]
    assert record["success"] and "42\n" in "".join(
        o.get("text", "") for o in request.outputs if o.output_type == "stream"
    )
    linked = by_id[request.metadata["codeflow"]["linked_cell_id"]]
    assert linked.source == "a = 41 + 1\nprint(a)"
    assert by_id["cell-3"].outputs == [] and by_id["cell-4"].outputs == []
    assert nb.metadata["codeflow"]["run"] == {
        "status": "stopped",
        "reason": f"stopped by {name}",
        "not_run": ["cell-3", "cell-4"],
    }


# -- two runs at once ---------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.slow
def test_a_second_run_is_refused_or_waits_and_nothing_is_corrupted(
    tmp_path: Path,
    write_notebook: Callable[..., Path],
    codeflow_cli: Callable[..., Any],
    codeflow_popen: Callable[..., Any],
) -> None:
    gate = tmp_path / "release"
    source = write_notebook(
        tmp_path / "shared.ipynb",
        [
            "import os, time\nwhile not os.path.exists('release'):\n    time.sleep(0.05)",
            "print('done')",
        ],
    )
    other = write_notebook(tmp_path / "other.ipynb", ["print('other')"])
    first = codeflow_popen("run", source.name)
    lock_held = tmp_path / "shared.out.ipynb"
    try:
        assert wait_until(lambda: bool(kernels_of(source)))
        files = snapshot(tmp_path)

        refused = codeflow_cli("run", source.name)
        assert refused.code == 6, refused.stderr
        assert "Traceback" not in refused.stderr
        (message,) = messages(refused.stderr)
        assert f"another codeflow run (pid {first.pid})" in message
        assert "nothing was written" in message and "--wait" in message

        elsewhere = codeflow_cli("run", source.name, "-o", "elsewhere.ipynb")
        assert elsewhere.code == 6 and f"pid {first.pid}" in elsewhere.stderr
        onto = codeflow_cli("run", other.name, "-o", lock_held.name)
        assert onto.code == 6 and f"its output {lock_held.name}" in onto.stderr
        assert snapshot(tmp_path) == files  # the refused runs wrote nothing

        waiting = codeflow_popen("run", source.name, "--wait", "-o", "after.ipynb")
        assert wait_until(lambda: "waiting for" in _peek(waiting), timeout=120)
    finally:
        gate.touch()
    assert first.wait(timeout=300) == 0
    waited = _rest(waiting)
    assert waiting.returncode == 0, waited
    assert f"waiting for the other codeflow run (pid {first.pid})" in waited
    for path in (lock_held, tmp_path / "after.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[1].outputs[0]["text"] == "done\n"


_PEEKED: dict[int, bytes] = {}


def _peek(proc: subprocess.Popen[str]) -> str:
    """What a running process wrote to stderr so far (read without blocking, kept for
    `_rest`)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        _PEEKED[proc.pid] = _PEEKED.get(proc.pid, b"") + os.read(fd, 1 << 16)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)
    return _PEEKED.get(proc.pid, b"").decode("utf-8", "replace")


def _rest(proc: subprocess.Popen[str]) -> str:
    """All of stderr: what `_peek` read, then the rest until the process ends."""
    _, rest = proc.communicate(timeout=300)
    return _PEEKED.pop(proc.pid, b"").decode("utf-8", "replace") + rest


# -- bad notebook input -------------------------------------------------------------------------


NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


@pytest.mark.parametrize(
    ("content", "args", "status", "expected"),
    [
        (None, (), 2, "input.ipynb: no such file"),
        ("<folder>", (), 2, "input.ipynb: is a folder, not a notebook"),
        ('{"a": 1}', (), 2, "not a notebook: the JSON object has no cells and nbformat"),
        ("[1, 2]", (), 2, "not a notebook: the JSON is a list"),
        ('{"cells": [}', (), 2, "invalid JSON at line 1, column 12"),
        ('{\n "cells": [],\n "nbformat": 4,,\n}', (), 2, "invalid JSON at line 3, column 16"),
        (b'{"cells": [], "nbformat": 4, "x": "\xff"}', (), 2, "not UTF-8 text (byte 0xff"),
        ("", (), 2, "not a notebook: the file is empty"),
        ('{"cells": "none", "nbformat": 4}', (), 2, "not a valid notebook"),
        (NOTEBOOK, ("-o", "a-file/out.ipynb"), 2, "a-file is a file, not a folder"),
        (NOTEBOOK, ("-o", "input.ipynb"), 2, "the output would overwrite the input"),
        (NOTEBOOK, ("--inplace", "-o", "x.ipynb"), 2, "either --inplace or -o/--output"),
        (NOTEBOOK, ("--kernel", "no-such-kernel"), 4, "no Jupyter kernel named 'no-such-kernel'"),
    ],
    ids=[
        "missing",
        "folder",
        "object-not-notebook",
        "list",
        "invalid-json",
        "invalid-json-line-3",
        "not-utf8",
        "empty",
        "bad-schema",
        "output-under-a-file",
        "output-is-input",
        "inplace-and-output",
        "unknown-kernel",
    ],
)
def test_bad_notebook_input_is_refused_with_one_line_and_nothing_written(
    tmp_path: Path,
    codeflow_cli: Callable[..., Any],
    content: str | bytes | None,
    args: tuple[str, ...],
    status: int,
    expected: str,
) -> None:
    path = tmp_path / "input.ipynb"
    if content == "<folder>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    files = snapshot(tmp_path)
    with ModelServer() as server:
        done = codeflow_cli("run", "input.ipynb", *args, env=server.env())
        asked = list(server.requests)
    assert done.code == status, done.stderr
    assert "Traceback" not in done.stderr
    (message,) = messages(done.stderr)
    assert expected in message, message
    assert done.stdout == "" and asked == []
    assert snapshot(tmp_path) == files


def test_two_notebooks_bound_for_one_output_are_refused(
    tmp_path: Path, write_notebook: Callable[..., Path], codeflow_cli: Callable[..., Any]
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_notebook(tmp_path / folder / "same.ipynb", ["1 + 1"])
    files = snapshot(tmp_path)
    done = codeflow_cli("run", "a/same.ipynb", "b/same.ipynb", "-o", "out")
    assert done.code == 2 and "Traceback" not in done.stderr
    (message,) = messages(done.stderr)
    assert "would both be written to out/same.out.ipynb" in message
    assert snapshot(tmp_path) == files


@pytest.mark.kernel
@pytest.mark.slow
def test_a_failing_cell_is_named_with_its_line_and_nothing_is_written(
    tmp_path: Path, write_notebook: Callable[..., Path], codeflow_cli: Callable[..., Any]
) -> None:
    """Like `jupyter nbconvert --execute`: the run stops at the first failing cell and saves
    nothing (exit 1); --allow-errors runs past it, saves, and still names the cell."""
    source = write_notebook(
        tmp_path / "broken.ipynb",
        ["x = 1", "y = 2\nraise ValueError('bad value ' + str(y))\nz = 3", "print('after')"],
    )
    files = snapshot(tmp_path)
    stopped = codeflow_cli("run", source.name)
    assert stopped.code == 1 and "Traceback" not in stopped.stderr
    (message,) = messages(stopped.stderr)
    assert "cell 2 raised ValueError: bad value 2" in message
    assert "(line 2: raise ValueError('bad value ' + str(y)))" in message
    assert "nothing written" in message and "--allow-errors" in message
    assert snapshot(tmp_path) == files

    kept_going = codeflow_cli("run", source.name, "--allow-errors")
    assert kept_going.code == 0 and "Traceback" not in kept_going.stderr
    (note,) = messages(kept_going.stderr)
    assert "cell 2 raised ValueError: bad value 2" in note and "--allow-errors" in note
    nb = nbformat.read(tmp_path / "broken.out.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.cells[1].outputs[-1]["output_type"] == "error"
    assert nb.cells[2].outputs[0]["text"] == "after\n"
    assert source.read_bytes() == (tmp_path / "broken.ipynb").read_bytes()


@pytest.mark.kernel
@pytest.mark.slow
def test_an_output_in_a_missing_folder_is_written_there(
    tmp_path: Path, write_notebook: Callable[..., Path], codeflow_cli: Callable[..., Any]
) -> None:
    """Missing folders are made, as `-o reports/x.ipynb` expects (only a path that cannot be a
    folder is refused, before anything runs)."""
    source = write_notebook(tmp_path / "plain.ipynb", ["print('hi')"])
    done = codeflow_cli("run", source.name, "-o", "reports/new/plain.ipynb")
    assert done.code == 0, done.stderr
    nb = nbformat.read(tmp_path / "reports" / "new" / "plain.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].outputs[0]["text"] == "hi\n"
