"""Bash command handlers for files and disks: rm, find, dd, cp, chmod, tar and friends.

Each handler judges the paths it is given through `paths`, so the rating follows where a path
points, whichever command touches it.
"""

from __future__ import annotations

import re

from ..models import severity_rank
from . import paths
from .bash_lex import Command
from .bash_tables import (
    Scanner,
    _flags_and_targets,
    _host,
    _shell_path,
)
from .paths import COMPUTED, Verdict


def _rm(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    flags, targets = _flags_and_targets(args)
    recursive = prog in ("rmdir",) or any(
        f in ("--recursive",) or (not f.startswith("--") and re.search("[rR]", f)) for f in flags
    )
    if "--no-preserve-root" in flags:
        s.add("rm-root", line, "deletes with --no-preserve-root (the root filesystem)")
    if not targets and from_stdin:
        s.add("rm-stdin", line, "deletes paths read from input")
    worst: Verdict | None = None
    for t in targets:
        verdict = paths.delete_verdict(_shell_path(t), recursive)
        if worst is None or severity_rank(verdict.severity) > severity_rank(worst.severity):
            worst = verdict
    if worst is not None:
        s.add_verdict("delete-path", worst, line)


def _shred(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    _, targets = _flags_and_targets(args)
    for t in targets:
        s.add_verdict("delete-path", paths.delete_verdict(_shell_path(t), False), line)


def _find(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    starts: list[str] = []
    for a in args:
        if a.startswith("-") or a in ("(", "!", "\\("):
            break
        starts.append(a)
    starts = starts or ["."]
    deletes = "-delete" in args
    for key in ("-exec", "-execdir", "-ok", "-okdir"):
        if key in args:
            idx = args.index(key)
            sub: list[str] = []
            for a in args[idx + 1 :]:
                if a in (";", "\\;", "+", "{}+"):
                    break
                sub.append(a)
            if sub and sub[0].rsplit("/", 1)[-1] in ("rm", "shred", "unlink"):
                deletes = True
            elif sub:
                s._command(Command([x if x != "{}" else COMPUTED for x in sub], line), [])
    if deletes:
        pattern = ""
        for key in ("-name", "-iname"):
            if key in args and args.index(key) + 1 < len(args):
                pattern = args[args.index(key) + 1]
        for start in starts:
            where = _shell_path(start)
            if pattern and "/" not in pattern and pattern not in ("*", ".*"):
                # Only matching names are deleted: judge one such file in the folder.
                verdict = paths.delete_verdict(f"{where.rstrip('/')}/{pattern}", False)
                if verdict.severity == paths.SEVERITY_NONE and paths.locate(
                    paths.normalize(where)
                ) in (paths.WORK, paths.TMP):
                    verdict = Verdict(
                        "low",
                        "filesystem",
                        f"deletes files named {pattern} under {start}",
                    )
                s.add_verdict("delete-path", verdict, line)
            else:
                s.add_verdict("delete-path", paths.delete_verdict(where, True), line)


def _dd(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    target = opts.get("of")
    source = opts.get("if", "")
    if target:
        path = _shell_path(target)
        s.add_verdict("write-path", paths.write_verdict(path), line)
        if source in ("/dev/zero", "/dev/urandom", "/dev/random") and "count" not in opts:
            if paths.locate(paths.normalize(path)) not in (paths.DISK, paths.DEVICE):
                s.add(
                    "fill-disk",
                    line,
                    f"writes {source} to a file without a size limit (fills the disk)",
                )
    if source:
        s.add_verdict("read-secret", paths.read_verdict(_shell_path(source)), line)


def _disk_tool(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    s.add("format-disk", line, f"partitions or wipes a disk ({prog})")


def _copy(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    _, targets = _flags_and_targets(args)
    if prog == "rsync" and any(":" in t and not t.startswith("/") for t in targets):
        s.add("remote-copy", line, f"copies files to or from {_host(targets)}")
    if len(targets) < 2 and prog != "touch" and prog != "tee":
        return
    dests = targets if prog in ("tee", "touch") else targets[-1:]
    sources = [] if prog in ("tee", "touch") else targets[:-1]
    for d in dests:
        s.add_verdict("write-path", paths.write_verdict(_shell_path(d)), line)
    if prog == "mv":
        for src in sources:
            s.add_verdict("delete-path", paths.delete_verdict(_shell_path(src), True), line)


def _sed(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    flags, targets = _flags_and_targets(args)
    if any(f.startswith("-i") or f == "--in-place" for f in flags):
        for t in targets[1:]:
            s.add_verdict("write-path", paths.write_verdict(_shell_path(t)), line)


def _perms(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    _, targets = _flags_and_targets(args)
    if not targets:
        return
    mode = targets[0]
    if prog == "chmod" and re.search(r"(^|[ugoa,])\+[rwx]*s|^[0-7]?[4-7][0-7]{3}$", mode):
        s.add("setuid", line, "sets the setuid/setgid bit")
    for t in targets[1:]:
        where = paths.locate(paths.normalize(_shell_path(t)))
        if where in (paths.ROOT, paths.HOME, paths.SYSTEM):
            s.add("change-perms", line, f"changes ownership or permissions of {t}")


def _extract(
    s: Scanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    """`tar -x -C /`, `unzip -d /`: an archive unpacked over system files or the home dir."""
    if prog == "tar" and not any(
        a == "--extract" or a == "--get" or re.fullmatch(r"-?[a-zA-Z]*x[a-zA-Z]*", a)
        for a in args[:1] + [a for a in args if a.startswith("-")]
    ):
        return
    if prog == "tar" and any(
        a == "--absolute-names" or re.fullmatch(r"-[a-zA-Z]*P[a-zA-Z]*", a)
        for a in args[:1] + [a for a in args if a.startswith("-")]
    ):
        s.add(
            "archive-paths",
            line,
            "unpacks an archive with absolute member names (tar -P): its members can land "
            "anywhere, system files included",
        )
        return
    target = None
    for idx, a in enumerate(args):
        if a in ("-C", "--directory", "-d") and idx + 1 < len(args):
            target = args[idx + 1]
        elif a.startswith("--directory="):
            target = a.split("=", 1)[1]
    if target is None:
        return
    where = paths.locate(paths.normalize(_shell_path(target)))
    if where in (paths.ROOT, paths.SYSTEM):
        s.add("extract-system", line, f"unpacks an archive over {target} (replaces system files)")
    elif where in (paths.HOME, paths.HOME_SUB):
        s.add(
            "extract-home",
            line,
            f"unpacks an archive into {target} (its members can replace start-up files and "
            "keys in the home directory)",
            severity="high" if where == paths.HOME else "medium",
        )
