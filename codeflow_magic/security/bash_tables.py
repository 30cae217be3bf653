"""Bash rule tables and word helpers shared by the scanner, the command handlers and the chains.

Also the `Scanner` protocol the command handlers are written against, so the handler modules
need not import the scanner class (no import cycle).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from ..models import Finding
from .bash_lex import Command
from .paths import COMPUTED, Verdict

MAX_DEPTH = 6
BIG_BYTES = 4 * 1024**3
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "busybox", "mksh", "csh"})
PYTHONS = re.compile(r"^(python|python\d(\.\d+)?|pypy\d?|ipython\d?)$")
OTHER_INTERPRETERS = frozenset(
    {"perl", "ruby", "node", "nodejs", "php", "lua", "Rscript", "osascript"}
)
DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "lwp-download", "GET"})
RAW_NET = frozenset({"nc", "ncat", "netcat", "socat", "telnet", "cryptcat", "pwncat"})
REMOTE_COPY = frozenset({"scp", "sftp", "ftp", "lftp", "tftp", "smbclient", "rclone", "ssh"})
READ_ONLY_LISTING = frozenset({"ls", "stat", "test", "[", "file", "du", "echo", "printf"})
# Programs that only look: a notebook's `!ls data/`, `!nvidia-smi` or `head file | cut -f1` is
# everyday inspection, and a finding on it would only teach people to skip the findings.
# `None`: any arguments; otherwise the first argument must be one of the listed ones.
INSPECTION: dict[str, frozenset[str] | None] = {
    **dict.fromkeys(
        (
            "ls",
            "ll",
            "head",
            "tail",
            "cat",
            "wc",
            "cut",
            "sort",
            "uniq",
            "tr",
            "column",
            "file",
            "stat",
            "du",
            "df",
            "free",
            "nproc",
            "lscpu",
            "nvidia-smi",
            "uname",
            "pwd",
            "date",
            "echo",
            "printf",
            "which",
            "tree",
            "md5sum",
            "sha1sum",
            "sha256sum",
            "diff",
            "cmp",
            "jq",
            "grep",
            "egrep",
            "fgrep",
            "zcat",
            "true",
            "basename",
            "dirname",
            "realpath",
            "nvcc",
            "hostname",
            "whoami",
        ),
        None,
    ),
    "git": frozenset(
        {"status", "log", "diff", "show", "branch", "rev-parse", "describe", "ls-files", "tag"}
    ),
    "pip": frozenset({"list", "show", "freeze", "--version", "-V", "check"}),
    "pip3": frozenset({"list", "show", "freeze", "--version", "-V", "check"}),
    "conda": frozenset({"list", "info", "--version", "-V"}),
    "python": frozenset({"--version", "-V"}),
    "python3": frozenset({"--version", "-V"}),
}
RESERVED = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "!",
        "{",
        "}",
        "time",
        "function",
        "coproc",
        "case",
        "esac",
        "in",
        "select",
        "for",
    }
)
WRAPPERS_NO_ARG = frozenset(
    {
        "nohup",
        "command",
        "builtin",
        "exec",
        "setsid",
        "unbuffer",
        "chronic",
        "caffeinate",
        "proxychains",
        "proxychains4",
        "torsocks",
        "busybox",
        "stdbuf",
        "time",
        "nice",
        "ionice",
        "chrt",
        "taskset",
        "doas",
    }
)
MINERS = re.compile(
    r"^(xmrig|xmr-stak\S*|minerd|cpuminer\S*|cgminer|bfgminer|ethminer|t-rex|nbminer|"
    r"lolminer|phoenixminer|nanominer|srbminer\S*|gminer|teamredminer|ccminer|kdevtmpfsi)$",
    re.IGNORECASE,
)
MINER_ARGS = re.compile(
    r"stratum\+(tcp|ssl|tls)://|--donate-level|--coin[= ]|(^|\s)(-a|--algo)[= ]?(rx/|cn/|"
    r"randomx|cryptonight|ethash|kawpow|autolykos)|\bmonero\b|\bxmr\b|\bnicehash\b|"
    r"(^|\s)4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}(\s|$)",
    re.IGNORECASE,
)
REVERSE_SHELL_CODE = re.compile(
    r"(IO::Socket|use Socket|socket\(|fsockopen|TCPSocket|net\.Socket|net\.connect|"
    r"socket\.socket|/dev/tcp/)",
    re.IGNORECASE,
)
RUNS_SHELL_CODE = re.compile(
    r"(exec|system|spawn|popen|proc_open|passthru|shell_exec|`|/bin/(ba)?sh|\bsh -i|"
    r"fdopen|open\(STD(IN|OUT))",
    re.IGNORECASE,
)
EXEC_MODE = re.compile(r"^([ugoa]*[+=][rwxXst]*x[rwxXst]*|[0-7]*[1357][0-7]?[0-7]?|[0-7]*[1357])$")
DOWNLOAD_OUT_FLAGS = ("-o", "--output", "-O", "--output-document")
DECODERS = re.compile(
    r"\b(base64\s+(-d|--decode|-D)|base32\s+-d|xxd\s+-r|openssl\s+(enc\s+)?(-d|base64)|"
    r"gunzip|zcat|uudecode|rev\b|tr\s+['\"]?a-zA-Z|tr\s+['\"]?A-Za-z)"
)


def _shell_path(word: str) -> str:
    """A shell word as a path for the classifier: `$HOME` is `~`, other variables unknown."""
    w = word
    w = re.sub(r"\$\{HOME\}|\$HOME\b", "~", w)
    w = re.sub(r"\$\{PWD\}|\$PWD\b", ".", w)
    w = re.sub(r"\$\{TMPDIR[^}]*\}|\$TMPDIR\b", "/tmp", w)
    w = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9@*#?$!-]", COMPUTED, w)
    return w


def _size_bytes(text: str) -> int | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?)(i?B?)?", text.strip(), re.IGNORECASE)
    if not m:
        return None
    scale = {
        "": 1,
        "K": 1024,
        "M": 1024**2,
        "G": 1024**3,
        "T": 1024**4,
        "P": 1024**5,
        "E": 1024**6,
    }[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def _host(words: list[str]) -> str:
    for w in words:
        m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#\s]+)", w)
        if m:
            return m.group(1)
        m = re.match(r"^(?:[\w.-]+@)?([\w-]+(?:\.[\w-]+)+):", w)
        if m:
            return m.group(1)
    for w in words:
        if not w.startswith("-") and re.fullmatch(r"[\w-]+(\.[\w-]+)+|\d+\.\d+\.\d+\.\d+", w):
            return w
    return "a network host"


def _addresses(text: str) -> list[str]:
    """Hosts and addresses written in a piece of code, for messages."""
    found = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|[a-z][\w.-]*\.[a-z]{2,}:\d+", text)
    return found or ["a remote host"]


def _flags_and_targets(args: list[str]) -> tuple[list[str], list[str]]:
    flags: list[str] = []
    targets: list[str] = []
    end_of_flags = False
    for a in args:
        if not end_of_flags and a == "--":
            end_of_flags = True
        elif not end_of_flags and a.startswith("-") and a != "-":
            flags.append(a)
        else:
            targets.append(a)
    return flags, targets


_CHAIN_WRAPPERS = WRAPPERS_NO_ARG | {"sudo", "timeout", "env"}


def _plain_words(words: list[str]) -> list[str]:
    """Words without leading assignments and wrappers (`nohup`, `sudo`, `env X=1`)."""
    out = list(words)
    while out and out[0] in RESERVED:
        out = out[1:]
    while out:
        base = out[0].rsplit("/", 1)[-1]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", out[0]):
            out = out[1:]
        elif base in _CHAIN_WRAPPERS:
            out = out[1:]
            while out and (out[0].startswith("-") or (base == "env" and "=" in out[0])):
                out = out[1:]
            if base == "timeout" and out:
                out = out[1:]
        else:
            break
    return out


class Scanner(Protocol):
    """What a command handler may use of the scanner that calls it."""

    findings: list[Finding]

    def add(
        self,
        rule: str,
        line: int,
        message: str,
        *,
        severity: str | None = None,
        category: str | None = None,
    ) -> None: ...

    def add_verdict(self, rule: str, verdict: Verdict, line: int) -> None: ...

    def nested(self, text: str, line: int) -> list[Finding]: ...

    def nested_python(self, code: str, line: int) -> list[Finding]: ...

    def _command(self, cmd: Command, upstream: list[Command]) -> None: ...

    def _pip(self, args: list[str], line: int) -> None: ...


Handler = Callable[[Scanner, str, list[str], Command, list[Command], int, bool], None]
"""A command handler: (scanner, program, arguments, command, upstream, line, from stdin)."""
