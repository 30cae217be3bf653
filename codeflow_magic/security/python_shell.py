"""Python rules for processes: shell strings, argv lists, IPython magics, signals and forks.

The commands a call runs are handed to the Bash rules, so `os.system("rm -rf ~")` and
`!rm -rf ~` get the same verdict.
"""

from __future__ import annotations

import ast
import re

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths
from .bash_rules import inspects_only
from .fold import as_text
from .paths import COMPUTED
from .python_core import AnalyzerCore
from .python_tables import (
    EXEC_CALLS,
    PANDAS_AT_REACH,
    QUERY_COMMAND,
    QUERY_REACH,
    _file_key,
    _join_argv,
)


class ShellRules(AnalyzerCore):
    """Rules for calls that start processes or run shell text."""

    def _command_findings(
        self, node: ast.Call, display: str, command: str | None, decoded: bool, argv_known: bool
    ) -> None:
        if command is None or command.strip() in ("", COMPUTED):
            self.add("computed-command", node, f"{display} runs a computed command")
            return
        inner = self.bash_scan(command, self.line(node), self.depth + 1)
        self._pip_source(node, inner)
        shown = command if len(command) <= 80 else command[:77] + "..."
        shown = shown.replace(COMPUTED, "…")
        severity = "low"
        reason = ""
        first = command.split()[0] if command.split() else ""
        if COMPUTED in first:
            severity, reason = "high", "the program name is computed"
        if decoded:
            severity, reason = "high", "the command was hidden by encoding"
        if display.startswith("os.exec"):
            severity = "high"
            reason = "it replaces the kernel's own process (the kernel and its variables are gone)"
        top: Finding | None = None
        for f in inner:
            if top is None or severity_rank(f.severity) > severity_rank(top.severity):
                top = f
        if top is None and severity == "low" and inspects_only(command):
            return  # `!ls data/`, `subprocess.run(["git", "status"])`: only looks
        if top is not None and severity_rank(top.severity) >= severity_rank(severity):
            severity, reason = top.severity, top.message
        message = f"{display} runs {shown!r}" + (f": {reason}" if reason else "")
        self.add(
            "shell-command" if display != "shell command" else "ipython-shell",
            node,
            message,
            severity=severity,
        )
        for f in inner:
            if f is top or severity_rank(f.severity) < severity_rank("medium"):
                continue
            self.findings.append(
                Finding(
                    f.rule, f.severity, f.category, f.line, f"{display} runs {shown!r}: {f.message}"
                )
            )

    def _shell_call(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "cmd") or self._arg(node, 0, "command")
        text, decoded = self.folder.fold_text(arg) if arg is not None else (None, False)
        if text is None and isinstance(arg, ast.Name) and arg.id in self.b.sources:
            # `for c in ["rm -rf ~", ...]: os.system(c)`: judge each listed command.
            listed = self.folder.fold(self.b.sources[arg.id])
            if listed is not None and isinstance(listed.value, (list, tuple)):
                commands = [as_text(v) for v in listed.value]
                if commands and all(c is not None for c in commands):
                    text = " ; ".join(c for c in commands if c is not None)
                    decoded = listed.decoded
        display = q
        if q.startswith("get_ipython()."):
            display = "shell command"
            if text is not None:
                text = re.sub(r"\{[A-Za-z_][^{}\s]*\}", COMPUTED, text)
                if q.endswith("getoutput") and text.startswith("!"):
                    text = text[1:]
        if text is not None and not decoded:
            self._shell_lines.append((text, self.line(node)))
        self._command_findings(node, display, text, decoded, True)

    def _argv_call(self, node: ast.Call, q: str) -> None:
        shell = False
        for kw in node.keywords:
            if kw.arg == "shell":
                value = self.folder.fold(kw.value)
                shell = value is None or bool(value.value)
        if EXEC_CALLS.match(q):
            args = node.args[1:] if q.startswith("os.spawn") else node.args
            parts: list[str] = []
            decoded = False
            for a in args[1:] if len(args) > 1 else args:
                folded = self.folder.fold(a)
                if folded is not None and isinstance(folded.value, (list, tuple)):
                    parts.extend(str(v) for v in folded.value)
                    decoded = decoded or folded.decoded
                elif folded is not None and isinstance(folded.value, (str, bytes)):
                    parts.append(as_text(folded.value) or COMPUTED)
                else:
                    parts.append(COMPUTED)
            command = _join_argv(parts) if parts else None
            self._command_findings(node, q, command, decoded, True)
            return
        arg = self._arg(node, 0, "args")
        if arg is None:
            self._command_findings(node, q, None, False, False)
            return
        folded = self.folder.fold(arg)
        if folded is not None and isinstance(folded.value, (list, tuple)):
            items = [as_text(v) if not isinstance(v, int) else str(v) for v in folded.value]
            parts = [i if i is not None else COMPUTED for i in items]
            command = parts[0] if shell and parts else _join_argv(parts)
            if not folded.decoded:
                self._shell_lines.append((command, self.line(node)))
            self._command_findings(node, q, command, folded.decoded, True)
            return
        if isinstance(arg, (ast.List, ast.Tuple)):
            parts = []
            for elt in arg.elts:
                t, _ = self.folder.fold_text(elt)
                parts.append(t if t is not None else COMPUTED)
            command = parts[0] if shell and parts else _join_argv(parts)
            self._shell_lines.append((command, self.line(node)))
            self._command_findings(node, q, command, False, True)
            return
        text, decoded = self.folder.fold_text(arg)
        self._command_findings(node, q, text, decoded, True)

    def _line_magic(self, node: ast.Call, q: str) -> None:
        """`%name line` run through `get_ipython()`: judged like the magic typed in a cell."""
        name = self.folder.fold_str(self._arg(node, 0, "magic_name"))
        line_text, _ = self.folder.fold_text(self._arg(node, 1, "line"))
        if name is None:
            self.add("computed-magic", node, "runs a magic whose name is computed")
            return
        if name in ("system", "sx", "sc"):
            text = re.sub(r"\{[A-Za-z_][^{}\s]*\}", COMPUTED, line_text or "")
            if name == "sc":
                text = re.sub(r"^-\w+\s+", "", text)
                text = text.split("=", 1)[1] if "=" in text else text
            self._command_findings(node, "shell command", text, False, True)
        elif name in ("time", "timeit", "prun", "capture", "debug"):
            if line_text:
                code = (
                    re.sub(r"^(-\S+\s+(\S+\s+)?)*", "", line_text) if name != "time" else line_text
                )
                self._nested(code, "ipython", node, f"%{name}")
        elif name == "env":
            words = (line_text or "").split()
            if not words:
                self.add("env-dump", node, "%env prints the whole environment (API keys included)")
            elif "=" not in words[0] and " " not in words[0] and is_secret_name(words[0]):
                self.add("secret-variable", node, f"%env reads the secret variable {words[0]}")
        elif name in ("run",):
            script = next((w for w in (line_text or "").split() if not w.startswith("-")), "")
            host = self._downloads().get(_file_key(script)) if script else None
            if host is not None:
                self.add("download-exec", node, f"%run runs {script} downloaded from {host}")
            else:
                self.add("run-script", node, "%run runs another script")
        elif name in ("load", "loadpy"):
            if line_text and re.match(
                r"https?://", line_text.split()[-1] if line_text.split() else ""
            ):
                self.add("download", node, "%load downloads code from the network")
        elif name in ("pip", "conda", "mamba"):
            inner = self.bash_scan(f"pip {line_text or ''}", self.line(node), self.depth + 1)
            self.findings.extend(inner)
            self._pip_source(node, inner)

    def _pip_source(self, node: ast.Call, inner: list[Finding]) -> None:
        """pip run from the kernel (`!pip`, `%pip`, `subprocess ... -m pip`) installing from a
        URL or another index: its set-up code runs in this session, as with pip.main."""
        for f in inner:
            if f.rule in ("pip-url", "pip-index"):
                self.add(
                    "pip-main-url",
                    node,
                    f"pip, run from the notebook, {f.message}: its set-up code runs with your "
                    "rights in this session",
                )
                return

    def _cell_magic(self, node: ast.Call, q: str) -> None:
        """`%%name` run through `get_ipython()`: its body is scanned in its own language."""
        name = self.folder.fold_str(self._arg(node, 0, "magic_name"))
        line_text = self.folder.fold_str(self._arg(node, 1, "line")) or ""
        body = self.folder.fold_str(self._arg(node, 2, "cell"))
        if name is None or body is None:
            self.add("computed-magic", node, "runs a cell magic whose name or body is computed")
            return
        first_body_line = self.line(node) + 1
        words = line_text.split()
        interp = name
        if name == "script" and words:
            interp = words[0].rsplit("/", 1)[-1]
        if interp in ("bash", "sh", "zsh", "dash", "ksh", "system", "!"):
            inner = self.bash_scan(body, first_body_line, self.depth + 1)
            for f in inner:
                self.findings.append(
                    Finding(f.rule, f.severity, f.category, f.line, f"%%{name}: {f.message}")
                )
            if not inner and not inspects_only(body):
                self.add("shell-cell", node, f"%%{name} runs a shell script")
        elif re.match(r"^(python\d?(\.\d+)?|pypy\d?)$", interp):
            self._nested(body, "python", node, f"%%{name}", first_body_line)
        elif name in ("time", "timeit", "capture", "prun", "debug", "cython"):
            self._nested(body, "ipython", node, f"%%{name}", first_body_line)
        elif name in ("writefile", "file"):
            target = [w for w in words if not w.startswith("-")]
            if target:
                self.add_verdict("write-path", paths.write_verdict(target[-1]), node, "%%writefile")
        elif name in ("javascript", "js", "html"):
            if re.search(r"\bfetch\s*\(|XMLHttpRequest|navigator\.sendBeacon|WebSocket", body):
                self.add("browser-network", node, f"%%{name} sends requests from the browser")
        elif interp in ("perl", "ruby", "node", "php"):
            self.add("inline-script", node, f"%%{name} runs a {interp} script")

    def _query(self, node: ast.Call, q: str) -> None:
        expr = self.folder.fold_str(self._arg(node, 0, "expr"))
        if expr is None:
            return
        reach = QUERY_REACH.search(expr)
        if reach is None:
            return
        if not q.startswith("pandas.") and not (
            any(
                k.arg in ("engine", "parser", "local_dict", "global_dict", "resolvers")
                for k in node.keywords
            )
            or PANDAS_AT_REACH.search(expr)
        ):
            return  # `.query` of something else (an SQL connection): not pandas' evaluator
        shown = expr if len(expr) <= 70 else expr[:67] + "..."
        severity = "high"
        reason = f"reaches {reach.group(0).strip(' .(')}"
        for m in QUERY_COMMAND.finditer(expr):
            inner = self.bash_scan(m.group(3), self.line(node), self.depth + 1)
            top = max(inner, key=lambda f: severity_rank(f.severity), default=None)
            reason = f"runs the command {m.group(3)!r}"
            if top is not None and severity_rank(top.severity) > severity_rank(severity):
                severity = top.severity
                reason += f" ({top.message})"
        self.add(
            "query-code",
            node,
            f"{q} evaluates {shown!r} as Python, which {reason}",
            severity=severity,
        )

    def _pip_main(self, node: ast.Call, q: str) -> None:
        folded = self.folder.fold(self._arg(node, 0, "args")) if node.args else None
        argv = (
            [str(v) for v in folded.value]
            if folded is not None and isinstance(folded.value, (list, tuple))
            else []
        )
        url = next((a for a in argv if re.match(r"^(git\+|[a-z]+://)", a)), None)
        if url is not None:
            self.add(
                "pip-main-url",
                node,
                f"{q} installs a package from {url} while the code runs (its set-up code runs "
                "with your rights)",
            )
        elif argv[:1] == ["install"] or not argv:
            self.add("pip-main", node, f"{q} installs packages while the code runs")

    def _fork(self, node: ast.Call, q: str) -> None:
        if self._loops:
            self.add("fork-bomb", node, f"{q} inside a loop (fork bomb)")
        else:
            self.add("fork", node, f"{q} forks the interpreter")

    def _dup2(self, node: ast.Call, q: str) -> None:
        if self._socket_fd(node):
            self.add(
                "reverse-shell",
                node,
                "os.dup2 wires the process's input/output to a socket (reverse shell)",
            )

    def _kill(self, node: ast.Call, q: str) -> None:
        pid_node = self._arg(node, 0, "pid")
        folded = self.folder.fold(pid_node) if pid_node is not None else None
        pid_q = self.qual(pid_node.func) if isinstance(pid_node, ast.Call) else None
        if folded is not None and isinstance(folded.value, int) and folded.value in (-1, 0, 1):
            self.add("kill-all", node, f"{q} signals every process")
        elif pid_q == "os.getppid":
            self.add("kill-parent", node, f"{q} kills the parent process (the notebook server)")
        elif q == "os.killpg":
            self.add("kill-group", node, f"{q} kills a process group")
        else:
            self.add("kill", node, f"{q} kills a process")

    def _privilege(self, node: ast.Call, q: str) -> None:
        self.add("privilege", node, f"{q} changes process privileges")
