"""Notebook files handled with care: read with one clear line on bad input, written
atomically, locked against a second writer.

`codeflow run`, `codeflow new` and the MCP server's notebook tools all go through here, so
"never half a notebook, never two writers" has one home.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BackendError, NotebookBusy, UsageError

# -- reading --------------------------------------------------------------------------------


def check_source(path: Path) -> None:
    """The cheap checks, before any lock is taken: the path names a file."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a notebook")


def read_notebook(path: Path) -> Any:
    """Read and validate a notebook, or raise UsageError with one clear line."""
    import nbformat

    check_source(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{path}: not a notebook: it is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
            f"line {line}, offset {exc.start}); a notebook is JSON in UTF-8"
        ) from None
    if not text.strip():
        raise UsageError(f"{path}: not a notebook: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg})"
        ) from None
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        raise UsageError(
            f"{path}: not a notebook: the JSON is {kind}, not an object with cells and nbformat"
        )
    missing = [key for key in ("cells", "nbformat") if key not in data]
    if "worksheets" in data and "nbformat" in data:
        missing = []  # an nbformat 3 notebook: converted below
    if missing:
        names = " and ".join(missing)
        raise UsageError(f"{path}: not a notebook: the JSON object has no {names}")
    try:
        nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a valid notebook ({first[:300]})") from None
    return nb


# -- writing --------------------------------------------------------------------------------


def check_writable(path: Path, what: str = "output") -> None:
    """Refuse, before anything runs, a file that could not be written.

    Missing folders are fine (they are made when the file is written, as `-o reports/x.ipynb`
    expects); a folder path that runs into a file, a folder where the file should go, or a
    folder without write permission is not.
    """
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder; name a file")
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {path}: cannot be written: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot be written: no write permission in {probe}")


_SURROGATES = re.compile("[\ud800-\udfff]")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, synced, then `os.replace`.

    A run killed at any point leaves either the old file or the new one (at worst a hidden
    `.NAME.*.tmp` beside it, which the next run on the file removes). A symlink keeps pointing
    at the notebook: its target is replaced. Lone surrogates, which UTF-8 cannot encode, are
    written as U+FFFD rather than failing the whole write.
    """
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    if path.is_symlink():
        path = path.resolve()  # replace the file the link points to, not the link
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut right after keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: Path) -> int:
    """Remove temporary files an earlier, killed write of `path` left (call with its lock)."""
    removed = 0
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")
    for name in glob.glob(pattern):
        with contextlib.suppress(OSError):
            os.unlink(name)
            removed += 1
    return removed


# -- locks ----------------------------------------------------------------------------------


def lock_folder() -> Path:
    """The user's private folder for notebook locks: under XDG_CACHE_HOME (or ~/.cache), else
    a temp folder that only this account may write. Never a shared folder another account
    could plant links in (a pid is written into each lock file)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else None
    candidates = [
        Path(base) / "codeflow" / "locks",
        Path(tempfile.gettempdir()) / f"codeflow-{uid}-locks",
    ]
    for folder in candidates:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
            continue
        if uid is not None and info.st_uid != uid:
            continue
        return folder
    raise BackendError(
        "no private folder for notebook locks: "
        + " and ".join(str(c) for c in candidates)
        + " cannot be made or are not this account's own"
    )


def lock_file(path: Path) -> Path:
    """The lock file of a notebook, named by its resolved path (kept out of its folder)."""
    key = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return lock_folder() / f"{key[:32]}.lock"


def _write_holder(lock: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(lock, flags)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


@contextlib.contextmanager
def notebook_locks(paths: dict[Path, Path], *, wait: bool) -> Iterator[None]:
    """Hold the lock of every file a run reads or writes (`paths`: file -> its notebook).

    The locks are taken in one order, so two waiting runs cannot deadlock. The holder writes
    its pid into the lock file, so a refused run can say who is in the way.
    """
    from filelock import FileLock, Timeout

    held: list[tuple[Any, Path]] = []
    try:
        by_lock = {lock_file(path): (path, notebook) for path, notebook in paths.items()}
        for lock_path in sorted(by_lock):
            path, notebook = by_lock[lock_path]
            lock = FileLock(str(lock_path))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                holder = _holder(lock_path)
                what = "this notebook" if path == notebook else f"its output {path}"
                if not wait:
                    raise NotebookBusy(
                        f"{notebook}: another codeflow run ({holder}) is using {what}; "
                        "nothing was written. Wait for it to finish, stop it, or add --wait."
                    ) from None
                print(
                    f"codeflow: {notebook}: waiting for the other codeflow run ({holder}) "
                    f"using {what}",
                    file=sys.stderr,
                )
                lock.acquire()
            held.append((lock, lock_path))
            _write_holder(lock_path, f"{os.getpid()}\n")
        yield
    finally:
        for lock, lock_path in reversed(held):
            with contextlib.suppress(OSError):
                _write_holder(lock_path, "")
            lock.release()


# -- signals --------------------------------------------------------------------------------
