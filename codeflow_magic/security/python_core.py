"""Core of the Python analyzer: name resolution, value origins and the helpers all rules use.

The rule layers (`python_shell`, `python_files`, `python_calls`) and the visitor in
`python_rules` build on `AnalyzerCore` in one straight line, so resolution is written once and
each rule module only says what a callee does.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from ..models import Finding, severity_rank
from . import paths, rules
from .fold import _DECODERS, Folder
from .paths import Verdict
from .python_bindings import _BindingCollector
from .python_tables import (
    BUILTIN_NAMES,
    DELETE_CALLS,
    DYNAMIC_CALLS,
    EXEC_CALLS,
    INDIRECT_LOOKUPS,
    MOVE_CALLS,
    NETWORK_ANY,
    NETWORK_FETCH,
    NETWORK_SEND,
    OPEN_CALLS,
    OUTPUT_CALLS,
    REACHABLE_MODULES,
    SHELL_CALLS,
    SUBPROCESS_CALLS,
    _canon,
    _star_members,
)

BashScan = Callable[[str, int, int], list[Finding]]
CodeScan = Callable[[str, str, int, int], list[Finding]]
"""Recursive scan of nested code: (code, language, first line, depth) -> findings."""


class AnalyzerCore:
    """State of one analysis (bindings, memo tables, findings) and the lookups every rule uses."""

    def __init__(
        self,
        tree: ast.Module,
        source: str,
        first_line: int,
        depth: int,
        bash_scan: BashScan,
        code_scan: CodeScan,
    ) -> None:
        self.tree = tree
        self.source = source
        self.offset = first_line - 1
        self.depth = depth
        self.bash_scan = bash_scan
        self.code_scan = code_scan
        collector = _BindingCollector()
        collector.visit(tree)
        self.b = collector.b
        self.findings: list[Finding] = []
        self._qual_memo: dict[int, str | None] = {}
        self._binding_memo: dict[str, ast.expr | None] = {}
        self._alias_memo: dict[str, str | None] = {}
        self._alias_active: set[str] = set()
        self.folder = Folder(self.qual, self.binding)
        self._parents: dict[int, ast.AST] = {}
        self._loops: list[ast.AST] = []
        self._docstrings: set[int] = set()
        self._handled_consts: set[int] = set()
        self._shell_lines: list[tuple[str, int]] = []
        self._name_loads: dict[str, list[ast.Name]] | None = None

    def line(self, node: ast.AST | None) -> int:
        lineno = getattr(node, "lineno", 1) if node is not None else 1
        return int(lineno) + self.offset

    def add(
        self,
        rule: str,
        node: ast.AST | None,
        message: str,
        *,
        severity: str | None = None,
        category: str | None = None,
    ) -> None:
        """A finding of catalogued `rule` (rules.py); graded rules pass their rating."""
        if severity is not None and severity_rank(severity) < 0:
            return
        self.findings.append(
            rules.finding(rule, self.line(node), message, severity=severity, category=category)
        )

    def add_verdict(self, rule: str, verdict: Verdict, node: ast.AST, prefix: str = "") -> None:
        if verdict.severity == paths.SEVERITY_NONE:
            return
        message = f"{prefix}: {verdict.reason}" if prefix else verdict.reason
        self.add(rule, node, message, severity=verdict.severity, category=verdict.category)

    def binding(self, name: str) -> ast.expr | None:
        """The one expression `name` is bound to (all its assignments alike), else None."""
        if name in self._binding_memo:
            return self._binding_memo[name]
        values = self.b.assigns.get(name)
        result: ast.expr | None = None
        if values and name not in self.b.imports and name not in self.b.opaque:
            if len(values) == 1:
                result = values[0]
            else:
                first = ast.dump(values[0])
                if all(ast.dump(v) == first for v in values[1:]):
                    result = values[0]
        self._binding_memo[name] = result
        return result

    def _alias(self, name: str) -> str | None:
        if name in self.b.opaque:
            return None
        imports = self.b.imports.get(name)
        assigns = self.b.assigns.get(name)
        if imports and not assigns:
            return imports[0] if len(set(imports)) == 1 else None
        if assigns and not imports:
            if name in self._alias_active:
                return None
            if name in self._alias_memo:
                return self._alias_memo[name]
            self._alias_active.add(name)
            try:
                resolved = {self.qual(v) for v in assigns}
            finally:
                self._alias_active.discard(name)
            result = next(iter(resolved)) if len(resolved) == 1 else None
            if not self._alias_active:
                self._alias_memo[name] = result
            return result
        return None

    def qual(self, node: ast.AST) -> str | None:
        """The dotted name `node` refers to, or None for values the scanner cannot name."""
        key = id(node)
        if key in self._qual_memo:
            return self._qual_memo[key]
        self._qual_memo[key] = None
        q = self._qual(node)
        if q is not None:
            q = _canon(q)
            chain = self._chain(q)
            if chain is not None:
                q = chain[1]
        self._qual_memo[key] = q
        return q

    def _chain(self, q: str) -> tuple[str, str] | None:
        """`numpy.os.system` reaches `os` through numpy: (via, reached name)."""
        parts = q.split(".")
        if len(parts) < 2 or parts[0] in REACHABLE_MODULES or parts[0] not in self.b.import_tops:
            return None
        for i in range(1, len(parts)):
            if parts[i] in REACHABLE_MODULES:
                if (
                    parts[i] == "sys"
                    and i + 1 < len(parts)
                    and parts[i + 1] not in ("modules", "_getframe", "stdin")
                ):
                    continue
                return ".".join(parts[:i]), ".".join(parts[i:])
        return None

    def _qual(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            name = node.id
            if self.b.bound(name):
                return self._alias(name)
            if name == "__builtins__":
                return "builtins"
            for module in self.b.star_modules:
                if name in _star_members().get(module, ()):
                    return f"{module}.{name}"
            return name
        if isinstance(node, ast.Attribute):
            base = self.qual(node.value)
            if node.attr == "__builtins__":
                return "builtins"
            if base is None:
                return None
            if node.attr == "__dict__":
                return base
            return f"{base}.{node.attr}"
        if isinstance(node, ast.Call):
            fq = self.qual(node.func)
            if fq is None:
                return None
            if fq in ("__import__", "importlib.import_module"):
                modname = self.folder.fold_str(node.args[0]) if node.args else None
                if modname is None:
                    return None
                if (
                    fq == "__import__"
                    and len(node.args) < 4
                    and not any(k.arg == "fromlist" for k in node.keywords)
                ):
                    return modname.split(".")[0]
                return modname
            if fq == "getattr" and len(node.args) >= 2:
                base = self.qual(node.args[0])
                attr = self.folder.fold_str(node.args[1])
                if base is None or attr is None:
                    return None
                return base if attr == "__dict__" else f"{base}.{attr}"
            if fq == "vars" and node.args:
                return self.qual(node.args[0])
            if fq in ("globals", "locals"):
                return "<globals>"
            if fq == "sys.modules.get" and node.args:
                return self.folder.fold_str(node.args[0])
            if fq in (
                "pathlib.Path",
                "ctypes.CDLL",
                "ctypes.PyDLL",
                "ctypes.cdll.LoadLibrary",
                "ctypes.CDLL()",
            ):
                return _canon(fq) + "()" if not fq.endswith("()") else fq
            return fq + "()"
        if isinstance(node, ast.Subscript):
            key = self.folder.fold_str(node.slice)
            if key is None:
                return None
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "__globals__":
                # `f.__globals__[k]`: the classic escape reaches os's globals through a
                # function defined in os (`os._wrap_close.__init__`).
                if key == "__builtins__":
                    return "builtins"
                if key in ("os", "sys", "subprocess"):
                    return key
                if key in _star_members().get("os", ()):
                    return f"os.{key}"
                return None
            base = self.qual(value)
            if base is None:
                return None
            if base == "sys.modules":
                return key
            if base == "<globals>":
                if key == "__builtins__":
                    return "builtins"
                if self.b.bound(key):
                    return self._alias(key)
                return key if key in BUILTIN_NAMES else None
            if base == "builtins":
                return key
            is_dict = (isinstance(value, ast.Attribute) and value.attr == "__dict__") or (
                isinstance(value, ast.Call) and self.qual(value.func) == "vars"
            )
            if is_dict:
                return f"{base}.{key}"
            return None
        return None

    def origins(self, node: ast.AST, depth: int = 0) -> set[str]:
        """Where a value comes from: `network`, `decoded`, `input`, `file`."""
        found: set[str] = set()
        if depth > 6:
            return found
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                q = self.qual(sub.func)
                if q is None:
                    attr = sub.func.attr if isinstance(sub.func, ast.Attribute) else ""
                    if attr in ("recv", "recvfrom", "recv_into", "makefile"):
                        found.add("network")
                    continue
                if q in NETWORK_ANY or q.startswith(
                    ("requests.", "httpx.", "urllib.request.", "socket.", "aiohttp.", "urllib3.")
                ):
                    found.add("network")
                if q in _DECODERS or q.startswith("codecs.decode") or q == "marshal.loads":
                    found.add("decoded")
                if q in ("input", "sys.stdin.read", "sys.stdin.readline", "getpass.getpass"):
                    found.add("input")
                if q in OPEN_CALLS:
                    found.add("file")
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                bound = self.binding(sub.id) or self.b.sources.get(sub.id)
                if bound is not None and bound is not node:
                    found |= self.origins(bound, depth + 1)
        return found

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self._parents.get(id(node))

    def _arg(self, node: ast.Call, index: int, keyword: str) -> ast.expr | None:
        if len(node.args) > index and not isinstance(node.args[index], ast.Starred):
            return node.args[index]
        for kw in node.keywords:
            if kw.arg == keyword:
                return kw.value
        return None

    def _path_text(self, node: ast.AST | None) -> str | None:
        if node is None:
            return None
        text, _ = self.folder.fold_text(node)
        if text is None and isinstance(node, ast.Name):
            return self._listed_dir(node.id)
        return text

    def _listed_dir(self, name: str) -> str | None:
        """`for f in glob.glob('~/*')`: the loop variable is a path inside that folder."""
        source = self.b.sources.get(name)
        if not isinstance(source, ast.Call):
            return None
        q = self.qual(source.func) or ""
        attr = source.func.attr if isinstance(source.func, ast.Attribute) else ""
        if q in ("glob.glob", "glob.iglob") and source.args:
            text, _ = self.folder.fold_text(source.args[0])
            return text
        if q in ("os.listdir", "os.scandir", "os.walk"):
            text, _ = self.folder.fold_text(source.args[0]) if source.args else (".", False)
            return f"{text}/*" if text not in (None, ".") else text
        if attr in ("glob", "rglob", "iterdir") and isinstance(source.func, ast.Attribute):
            text, _ = self.folder.fold_text(source.func.value)
            base = source.func.value
            if (
                text is None
                and isinstance(base, ast.Call)
                and self.qual(base.func)
                in (
                    "pathlib.Path.home",
                    "pathlib.Path().expanduser",
                )
            ):
                text = "~"
            return f"{text}/*" if text not in (None, ".") else text
        return None

    def _loop_listing(self, node: ast.AST, depth: int = 0) -> str | None:
        """The folder a loop lists, when `node` is a path built from that loop's variable
        (`f`, `os.path.join(root, f)`, `d / name`)."""
        if depth > 3:
            return None
        if isinstance(node, ast.Name):
            return self._listed_dir(node.id)
        if isinstance(node, ast.Call) and self.qual(node.func) in (
            "os.path.join",
            "posixpath.join",
            "pathlib.Path",
        ):
            for arg in node.args:
                found = self._loop_listing(arg, depth + 1)
                if found is not None:
                    return found
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self._loop_listing(node.left, depth + 1)
        return None

    def _open_mode(self, node: ast.Call) -> str:
        mode_node = self._arg(node, 1, "mode")
        if mode_node is None:
            return "r"
        folded = self.folder.fold(mode_node)
        if folded is None:
            return "?"
        if isinstance(folded.value, int):
            import os

            return (
                "w" if folded.value & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND) else "r"
            )
        return str(folded.value)

    def _capability(self, q: str) -> tuple[str, str] | None:
        """(category, what it does) for callees that reach processes, files, network, code."""
        if q in SHELL_CALLS or q in SUBPROCESS_CALLS or EXEC_CALLS.match(q):
            return "process", "runs commands"
        if q in ("os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.spawn"):
            return "process", "controls processes"
        if q in DELETE_CALLS or q in MOVE_CALLS:
            return "filesystem", "deletes or moves files"
        if q in DYNAMIC_CALLS:
            return "dynamic-code", "runs code"
        if q in NETWORK_SEND or q in NETWORK_FETCH or q.startswith("socket."):
            return "network", "talks to the network"
        if q in OPEN_CALLS and q != "open":
            return "filesystem", "opens files"
        return None

    def _indirection(self, node: ast.AST, depth: int = 0) -> str | None:
        """How `node` hides what it names: a computed import, getattr, a dict or dunder walk."""
        if depth > 4:
            return None
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                fq = self.qual(sub.func)
                if fq in INDIRECT_LOOKUPS or fq in ("globals", "locals", "sys.modules.get"):
                    shown = ast.unparse(sub)
                    return shown if len(shown) <= 60 else f"{fq}(...)"
            elif isinstance(sub, ast.Subscript):
                base = self.qual(sub.value)
                if base in ("sys.modules", "<globals>", "builtins") or (
                    isinstance(sub.value, ast.Attribute)
                    and sub.value.attr in ("__dict__", "__globals__")
                ):
                    shown = ast.unparse(sub)
                    return shown if len(shown) <= 60 else "a namespace lookup"
            elif isinstance(sub, ast.Attribute) and sub.attr in (
                "__dict__",
                "__globals__",
                "__builtins__",
                "__subclasses__",
            ):
                return f"an attribute walk ({sub.attr})"
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                bound = self.binding(sub.id)
                if bound is not None and bound is not node:
                    how = self._indirection(bound, depth + 1)
                    if how is not None:
                        return how
        return None

    def _assembled(self, node: ast.AST, depth: int = 0) -> bool:
        """Whether a string is put together at run time (format, join, +, f-string, chr)."""
        if isinstance(node, ast.Constant) or depth > 4:
            return False
        if isinstance(node, ast.Name):
            bound = self.binding(node.id)
            return bound is not None and self._assembled(bound, depth + 1)
        return isinstance(node, (ast.Call, ast.BinOp, ast.JoinedStr, ast.Subscript))

    def _dunder_chain(self, node: ast.AST) -> set[str]:
        """Attribute names used to compute `node`, following names to what bound them."""
        names: set[str] = set()
        todo: list[ast.AST] = [node]
        seen: set[str] = set()
        while todo and len(seen) < 20:
            current = todo.pop()
            for sub in ast.walk(current):
                if isinstance(sub, ast.Attribute):
                    names.add(sub.attr)
                elif isinstance(sub, ast.Name) and sub.id not in seen:
                    seen.add(sub.id)
                    bound = self.binding(sub.id) or self.b.sources.get(sub.id)
                    if bound is not None:
                        todo.append(bound)
        return names

    def _socket_fd(self, node: ast.Call) -> bool:
        for a in node.args:
            if isinstance(a, ast.Call) and isinstance(a.func, ast.Attribute):
                if a.func.attr == "fileno" and (
                    (self.qual(a.func.value) or "").startswith("socket.")
                    or "network" in self.origins(a.func.value)
                ):
                    return True
        return False

    def _literal_payload(self, node: ast.Call) -> bool:
        """Every body argument (data=, json=, files=) is a literal written in the code."""
        payload = [k.value for k in node.keywords if k.arg in ("data", "json", "files")]
        if not payload:
            return False
        for value in payload:
            try:
                ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return False
        return True

    def _feeds_runner(self, node: ast.AST) -> bool:
        current = self.parent(node)
        while current is not None and not isinstance(current, ast.stmt):
            if isinstance(current, ast.Call):
                q = self.qual(current.func)
                if q is not None and (
                    q in DYNAMIC_CALLS or q in SHELL_CALLS or q in SUBPROCESS_CALLS
                ):
                    return True
            current = self.parent(current)
        return False

    def _loads(self, name: str) -> list[ast.Name]:
        """Every place `name` is read in the module."""
        if self._name_loads is None:
            table: dict[str, list[ast.Name]] = {}
            for sub in ast.walk(self.tree):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                    table.setdefault(sub.id, []).append(sub)
            self._name_loads = table
        return self._name_loads.get(name, [])

    def _authenticates(self, node: ast.AST, depth: int = 0) -> str | None:
        """The client or setting a secret value goes to, when that is all that happens to it."""
        parent = self.parent(node)
        if isinstance(parent, ast.Assign) and depth == 0 and len(parent.targets) == 1:
            target = parent.targets[0]
            if isinstance(target, ast.Attribute):
                return self.qual(target) or ast.unparse(target)
            if isinstance(target, ast.Name) and target.id not in self.b.opaque:
                uses = self._loads(target.id)
                found = [self._authenticates(u, depth + 1) for u in uses]
                if uses and all(f is not None for f in found):
                    return ", ".join(sorted({f for f in found if f is not None}))
            return None
        call = self.parent(parent) if isinstance(parent, ast.keyword) else parent
        if isinstance(call, ast.Call) and (isinstance(parent, ast.keyword) or node in call.args):
            cq = self.qual(call.func) or ""
            attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            leaks = (
                not cq
                or cq in OUTPUT_CALLS
                or cq in NETWORK_SEND
                or cq in NETWORK_FETCH
                or cq in SHELL_CALLS
                or cq in SUBPROCESS_CALLS
                or cq in OPEN_CALLS
                or cq.startswith(("logging.", "requests.", "httpx.", "urllib", "socket.", "os."))
                or cq in ("str", "repr", "format", "len", "list", "bytes", "base64.b64encode")
                or attr in ("write", "send", "sendall", "post", "put", "info", "debug", "warning")
            )
            if not leaks:
                return cq
        return None

    def _secret_read(self, node: ast.AST, key: str) -> None:
        """A secret passed to a client or login call authenticates; anything else (printed,
        sent, written) is rated as a read of the secret."""
        target = self._authenticates(node)
        if target is not None:
            self.add(
                "secret-auth",
                node,
                f"passes the secret variable {key} to {target} (to authenticate)",
            )
            return
        self.add("secret-variable", node, f"reads the secret variable {key}")

    def _preload(self, node: ast.AST, name: str) -> None:
        self.add(
            "preload",
            node,
            f"sets {name}: a library of its choosing is loaded into every program started "
            "from here",
        )

    def _import_rule(self, module: str, node: ast.AST) -> None:
        top = module.split(".")[0]
        if top == "ctypes":
            self.add(
                "ctypes",
                node,
                "imports ctypes (raw memory and C calls bypass every Python-level check)",
            )
        elif top in ("crontab",):
            self.add("cron-import", node, "imports a crontab editor")
        elif top in ("browser_cookie3", "pycookiecheat", "keyring"):
            self.add(
                "credential-store-import",
                node,
                f"imports {top} (reads stored passwords or cookies)",
            )

    def _nested(
        self, code: str, language: str, node: ast.AST, display: str, first_line: int | None = None
    ) -> list[Finding]:
        line = first_line if first_line is not None else self.line(node)
        inner = self.code_scan(code, language, line, self.depth + 1)
        for f in inner:
            self.findings.append(
                Finding(f.rule, f.severity, f.category, f.line, f"{display}: {f.message}")
            )
        return inner
