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

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .bash_chains import chain_findings, script_chains
from .bash_commands import (
    AUTH_HEADER,
    HANDLERS,
    _named_https,
    awk_network,
    dns_exfiltration,
    docker_socket,
    impaired_defence,
)
from .bash_lex import Command, Pipeline, lex
from .bash_tables import (
    DECODERS,
    DOWNLOADERS,
    INSPECTION,
    MAX_DEPTH,
    MINER_ARGS,
    MINERS,
    OTHER_INTERPRETERS,
    PYTHONS,
    RAW_NET,
    READ_ONLY_LISTING,
    RESERVED,
    REVERSE_SHELL_CODE,
    RUNS_SHELL_CODE,
    SHELLS,
    WRAPPERS_NO_ARG,
    _addresses,
    _host,
    _plain_words,
    _shell_path,
)
from .paths import COMPUTED, Verdict

__all__ = ["BashScanner", "PythonScan", "exfiltration", "scan_bash", "script_chains"]

PythonScan = Callable[[str, int, int], list[Finding]]
"""Scans Python source found inside a script: (code, first line, depth) -> findings."""


class BashScanner:
    """Scans one script; nested scripts get a new scanner one level deeper."""

    def __init__(self, python_scan: PythonScan | None = None, depth: int = 0) -> None:
        self.python_scan = python_scan
        self.depth = depth
        self.findings: list[Finding] = []

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
        lines = text.split("\n")
        for m in re.finditer(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
            if is_secret_name(m.group(1)):
                index = text.count("\n", 0, m.start())
                line = first_line + index
                host = _auth_request(lines[index], m.group(1))
                if host is not None:
                    self.add("secret-auth", line, f"sends ${m.group(1)} to {host} to authenticate")
                    continue
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
            strip = WRAPPERS.get(base)
            if strip is None:
                break
            stripped = strip(self, base, words, line)
            if stripped is None:
                return
            words, reads_stdin = stripped
            from_stdin = from_stdin or reads_stdin
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
        subs_text = " ".join(t for t, _ in cmd.subs)
        defence = impaired_defence(prog, args, subs_text)
        if defence is not None:
            self.add("impair-defenses", line, f"{defence}: turns off what protects the machine")
        awk = awk_network(prog, args)
        if awk is not None:
            self.add("reverse-shell", line, awk)
        docker = docker_socket(prog, args)
        if docker is not None:
            self.add("docker-socket", line, docker)
        dns = dns_exfiltration(prog, args)
        if dns is not None:
            self.add("exfiltration", line, dns)
        handler = HANDLERS.get(prog)
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

    # Wrappers: each takes the command's words (wrapper first) and returns the words of the
    # command it runs and whether that command reads its arguments from input, or None when
    # the wrapper was judged whole. Dispatched by name through `WRAPPERS`.
    def _as_user(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`sudo`, `su`, `doas`: the command runs with someone else's rights."""
        self.add("privilege", line, f"runs a command as another user ({base})")
        if base == "su" and "-c" in words:
            idx = words.index("-c")
            if idx + 1 < len(words):
                self.findings.extend(self.nested(words[idx + 1], line))
            return None
        words = words[1:]
        while words and words[0].startswith("-"):
            opt = words[0]
            words = words[1:]
            if opt in ("-u", "-g", "-U", "-C", "-D", "-h", "-p", "-r", "-t") and words:
                words = words[1:]
        return words, False

    def _plain_wrapper(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`nohup`, `nice`, `exec`...: they change how the command runs, not what it does."""
        words = words[1:]
        while words and words[0].startswith("-"):
            opt = words[0]
            words = words[1:]
            if opt in ("-n", "-c", "-p", "-o", "-e", "-i", "-t") and words:
                words = words[1:]
        return words, False

    def _timeout(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`timeout [opts] DURATION cmd`: the duration is not the command."""
        words = words[1:]
        while words and words[0].startswith("-"):
            opt = words[0]
            words = words[1:]
            if opt in ("-s", "-k", "--signal", "--kill-after") and words:
                words = words[1:]
        return words[1:], False

    def _watch(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`watch cmd`: the command is a script of its own, run again and again."""
        rest = [x for x in words[1:] if not x.startswith("-")]
        if rest:
            self.findings.extend(self.nested(" ".join(rest), line))
        return None

    def _env(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`env X=1 cmd` runs cmd; a bare `env` prints every variable (keys included)."""
        rest = words[1:]
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            opt = rest[0]
            rest = rest[1:]
            name = opt.split("=", 1)[0]
            if name in ("LD_PRELOAD", "LD_AUDIT"):
                self.add("preload", line, f"sets {name} (runs code inside other programs)")
            if opt in ("-u", "-C", "-S") and rest:
                rest = rest[1:]
        if not rest:
            self.add("env-dump", line, "dumps the whole environment (API keys included)")
            return None
        return rest, False

    def _xargs(self, base: str, words: list[str], line: int) -> WrapperResult:
        """`xargs cmd`: cmd's arguments come from input, so they cannot be judged here."""
        words = words[1:]
        while words and words[0].startswith("-"):
            opt = words[0]
            words = words[1:]
            if opt in ("-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a") and words:
                words = words[1:]
        if not words:
            words = ["echo"]
        return words, True

    def _redirect(self, op: str, target: str, line: int) -> None:
        path = _shell_path(target)
        if path.startswith("/proc/sys/kernel/") and op not in ("<", "<>", "<<<"):
            self.add(
                "impair-defenses",
                line,
                f"writes the kernel setting {path}: turns off what protects the machine",
            )
            return
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


WrapperResult = tuple[list[str], bool] | None
"""The wrapped command's words and whether it reads arguments from input; None: judged whole."""
Wrapper = Callable[[BashScanner, str, list[str], int], WrapperResult]

WRAPPERS: dict[str, Wrapper] = {}
# First group wins, as in the elif chain this replaces (`doas` is a user switch).
for _names, _wrapper in (
    (("sudo", "su", "doas", "pkexec", "runuser"), BashScanner._as_user),
    (WRAPPERS_NO_ARG, BashScanner._plain_wrapper),
    (("timeout",), BashScanner._timeout),
    (("watch",), BashScanner._watch),
    (("env",), BashScanner._env),
    (("xargs",), BashScanner._xargs),
):
    for _name in _names:
        WRAPPERS.setdefault(_name, _wrapper)


def _auth_request(text: str, name: str) -> str | None:
    """The https host a one-line curl/wget sends variable `name` to as an authentication
    header, when that is the only place the variable is used."""
    lexed = lex(text, 1)
    if len(lexed.pipelines) != 1 or len(lexed.pipelines[0].commands) != 1:
        return None
    words = lexed.pipelines[0].commands[0].words
    if not words or words[0].rsplit("/", 1)[-1] not in ("curl", "wget"):
        return None
    if len(re.findall(rf"\$\{{?{name}\b", text)) != 1:
        return None
    headers = [m.group(1) for w in words if (m := AUTH_HEADER.match(w)) is not None]
    if headers != [name]:
        return None
    host = _host(words[1:])
    return host if _named_https(words[1:], host) else None


def inspects_only(text: str) -> bool:
    """True when every command of the script only looks at things (`INSPECTION`): nothing
    is written but to /dev/null, nothing runs in the background, nothing is nested, no
    variable is set. Such a script is not worth a finding of its own."""
    lexed = lex(text)
    if lexed.unbalanced or not lexed.pipelines:
        return False
    for pipeline in lexed.pipelines:
        for cmd in pipeline.commands:
            if cmd.background or cmd.subs or cmd.heredoc is not None or not cmd.words:
                return False
            if any(op != "<" and target != "/dev/null" for op, target in cmd.redirects):
                return False
            if any(COMPUTED in w for w in cmd.words):
                return False
            program = cmd.words[0]
            if program not in INSPECTION:
                return False
            allowed = INSPECTION[program]
            if allowed is not None and (len(cmd.words) < 2 or cmd.words[1] not in allowed):
                return False
    return True


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
