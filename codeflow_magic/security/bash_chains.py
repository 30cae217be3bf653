"""Chains across shell commands: download or decode to a file, make it executable, run it.

Each step alone looks ordinary; the chain is the harm. Used for one script and for IPython
`!` lines spread over a cell.
"""

from __future__ import annotations

import re

from ..models import Finding
from . import paths, rules
from .bash_lex import Pipeline, lex
from .bash_tables import (
    DECODERS,
    DOWNLOAD_OUT_FLAGS,
    DOWNLOADERS,
    EXEC_MODE,
    OTHER_INTERPRETERS,
    PYTHONS,
    SHELLS,
    _flags_and_targets,
    _plain_words,
    _shell_path,
)


def _file_key(path: str, cwd: str) -> str:
    p = _shell_path(path.strip("'\""))
    if not p.startswith(("/", "~")) and cwd:
        p = f"{cwd.rstrip('/')}/{p}"
    return paths.normalize(p)


def download_files(prog: str, args: list[str]) -> tuple[list[str], str]:
    """Files a curl/wget command writes, and the URL it fetches."""
    url = next((a for a in args if re.match(r"^[a-z]+://", a)), "")
    files: list[str] = []
    remote = False
    for idx, a in enumerate(args):
        short = re.fullmatch(r"-[a-zA-Z]*([oO])", a)
        if prog == "curl" and (a == "--remote-name" or re.fullmatch(r"-[a-zA-Z]*O[a-zA-Z]*", a)):
            remote = True
        if (a in DOWNLOAD_OUT_FLAGS or short) and idx + 1 < len(args):
            if prog == "curl" and (a == "-O" or (short and short.group(1) == "O")):
                continue
            if args[idx + 1] != "-":
                files.append(args[idx + 1])
        elif a.startswith(("--output=", "--output-document=")):
            files.append(a.split("=", 1)[1])
    remote_name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if url else ""
    if prog == "curl" and remote and remote_name:
        files.append(remote_name)
    prefix = ""
    for idx, a in enumerate(args):
        if a in ("-P", "--directory-prefix") and idx + 1 < len(args):
            prefix = args[idx + 1].rstrip("/") + "/"
        elif a.startswith("--directory-prefix="):
            prefix = a.split("=", 1)[1].rstrip("/") + "/"
    if prog == "wget" and not files and remote_name and "-O-" not in args:
        files.append(prefix + remote_name)
    return files, url


def chain_findings(pipelines: list[Pipeline], *, across_lines: bool = False) -> list[Finding]:
    """One finding per file that is downloaded or decoded and then run, at any distance.

    `across_lines`: report only chains whose steps are on different lines (the caller already
    judged each line on its own).
    """
    made: dict[str, tuple[str, int, str]] = {}
    executable: dict[str, int] = {}
    cwd = ""
    found: list[Finding] = []
    reported: set[str] = set()
    for pipeline in pipelines:
        decoding = False
        fetched_url = ""
        for cmd in pipeline.commands:
            words = _plain_words(cmd.words)
            outs = [t for op, t in cmd.redirects if op in (">", ">>", ">|", "&>", "&>>")]
            if not words:
                continue
            prog = words[0].rsplit("/", 1)[-1]
            args = words[1:]
            if DECODERS.search(" ".join(words)):
                decoding = True
            if prog == "cd" and args:
                cwd = args[0]
                continue
            if prog in DOWNLOADERS:
                files, url = download_files(prog, args)
                fetched_url = url or "a URL"
                for f in files + outs:
                    made[_file_key(f, cwd)] = ("downloaded", cmd.line, fetched_url)
                continue
            if decoding and outs:
                for f in outs:
                    made[_file_key(f, cwd)] = ("decoded", cmd.line, "")
                continue
            if prog == "tee" and (fetched_url or decoding):
                _, targets = _flags_and_targets(args)
                for f in targets:
                    made[_file_key(f, cwd)] = (
                        ("downloaded", cmd.line, fetched_url)
                        if fetched_url
                        else ("decoded", cmd.line, "")
                    )
                continue
            if prog in ("cp", "mv", "install"):
                _, targets = _flags_and_targets(args)
                if len(targets) >= 2:
                    src = [made.get(_file_key(t, cwd)) for t in targets[:-1]]
                    origin = next((x for x in src if x is not None), None)
                    if origin is not None:
                        made[_file_key(targets[-1], cwd)] = origin
                continue
            if prog == "chmod":
                _, targets = _flags_and_targets(args)
                if targets and EXEC_MODE.match(targets[0]):
                    for t in targets[1:]:
                        if _file_key(t, cwd) in made:
                            executable[_file_key(t, cwd)] = cmd.line
                continue
            run: str | None = None
            if _file_key(words[0], cwd) in made and ("/" in words[0] or words[0].startswith(".")):
                run = words[0]
            elif (
                prog in SHELLS
                or PYTHONS.match(prog)
                or prog in OTHER_INTERPRETERS
                or prog
                in (
                    "source",
                    ".",
                )
            ):
                script = next((a for a in args if not a.startswith("-")), None)
                if script is not None and _file_key(script, cwd) in made:
                    run = script
            if run is None:
                continue
            key = _file_key(run, cwd)
            how, first, url = made[key]
            lines = {first, cmd.line} | ({executable[key]} if key in executable else set())
            if key in reported or (across_lines and len(lines) < 2):
                continue
            reported.add(key)
            steps = (
                f"downloads {url} to {run} (line {first})"
                if how == "downloaded"
                else f"decodes a hidden payload into {run} (line {first})"
            )
            if key in executable:
                steps += f", makes it executable (line {executable[key]})"
            steps += f" and runs it (line {cmd.line})"
            found.append(
                rules.finding(
                    "download-run" if how == "downloaded" else "decode-run",
                    first,
                    steps
                    + (
                        ": runs a program fetched from the network"
                        if how == "downloaded"
                        else ": runs code that was hidden by encoding"
                    ),
                )
            )
    return found


def script_chains(scripts: list[tuple[str, int]]) -> list[Finding]:
    """Chains across separate shell commands (IPython `!` lines): (command, line) pairs."""
    pipelines: list[Pipeline] = []
    for text, line in scripts:
        pipelines.extend(lex(text, line).pipelines)
    return chain_findings(pipelines, across_lines=True)
