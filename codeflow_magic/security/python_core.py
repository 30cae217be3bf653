"""Core of the Python analyzer: name resolution, value origins and the helpers all rules use.

The rule layers (`python_shell`, `python_files`, `python_calls`) and the visitor in
`python_rules` build on `AnalyzerCore` in one straight line, so resolution is written once and
each rule module only says what a callee does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .bash_chains import download_files
from .bash_lex import lex
from .fold import _DECODERS, Folder
from .paths import COMPUTED, Verdict
from .python_bindings import _BindingCollector
from .python_tables import (
    BUILTIN_NAMES,
    CREDENTIAL_KEYS,
    DELETE_CALLS,
    DYNAMIC_CALLS,
    ENV_GETTERS,
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
    _file_key,
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
        self._download_memo: dict[str, str] | None = None
        self._saved_memo: set[str] | None = None

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

    def _through_names(
        self, node: ast.AST, probe: Callable[[ast.AST], str | None], limit: int
    ) -> str | None:
        """The first answer `probe` gives for a node inside `node`, following each name read
        there to what it is bound to (at most `limit` names deep)."""

        def search(current: ast.AST, depth: int) -> str | None:
            for sub in ast.walk(current):
                found = probe(sub)
                if found is not None:
                    return found
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and depth < limit:
                    bound = self.binding(sub.id)
                    if bound is not None and bound is not current:
                        found = search(bound, depth + 1)
                        if found is not None:
                            return found
            return None

        return search(node, 0)

    def _indirection(self, node: ast.AST) -> str | None:
        """How `node` hides what it names: a computed import, getattr, a dict or dunder walk."""

        def probe(sub: ast.AST) -> str | None:
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
            return None

        return self._through_names(node, probe, limit=4)

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

    def _loop_iter(self, name: ast.Name) -> ast.expr | None:
        """The iterable of the nearest loop or comprehension that binds `name`."""
        current = self.parent(name)
        while current is not None:
            if (
                isinstance(current, ast.For | ast.AsyncFor)
                and isinstance(current.target, ast.Name)
                and current.target.id == name.id
            ):
                return current.iter
            if isinstance(current, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
                for gen in current.generators:
                    if isinstance(gen.target, ast.Name) and gen.target.id == name.id:
                        return gen.iter
            current = self.parent(current)
        return None

    def _fetch_host(self, node: ast.AST) -> str | None:
        """The host a value was fetched from (`requests.get(url).content`), following names."""

        def probe(sub: ast.AST) -> str | None:
            if not isinstance(sub, ast.Call):
                return None
            q = self.qual(sub.func) or ""
            if q in NETWORK_FETCH or q.startswith(("requests.", "httpx.", "urllib.request.")):
                url = self.folder.fold_str(self._arg(sub, 0, "url"))
                m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", url or "")
                return m.group(1) if m else "the network"
            return None

        return self._through_names(node, probe, limit=3)

    def _downloads(self) -> dict[str, str]:
        """Files the code saves from the network: file name -> host it came from."""
        if self._download_memo is not None:
            return self._download_memo
        found: dict[str, str] = {}
        for sub in ast.walk(self.tree):
            if not isinstance(sub, ast.Call):
                continue
            q = self.qual(sub.func) or ""
            if q in ("urllib.request.urlretrieve", "wget.download"):
                url = self.folder.fold_str(self._arg(sub, 0, "url")) or ""
                out = self._arg(sub, 1, "filename" if q != "wget.download" else "out")
                name = self.folder.fold_str(out) if out is not None else None
                if name is None and url:
                    name = url.rstrip("/").rsplit("/", 1)[-1]
                m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", url)
                if name:
                    found[_file_key(name)] = m.group(1) if m else "the network"
            elif q in OPEN_CALLS and any(c in self._open_mode(sub) for c in "wax"):
                name = self.folder.fold_str(self._arg(sub, 0, "file"))
                if name is None:
                    continue
                region: list[ast.AST] = []
                parent = self.parent(sub)
                if isinstance(parent, ast.withitem):
                    with_node = self.parent(parent)
                    if isinstance(with_node, ast.With | ast.AsyncWith):
                        region = list(with_node.body)
                else:
                    current: ast.AST | None = parent
                    while current is not None and not isinstance(current, ast.stmt):
                        current = self.parent(current)
                    if current is not None:
                        region = [current]
                for stmt in region:
                    for call in ast.walk(stmt):
                        if not isinstance(call, ast.Call):
                            continue
                        for value in [*call.args, *(k.value for k in call.keywords)]:
                            host = self._fetch_host(value)
                            if host is not None:
                                found[_file_key(name)] = host
        # Shell lines (`!wget -O m.pkl URL`, a `%%bash` body): read as the Bash rules read them.
        shell = [line.strip().lstrip("!").strip() for line in self.source.splitlines()]
        shell += [text for text, _ in self._shell_lines]
        for text in shell:
            if not re.search(r"\b(wget|curl)\b", text):
                continue
            for pipeline in lex(text).pipelines:
                for cmd in pipeline.commands:
                    prog = cmd.words[0].rsplit("/", 1)[-1] if cmd.words else ""
                    if prog not in ("wget", "curl"):
                        continue
                    files, url = download_files(prog, cmd.words[1:])
                    m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", url)
                    for saved in files:
                        found[_file_key(saved)] = m.group(1) if m else "the network"
        self._download_memo = found
        return found

    def _https_host(self, call: ast.Call) -> str | None:
        """The host of a request's https URL when the URL names it (not an IP, not computed)."""
        q = self.qual(call.func) or ""
        url_node = (
            self._arg(call, 1, "url")
            if q.endswith(".request") and not q.startswith("urllib.request")
            else self._arg(call, 0, "url")
        )
        if url_node is None:
            return None
        text, decoded = self.folder.fold_text(url_node)
        if not text or decoded:
            return None
        m = re.match(r"^https://([^/:?#@\s]+)(?::\d+)?(?:[/?#]|$)", text)
        if not m:
            return None
        host = m.group(1).lower()
        if (
            COMPUTED in host
            or "." not in host
            or re.fullmatch(r"[\d.]+", host)
            or host.startswith(("localhost", "127."))
        ):
            return None
        return host

    def _auth_slot(self, use: ast.AST, depth: int = 0) -> str | None:
        """The https host `use` is sent to as an authentication value (a params/headers entry
        named like a credential, `auth=`), else None."""
        if depth > 3:
            return None
        cur: ast.AST = use
        parent = self.parent(cur)
        while isinstance(parent, ast.FormattedValue | ast.JoinedStr | ast.BinOp):
            cur, parent = parent, self.parent(parent)
        slots: tuple[str, ...] = ("auth",)
        if isinstance(parent, ast.Tuple):
            cur, parent = parent, self.parent(parent)
        elif isinstance(parent, ast.Dict):
            index = next((i for i, v in enumerate(parent.values) if v is cur), None)
            if index is None:
                return None
            name = self.folder.fold_str(parent.keys[index])
            if name is None or name.lower().replace("_", "-") not in CREDENTIAL_KEYS:
                return None
            cur, parent = parent, self.parent(parent)
            slots = ("params", "headers")
            if (
                isinstance(parent, ast.Assign)
                and len(parent.targets) == 1
                and isinstance(parent.targets[0], ast.Name)
                and parent.targets[0].id not in self.b.opaque
            ):
                uses = self._loads(parent.targets[0].id)
                hosts = {self._request_host(u, slots) for u in uses}
                if uses and None not in hosts:
                    return ", ".join(sorted(h for h in hosts if h is not None))
                return None
        return self._request_host(cur, slots)

    def _request_host(self, value: ast.AST, slots: tuple[str, ...]) -> str | None:
        parent = self.parent(value)
        if not isinstance(parent, ast.keyword) or parent.arg not in slots:
            return None
        call = self.parent(parent)
        if not isinstance(call, ast.Call):
            return None
        q = self.qual(call.func) or ""
        if (
            q not in NETWORK_FETCH
            and q not in NETWORK_SEND
            and not q.startswith(("requests.", "httpx."))
        ):
            return None
        return self._https_host(call)

    def _env_value(self, node: ast.AST) -> str | None:
        """The secret (or unknown) environment variable `node` reads, or "the environment"
        when it takes all of it; None otherwise."""
        key: str | None
        if isinstance(node, ast.Call):
            q = self.qual(node.func)
            if q in ENV_GETTERS:
                key = self.folder.fold_str(self._arg(node, 0, "key"))
                if key is None:
                    return "an environment variable"
                return key if is_secret_name(key) else None
            return None
        if isinstance(node, ast.Subscript) and self.qual(node.value) in (
            "os.environ",
            "os.environb",
        ):
            key = self.folder.fold_str(node.slice)
            if key is None:
                return "an environment variable"
            return key if is_secret_name(key) else None
        if isinstance(node, ast.Name | ast.Attribute) and self.qual(node) in (
            "os.environ",
            "os.environb",
        ):
            parent = self.parent(node)
            if not isinstance(parent, ast.Subscript | ast.Attribute):
                return "the environment"
        return None

    def _carries_secret(self, call: ast.Call) -> str | None:
        """The secret (or "the environment") that goes into this call other than as an
        authentication value sent to an https host."""
        todo: list[tuple[ast.AST, int]] = [(a, 0) for a in call.args]
        todo += [(k.value, 0) for k in call.keywords]
        seen: set[str] = set()
        while todo:
            current, depth = todo.pop()
            for sub in ast.walk(current):
                label = self._env_value(sub)
                if label is not None:
                    if self._auth_slot(sub) is None:
                        return label
                elif (
                    isinstance(sub, ast.Name)
                    and isinstance(sub.ctx, ast.Load)
                    and sub.id not in seen
                    and depth < 4
                ):
                    seen.add(sub.id)
                    bound = self.binding(sub.id)
                    if bound is None:
                        continue
                    labels = [x for x in map(self._env_value, ast.walk(bound)) if x is not None]
                    if labels:
                        if self._auth_slot(sub) is None:
                            return labels[0]
                    else:
                        todo.append((bound, depth + 1))
        return None

    def _secret_use(self, node: ast.AST, depth: int = 0) -> tuple[str, str]:
        """What happens to a secret value: ("net-auth", host) sent to authenticate,
        ("auth", client) passed to a client, ("kept", "") only checked or stored in a
        variable nobody shows, ("leak", where) shown, written, sent or lost track of."""
        if depth > 4:
            return "leak", "code the scanner cannot follow"
        host = self._auth_slot(node)
        if host is not None:
            return "net-auth", host
        cur: ast.AST = node
        parent = self.parent(cur)
        wrapped = False
        while True:
            if isinstance(parent, ast.BoolOp) or (
                isinstance(parent, ast.IfExp) and parent.test is not cur
            ):
                cur, parent = parent, self.parent(parent)
            elif (
                isinstance(parent, ast.Attribute)
                and isinstance(self.parent(parent), ast.Call)
                and parent.attr in ("strip", "rstrip", "lstrip", "lower", "upper")
            ):
                cur = self.parent(parent) or parent
                parent = self.parent(cur)
            elif isinstance(
                parent, ast.FormattedValue | ast.JoinedStr | ast.BinOp | ast.Tuple | ast.List
            ) or (isinstance(parent, ast.Dict) and cur in parent.values):
                wrapped = True
                cur, parent = parent, self.parent(parent)
            else:
                break
        if isinstance(parent, ast.Compare | ast.UnaryOp | ast.If | ast.While | ast.Assert) or (
            isinstance(parent, ast.IfExp) and parent.test is cur
        ):
            return "kept", ""
        if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is cur:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            target = targets[0] if len(targets) == 1 else None
            if isinstance(target, ast.Attribute) and not wrapped:
                return "auth", self.qual(target) or ast.unparse(target)
            if isinstance(target, ast.Name) and target.id not in self.b.opaque:
                found = [self._secret_use(u, depth + 1) for u in self._loads(target.id)]
                leaks = [f for f in found if f[0] == "leak"]
                if leaks:
                    return leaks[0]
                hosts = sorted({f[1] for f in found if f[0] == "net-auth"})
                clients = sorted({f[1] for f in found if f[0] == "auth"})
                if hosts and not clients:
                    return "net-auth", ", ".join(hosts)
                if clients or hosts:
                    return "auth", ", ".join(clients + hosts)
                return "kept", ""
            return "leak", "code the scanner cannot follow"
        if isinstance(parent, ast.Expr):
            if self.tree.body and parent is self.tree.body[-1]:
                return "leak", "the cell's output"
            return "kept", ""
        call = self.parent(parent) if isinstance(parent, ast.keyword) else parent
        if isinstance(call, ast.Call) and (isinstance(parent, ast.keyword) or cur in call.args):
            cq = self.qual(call.func) or ""
            attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            leaky = (
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
            if not leaky and not wrapped:
                return "auth", cq
            return "leak", cq or attr or "a call"
        if isinstance(parent, ast.Return | ast.Yield | ast.YieldFrom | ast.Lambda):
            return "leak", "the caller (returns it)"
        return "leak", "code the scanner cannot follow"

    def _secret_read(self, node: ast.AST, key: str) -> None:
        """A secret passed to a client or login call authenticates; one only checked or kept
        is a low read; printed, sent or written it is a high one."""
        kind, target = self._secret_use(node)
        if kind == "net-auth":
            self.add("secret-auth", node, f"sends {key} to {target} to authenticate")
        elif kind == "auth":
            self.add(
                "secret-auth",
                node,
                f"passes the secret variable {key} to {target} (to authenticate)",
            )
        elif kind == "kept":
            self.add("secret-variable", node, f"reads the secret variable {key}", severity="low")
        else:
            self.add(
                "secret-variable",
                node,
                f"reads the secret variable {key} and passes it to {target}",
                severity="high",
            )

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
