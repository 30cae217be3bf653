"""Python rules: what a parsed module would do, rated by harm.

The analysis is one pass over the tree after a binding pre-pass. Names are resolved to dotted
names through imports and plain assignments (`import os as o`, `s = os.system`,
`m = __import__('o' + 's')`, `getattr(os, 'sys' + 'tem')`, `sys.modules['os']`), values are
folded (`fold.Folder`), and each call is matched against tables of what the callee does. The
shell commands a call runs are judged by the Bash rules, so `os.system("rm -rf ~")` and
`!rm -rf ~` get the same verdict.

This module only detects: findings name a rule id of the catalogue (`rules.py`), which holds
each rule's severity, category and rationale; graded rules pass the rating they reached.
Calls with a rule of their own are dispatched by callee name (`_PATH_HANDLERS`,
`_CALL_HANDLERS`, after the class).
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .bash_rules import script_chains
from .fold import _DECODERS, Folded, Folder, as_text
from .paths import COMPUTED, Verdict

BashScan = Callable[[str, int, int], list[Finding]]
CodeScan = Callable[[str, str, int, int], list[Finding]]
"""Recursive scan of nested code: (code, language, first line, depth) -> findings."""

BUILTIN_NAMES = frozenset(dir(builtins))
BIG_BYTES = 4 * 1024**3

SHELL_CALLS = frozenset(
    {
        "os.system",
        "os.popen",
        "os.popen2",
        "os.popen3",
        "os.popen4",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "commands.getoutput",
        "commands.getstatusoutput",
        "platform.popen",
        "asyncio.create_subprocess_shell",
        "pty.spawn",
        "get_ipython().system",
        "get_ipython().getoutput",
        "get_ipython().system_raw",
        "get_ipython().system_piped",
        "IPython.utils.process.system",
        "IPython.utils.process.getoutput",
    }
)
SUBPROCESS_CALLS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "asyncio.create_subprocess_exec",
        "pexpect.spawn",
        "pexpect.run",
        "sh.Command",
        "plumbum.local",
        "delegator.run",
        "invoke.run",
        "fabric.Connection().run",
    }
)
EXEC_CALLS = re.compile(r"^os\.(exec|spawn)[lv]p?e?$|^os\.posix_spawnp?$")
DELETE_CALLS: dict[str, bool] = {
    "os.remove": False,
    "os.unlink": False,
    "os.rmdir": False,
    "os.removedirs": True,
    "shutil.rmtree": True,
    "send2trash.send2trash": False,
    "pathlib.Path().unlink": False,
    "pathlib.Path().rmdir": False,
    "os.truncate": False,
}
MOVE_CALLS = frozenset(
    {
        "os.rename",
        "os.replace",
        "shutil.move",
        "os.renames",
        "pathlib.Path().rename",
        "pathlib.Path().replace",
    }
)
COPY_CALLS = frozenset(
    {
        "shutil.copy",
        "shutil.copy2",
        "shutil.copyfile",
        "shutil.copytree",
        "os.link",
        "os.symlink",
        "distutils.file_util.copy_file",
    }
)
PERM_CALLS = frozenset(
    {"os.chmod", "os.chown", "os.lchown", "os.lchmod", "shutil.chown", "pathlib.Path().chmod"}
)
OPEN_CALLS = frozenset(
    {
        "open",
        "io.open",
        "codecs.open",
        "os.open",
        "io.FileIO",
        "aiofiles.open",
        "gzip.open",
        "bz2.open",
        "lzma.open",
    }
)
WRITE_METHODS = frozenset(
    {
        "to_csv",
        "to_json",
        "to_excel",
        "to_parquet",
        "to_pickle",
        "savefig",
        "to_html",
        "to_feather",
        "to_hdf",
        "to_stata",
        "to_latex",
        "to_markdown",
        "write_text",
        "write_bytes",
        "save",
        "savez",
        "imwrite",
        "to_file",
        "touch",
        "mkfifo",
    }
)
READ_METHODS = frozenset({"read_text", "read_bytes"})
DYNAMIC_CALLS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "execfile",
        "get_ipython().run_cell",
        "get_ipython().ex",
        "get_ipython().ev",
        "get_ipython().run_code",
        "code.InteractiveInterpreter().runsource",
        "code.InteractiveConsole().push",
        "code.InteractiveInterpreter().runcode",
    }
)
PICKLE_CALLS = frozenset(
    {
        "pickle.loads",
        "pickle.load",
        "pickle.Unpickler",
        "dill.loads",
        "dill.load",
        "cloudpickle.loads",
        "cloudpickle.load",
        "joblib.load",
        "pandas.read_pickle",
        "shelve.open",
        "jsonpickle.decode",
        "torch.load",
        "numpy.load",
        "_pickle.loads",
        "pickle.Unpickler().load",
    }
)
MARSHAL_CALLS = frozenset({"marshal.loads", "marshal.load", "types.CodeType", "types.FunctionType"})
YAML_UNSAFE = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load"})
NETWORK_FETCH = frozenset(
    {
        "requests.get",
        "requests.head",
        "requests.options",
        "requests.request",
        "requests.Session().get",
        "requests.Session",
        "httpx.get",
        "httpx.stream",
        "httpx.Client",
        "httpx.AsyncClient",
        "httpx.Client().get",
        "httpx.request",
        "urllib.request.urlopen",
        "urllib.request.urlretrieve",
        "urllib.urlopen",
        "urllib2.urlopen",
        "urllib3.PoolManager",
        "urllib3.PoolManager().request",
        "http.client.HTTPConnection",
        "http.client.HTTPSConnection",
        "aiohttp.ClientSession",
        "aiohttp.request",
        "wget.download",
        "pycurl.Curl",
        "urllib.request.Request",
        "xmlrpc.client.ServerProxy",
        "websocket.create_connection",
        "websockets.connect",
        "IPython.display.IFrame",
    }
)
NETWORK_SEND = frozenset(
    {
        "requests.post",
        "requests.put",
        "requests.patch",
        "requests.delete",
        "requests.Session().post",
        "requests.Session().put",
        "httpx.post",
        "httpx.put",
        "httpx.patch",
        "httpx.Client().post",
        "aiohttp.ClientSession().post",
        "socket.socket().connect",
        "socket.socket().connect_ex",
        "socket.socket().sendto",
        "socket.socket().send",
        "socket.socket().sendall",
        "socket.create_connection",
        "smtplib.SMTP",
        "smtplib.SMTP_SSL",
        "ftplib.FTP",
        "ftplib.FTP_TLS",
        "telnetlib.Telnet",
        "paramiko.SSHClient",
        "paramiko.Transport",
        "pysftp.Connection",
        "http.client.HTTPConnection().request",
        "http.client.HTTPSConnection().request",
        "ssl.wrap_socket",
        "socket.socket().bind",
        "socket.socket().listen",
        "socketserver.TCPServer",
        "http.server.HTTPServer",
        "http.server.ThreadingHTTPServer",
        "http.server.test",
    }
)
NETWORK_ANY = (
    NETWORK_FETCH
    | NETWORK_SEND
    | {"socket.socket", "socket.fromfd", "socket.socket().recv", "socket.socket().recvfrom"}
)
REACHABLE_MODULES = frozenset(
    {
        "os",
        "subprocess",
        "sys",
        "builtins",
        "shutil",
        "posix",
        "ctypes",
        "importlib",
        "pty",
        "socket",
    }
)
RISKY_MODULES = REACHABLE_MODULES | {"pickle", "marshal", "nt", "commands", "code", "runpy"}
RISKY_ATTRS = frozenset(
    {
        "system",
        "popen",
        "eval",
        "exec",
        "__import__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "spawn",
        "execv",
        "execve",
        "fork",
        "rmtree",
        "remove",
        "unlink",
        "check_output",
        "Popen",
        "getoutput",
        "import_module",
        "loads",
        "compile",
        "__code__",
        "f_globals",
    }
)
DUNDERS = rules.INTROSPECTION_ATTRS  # attribute -> (severity, reason); one rule each
STAR_MEMBERS: dict[str, frozenset[str]] = {}
INDIRECT_LOOKUPS = frozenset(
    {"__import__", "importlib.import_module", "importlib.__import__", "getattr", "vars"}
)
ROUND_TRIP_DUMPS = frozenset(
    {"pickle.dumps", "dill.dumps", "cloudpickle.dumps", "_pickle.dumps", "copy.deepcopy"}
)
PIP_MAIN = frozenset({"pip.main", "pip._internal.main", "pip._internal.cli.main.main"})
OUTPUT_CALLS = frozenset(
    {"print", "sys.stdout.write", "sys.stderr.write", "IPython.display.display", "display"}
)
WAIT_CALLS = frozenset(
    {"time.sleep", "asyncio.sleep", "input", "select.select", "threading.Event().wait"}
)
QUERY_REACH = re.compile(
    r"__\w+__|\b(os|sys|subprocess|builtins|importlib|shutil|socket|pty)\s*\.\s*\w|"
    r"\b(system|popen|getoutput|check_output|Popen|__import__|exec|eval|compile|open)\s*\("
)
PANDAS_AT_REACH = re.compile(r"@\w+(\.\w+)*\.(os|sys|subprocess|builtins|system|popen|__\w+__)")
QUERY_COMMAND = re.compile(
    r"\b(system|popen|getoutput|check_output|Popen|run|call)\s*\(\s*\[?\s*(\"{3}|'{3}|\"|')(.*?)\2"
)


def _canon(q: str) -> str:
    """Spell equivalent callees one way (`posix.system` is `os.system`)."""
    if q.startswith("builtins."):
        q = q[len("builtins.") :]
    elif q.startswith("__builtins__."):
        q = q[len("__builtins__.") :]
    for old, new in (
        ("posix.", "os."),
        ("nt.", "os."),
        ("posixpath.", "os.path."),
        ("_pickle.", "pickle."),
        ("cPickle.", "pickle."),
        ("importlib.__import__", "__import__"),
        ("_io.open", "open"),
        ("io.open", "open"),
        ("pathlib.PosixPath", "pathlib.Path"),
        ("pathlib.PurePosixPath", "pathlib.Path"),
        ("pathlib.PurePath", "pathlib.Path"),
        ("pathlib.WindowsPath", "pathlib.Path"),
        ("ctypes.cdll.LoadLibrary()", "ctypes.CDLL()"),
        ("ctypes.cdll.", "ctypes.CDLL()."),
        ("ctypes.PyDLL()", "ctypes.CDLL()"),
        ("ctypes.CDLL(", "ctypes.CDLL("),
    ):
        if q == old.rstrip(".") or q.startswith(old):
            q = new + q[len(old) :] if q.startswith(old) else new.rstrip(".")
            break
    return q


@dataclass
class _Bindings:
    assigns: dict[str, list[ast.expr]] = field(default_factory=dict)
    imports: dict[str, list[str]] = field(default_factory=dict)
    opaque: set[str] = field(default_factory=set)
    star_modules: list[str] = field(default_factory=list)
    import_tops: set[str] = field(default_factory=set)
    sources: dict[str, ast.expr] = field(default_factory=dict)
    """For-loop and with-as names: the expression they iterate over or enter."""

    def bound(self, name: str) -> bool:
        return name in self.assigns or name in self.imports or name in self.opaque


class _BindingCollector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.b = _Bindings()

    def _opaque_target(self, target: ast.AST) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                self.b.opaque.add(node.id)

    def _assign(self, target: ast.AST, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.b.assigns.setdefault(target.id, []).append(value)
        elif (
            isinstance(target, (ast.Tuple, ast.List))
            and isinstance(value, (ast.Tuple, ast.List))
            and len(target.elts) == len(value.elts)
        ):
            for t, v in zip(target.elts, value.elts, strict=True):
                self._assign(t, v)
        else:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    self.b.opaque.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.b.imports.setdefault(alias.asname, []).append(alias.name)
            else:
                top = alias.name.split(".")[0]
                self.b.imports.setdefault(top, []).append(top)
            self.b.import_tops.add(alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            for alias in node.names:
                self.b.opaque.add(alias.asname or alias.name)
            return
        self.b.import_tops.add(node.module.split(".")[0])
        for alias in node.names:
            if alias.name == "*":
                self.b.star_modules.append(node.module)
                continue
            self.b.imports.setdefault(alias.asname or alias.name, []).append(
                f"{node.module}.{alias.name}"
            )

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._assign(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign(node.target, node.value)
        else:
            self._opaque_target(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._assign(node.target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._opaque_target(node.target)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self._opaque_target(node.target)
        if isinstance(node.target, ast.Name):
            self.b.sources[node.target.id] = node.iter
        elif (
            isinstance(node.target, ast.Tuple)
            and node.target.elts
            and isinstance(node.target.elts[0], ast.Name)
            and isinstance(node.iter, ast.Call)
            and isinstance(node.iter.func, (ast.Attribute, ast.Name))
            and (node.iter.func.attr if isinstance(node.iter.func, ast.Attribute) else "") == "walk"
        ):
            # `for root, dirs, files in os.walk(X)`: `root` is a folder somewhere under X.
            self.b.sources[node.target.elts[0].id] = node.iter
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self._opaque_target(item.optional_vars)
                if isinstance(item.optional_vars, ast.Name):
                    self.b.sources[item.optional_vars.id] = item.context_expr
        self.generic_visit(node)

    visit_AsyncWith = visit_With

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._opaque_target(node.target)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.b.opaque.add(node.name)
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            self.b.opaque.add(a.arg)
        if args.vararg:
            self.b.opaque.add(args.vararg.arg)
        if args.kwarg:
            self.b.opaque.add(args.kwarg.arg)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            self.b.opaque.add(a.arg)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.b.opaque.add(node.name)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.b.opaque.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.b.opaque.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.b.opaque.add(node.name)

    def visit_Global(self, node: ast.Global) -> None:
        return

    def visit_Delete(self, node: ast.Delete) -> None:
        return


def _star_members() -> dict[str, frozenset[str]]:
    if not STAR_MEMBERS:
        table: dict[str, set[str]] = {}
        for q in (
            SHELL_CALLS
            | SUBPROCESS_CALLS
            | set(DELETE_CALLS)
            | MOVE_CALLS
            | COPY_CALLS
            | PICKLE_CALLS
            | MARSHAL_CALLS
            | NETWORK_ANY
            | set(_DECODERS)
            | {
                "os.environ",
                "os.getenv",
                "os.fork",
                "os.kill",
                "os.execv",
                "os.execve",
                "ctypes.CDLL",
                "ctypes.cdll",
                "ctypes.pythonapi",
                "sys.modules",
            }
        ):
            mod, _, name = q.rpartition(".")
            if mod and "(" not in mod:
                table.setdefault(mod, set()).add(name)
        STAR_MEMBERS.update({k: frozenset(v) for k, v in table.items()})
    return STAR_MEMBERS


def _looks_like_code(text: str) -> bool:
    return bool(
        re.search(
            r"\b(import|exec|eval|system|subprocess|popen|__import__|socket|chmod|getattr)\b|"
            r"\brm\s+-|curl\s|wget\s|/bin/(ba)?sh|\bnc\s|/dev/tcp|\.ssh/|base64\s+-d",
            text,
        )
    )


class PythonAnalyzer:
    """Findings for one parsed module (a cell, a script, or code found inside them)."""

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

    # -- findings ---------------------------------------------------------------------------
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

    # -- resolution -------------------------------------------------------------------------
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

    # -- value origins ----------------------------------------------------------------------
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

    # -- walk -------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self._parents[id(child)] = node
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    self._docstrings.add(id(body[0].value))
        self._visit(self.tree)
        if len(self._shell_lines) >= 2:
            # `!wget ... -O f`, `!chmod +x f`, `!./f` on separate lines are one chain.
            self.findings.extend(script_chains(self._shell_lines))
        self._escalate()
        return self.findings

    def _visit(self, node: ast.AST) -> None:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        is_loop = isinstance(node, (ast.While, ast.For, ast.AsyncFor))
        if is_loop:
            self._loops.append(node)
        if method is not None:
            method(node)
        for child in ast.iter_child_nodes(node):
            self._visit(child)
        if is_loop:
            self._loops.pop()

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self._parents.get(id(node))

    # -- rules: imports ---------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import_rule(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._import_rule(node.module, node)

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

    # -- rules: names and attributes --------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__" and not self.b.bound(node.id):
            self.add("dunder-builtins", node, "reaches the builtins namespace (__builtins__)")
        if isinstance(node.ctx, ast.Load):
            q = self.qual(node)
            if q is not None and q != node.id:
                self._reference(node, q)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in DUNDERS:
            severity, reason = DUNDERS[node.attr]
            chain = self._dunder_chain(node)
            if node.attr in rules.CHAIN_ESCAPE_ATTRS and (
                "__subclasses__" in chain or "__bases__" in chain or "__mro__" in chain
            ):
                severity, reason = (
                    "critical",
                    ("walks from a class to module globals (a known sandbox escape)"),
                )
            self.add(
                rules.introspection_rule(node.attr),
                node,
                f"{reason} ({node.attr})",
                severity=severity,
            )
        if isinstance(node.ctx, ast.Load):
            raw = self._qual(node) if node.attr in REACHABLE_MODULES else None
            if raw is not None:
                reach = self._chain(_canon(raw))
                if reach is not None:
                    via, reached = reach
                    self.add(
                        "module-chain",
                        node,
                        f"reaches {reached.split('.')[0]} through {via} ({via}.{reached})",
                    )
            q = self.qual(node)
            if q is not None:
                self._reference(node, q)

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

    def _reference(self, node: ast.expr, q: str) -> None:
        """Rules about a name itself, wherever it is used (os.environ, sys.modules)."""
        parent = self.parent(node)
        if q in ("os.environ", "os.environb") and not isinstance(
            parent, ast.Attribute | ast.Subscript
        ):
            self._environ_use(node, parent)
        elif q in ("os.environ", "os.environb") and isinstance(parent, ast.Attribute):
            if parent.attr in ("items", "values", "copy"):
                self.add("env-dump", node, "dumps the whole environment (API keys included)")
            elif parent.attr == "keys":
                self.add("env-names", node, "lists environment variable names")
        if q == "sys.modules":
            if isinstance(parent, ast.Subscript) or (
                isinstance(parent, ast.Attribute) and parent.attr in ("get", "values", "items")
            ):
                self.add("sys-modules", node, "looks modules up through sys.modules")
        if q in (
            "sys._getframe",
            "inspect.currentframe",
            "inspect.stack",
            "sys._current_frames",
            "gc.get_objects",
            "gc.get_referrers",
            "gc.get_referents",
        ):
            self.add("frames", node, f"inspects interpreter internals ({q})")
        if q.startswith("ctypes.") and isinstance(parent, ast.Call) and parent.func is node:
            self.add("ctypes", node, f"calls into C through ctypes ({q})")
        if (
            isinstance(parent, ast.Call)
            and node in parent.args
            and (q in SHELL_CALLS or q in SUBPROCESS_CALLS or q in ("eval", "exec"))
        ):
            self.add(
                "callable-ref",
                node,
                f"passes {q} as a value to be called later",
                category="process" if q not in ("eval", "exec") else "dynamic-code",
            )

    def _environ_use(self, node: ast.expr, parent: ast.AST | None) -> None:
        if isinstance(parent, ast.keyword) and parent.arg == "env":
            return
        if isinstance(parent, ast.Call) and self.qual(parent.func) in ("dict", "os.environ.copy"):
            grand = self.parent(parent)
            if isinstance(grand, ast.keyword) and grand.arg == "env":
                return
            if isinstance(grand, ast.Assign):
                return
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, ast.Assign | ast.AnnAssign):
            return
        if isinstance(parent, ast.Dict):
            grand = self.parent(parent)
            if isinstance(grand, ast.keyword) and grand.arg == "env":
                return
            if isinstance(grand, ast.Assign):
                return
        if isinstance(
            parent,
            ast.Call
            | ast.For
            | ast.comprehension
            | ast.FormattedValue
            | ast.Dict
            | ast.Starred
            | ast.Return
            | ast.Expr
            | ast.BinOp,
        ):
            self.add("env-dump", node, "dumps the whole environment (API keys included)")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        q = self.qual(node.value)
        if q in ("os.environ", "os.environb"):
            key = self.folder.fold_str(node.slice)
            if key is not None and is_secret_name(key):
                self._secret_read(node, key)
        if q == "<globals>":
            key = self.folder.fold_str(node.slice)
            if key == "__builtins__":
                self.add(
                    "dunder-builtins", node, "reaches the builtins namespace through globals()"
                )

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self._docstrings or not isinstance(node.value, str):
            return
        if node.value in ("LD_PRELOAD", "LD_AUDIT"):
            parent = self.parent(node)
            sets = (
                (isinstance(parent, ast.Dict) and node in parent.keys)
                or (isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store))
                or (
                    isinstance(parent, ast.Call)
                    and self.qual(parent.func)
                    in ("os.putenv", "os.environ.setdefault", "os.environ.__setitem__")
                )
            )
            if sets:
                self._preload(node, node.value)
        verdict = paths.mention_verdict(node.value)
        if verdict is not None:
            self.add(
                "mention",
                node,
                verdict.reason,
                severity=verdict.severity,
                category=verdict.category,
            )

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mult):
            left = self.folder.fold(node.left)
            right = self.folder.fold(node.right)
            if left is not None and right is not None:
                size = _alloc_size(left.value, right.value)
                if size is not None and size >= BIG_BYTES:
                    self.add(
                        "big-allocation", node, f"allocates about {size / 1024**3:.0f} GB in memory"
                    )

    # -- rules: loops and definitions -------------------------------------------------------
    def visit_While(self, node: ast.While) -> None:
        test = self.folder.fold(node.test)
        if test is None or not test.value or _has_exit(node):
            return
        self._endless(node)

    def visit_For(self, node: ast.For) -> None:
        if (
            isinstance(node.iter, ast.Call)
            and self.qual(node.iter.func)
            in ("itertools.count", "itertools.cycle", "itertools.repeat")
            and not (self.qual(node.iter.func) == "itertools.repeat" and len(node.iter.args) > 1)
        ):
            if not _has_exit(node):
                self._endless(node)

    def _endless(self, loop: ast.While | ast.For) -> None:
        writes = appends = spawns = prints = waits = False
        for sub in _walk_body(loop):
            if isinstance(sub, ast.Call):
                q = self.qual(sub.func) or ""
                attr = sub.func.attr if isinstance(sub.func, ast.Attribute) else ""
                if q in OUTPUT_CALLS:
                    prints = True
                    continue
                if q in WAIT_CALLS or attr in (
                    "sleep",
                    "wait",
                    "recv",
                    "get",
                    "join",
                    "read",
                    "accept",
                    "poll",
                    "select",
                ):
                    waits = True
                if (
                    q in ("os.fork", "os.forkpty")
                    or (attr == "start" and "Process" in ast.dump(sub.func))
                    or (attr == "start" and "Thread" in ast.dump(sub.func))
                    or q in SUBPROCESS_CALLS
                    or q in SHELL_CALLS
                    or q.startswith("multiprocessing.")
                ):
                    spawns = True
                if (
                    attr in ("write", "writelines")
                    or attr in WRITE_METHODS
                    or (q in OPEN_CALLS and self._open_mode(sub) not in ("r", "rb", "rt"))
                ):
                    writes = True
                if attr in ("append", "extend", "insert", "add", "update") or q in (
                    "bytearray",
                    "list",
                ):
                    appends = True
            if isinstance(sub, ast.AugAssign) and isinstance(sub.op, (ast.Add, ast.Mult)):
                appends = True
        if spawns:
            self.add("endless-spawn", loop, "starts processes in an endless loop (fork bomb)")
        elif writes:
            self.add("endless-write", loop, "writes to disk in an endless loop (fills the disk)")
        elif appends:
            self.add("endless-growth", loop, "grows memory in an endless loop")
        elif prints and not waits:
            self.add(
                "output-flood",
                loop,
                "prints in an endless loop with no way out (floods the notebook's output until "
                "it is stopped)",
            )
        elif not waits:
            self.add(
                "busy-loop",
                loop,
                "spins in an endless loop with no way out (holds a CPU core until it is stopped)",
            )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._decorators(node)
        is_meta = any(self.qual(b) in ("type", "abc.ABCMeta", "enum.EnumMeta") for b in node.bases)
        hooks: tuple[str, ...] = ("__init_subclass__", "__class_getitem__", "__set_name__")
        if is_meta:
            hooks += ("__new__", "__init__", "__call__", "__prepare__")
        for item in node.body:
            if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if item.name not in hooks:
                continue
            for sub in ast.walk(item):
                if not isinstance(sub, ast.Call):
                    continue
                sq = self.qual(sub.func) or ""
                capability = self._capability(sq)
                if capability is None or capability[0] not in ("process", "dynamic-code"):
                    continue
                where = "a metaclass" if is_meta else "a class hook"
                self.add(
                    "class-hook-exec",
                    sub,
                    f"{sq} runs from {where} ({node.name}.{item.name}): it {capability[1]} "
                    "whenever a class is created or used, without a visible call",
                    category=capability[0],
                )

    def _decorators(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        runs_code = [d for d in node.decorator_list if self.qual(d) in DYNAMIC_CALLS]
        if not runs_code:
            return
        payload = ""
        for d in node.decorator_list:
            if isinstance(d, ast.Lambda):
                folded = self.folder.fold(d.body)
                text = as_text(folded.value) if folded is not None else None
                if text is not None:
                    payload = text
        shown = f" ({payload if len(payload) <= 60 else payload[:57] + '...'!r})" if payload else ""
        self.add(
            "decorator-exec",
            runs_code[0],
            f"uses {self.qual(runs_code[0])} as a decorator on {node.name}: it runs code"
            f"{shown} without a visible call",
        )
        if payload:
            self._nested(payload, "python", node, "code run by a decorator")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._decorators(node)
        if node.name in ("__reduce__", "__reduce_ex__", "__setstate__"):
            dangerous = False
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Attribute, ast.Name)):
                    q = self.qual(sub)
                    if q and (
                        q in SHELL_CALLS
                        or q in SUBPROCESS_CALLS
                        or q in ("eval", "exec", "__import__", "compile")
                        or q in DELETE_CALLS
                    ):
                        dangerous = True
            if dangerous:
                self.add(
                    "pickle-payload",
                    node,
                    f"defines {node.name} that runs a command when unpickled",
                )
            elif node.name != "__setstate__":
                self.add("pickle-reduce", node, f"customises unpickling ({node.name})")

    # -- rules: calls -----------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        q = self.qual(node.func)
        self._call_extras(node, q)
        if q is None:
            self._unresolved_call(node)
            self._fold_args_rules(node)
            return
        self._indirect_capability(node, q)
        if q in SHELL_CALLS or (
            q.startswith("ctypes.CDLL()")
            and q.rsplit(".", 1)[-1] in ("system", "popen", "execve", "execv", "execl")
        ):
            self._shell_call(node, q)
        elif q in SUBPROCESS_CALLS or EXEC_CALLS.match(q):
            self._argv_call(node, q)
        elif q in ("get_ipython().run_line_magic", "get_ipython().magic"):
            self._line_magic(node)
        elif q == "get_ipython().run_cell_magic":
            self._cell_magic(node)
        handler = _PATH_HANDLERS.get(q)
        if handler is None and q.startswith("pathlib.Path()."):
            handler = PythonAnalyzer._path_method
        if handler is None:
            handler = _CALL_HANDLERS.get(q)
        if handler is not None:
            handler(self, node, q)
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITE_METHODS | READ_METHODS
            and not q.startswith("pathlib.Path()")
        ):
            self._unresolved_call(node)
        self._fold_args_rules(node)

    # -- calls dispatched by name (tables after the class) ----------------------------------
    def _method_target(self, node: ast.Call, q: str, keyword: str) -> ast.expr | None:
        """`Path(p).unlink()` acts on `p`; `os.remove(p)` on its first argument."""
        if q.startswith("pathlib.Path()") and isinstance(node.func, ast.Attribute):
            return node.func.value
        return self._arg(node, 0, keyword)

    def _delete_call(self, node: ast.Call, q: str) -> None:
        path_node = self._method_target(node, q, "path")
        text = self._path_text(path_node)
        recursive = DELETE_CALLS[q]
        listing = (
            self._loop_listing(path_node)
            if path_node is not None
            and (text is None or COMPUTED in text or isinstance(path_node, ast.Name))
            else None
        )
        if listing is not None and path_node is not None:
            self._delete_in_loop(node, q, listing, path_node, recursive)
        else:
            self.add_verdict("delete-path", paths.delete_verdict(text, recursive), node, q)

    def _move_call(self, node: ast.Call, q: str) -> None:
        src = self._method_target(node, q, "src")
        dst = self._arg(node, 0 if q.startswith("pathlib.Path()") else 1, "dst")
        self.add_verdict("delete-path", paths.delete_verdict(self._path_text(src), True), node, q)
        self.add_verdict("write-path", paths.write_verdict(self._path_text(dst)), node, q)

    def _copy_call(self, node: ast.Call, q: str) -> None:
        src = self._arg(node, 0, "src")
        dst = self._arg(node, 1, "dst")
        self.add_verdict("read-secret", paths.read_verdict(self._path_text(src)), node, q)
        self.add_verdict("write-path", paths.write_verdict(self._path_text(dst)), node, q)

    def _perm_call(self, node: ast.Call, q: str) -> None:
        text = self._path_text(self._method_target(node, q, "path"))
        if text is not None and paths.locate(paths.normalize(text)) in (
            paths.ROOT,
            paths.HOME,
            paths.SYSTEM,
            paths.HOME_SUB,
        ):
            self.add("change-perms", node, f"{q} changes permissions outside the work dir ({text})")

    def _open_call(self, node: ast.Call, q: str) -> None:
        self._open(node, q, self._arg(node, 0, "file"))

    def _marshal(self, node: ast.Call, q: str) -> None:
        self.add("marshal", node, f"{q} builds code objects from bytes")

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

    def _privilege(self, node: ast.Call, q: str) -> None:
        self.add("privilege", node, f"{q} changes process privileges")

    def _getenv(self, node: ast.Call, q: str) -> None:
        key = self.folder.fold_str(self._arg(node, 0, "key"))
        if key is not None and is_secret_name(key):
            self._secret_read(node, key)

    def _crontab(self, node: ast.Call, q: str) -> None:
        self.add("cron", node, "edits the user's crontab")

    def _credential_store(self, node: ast.Call, q: str) -> None:
        self.add("credential-store", node, f"{q} reads stored passwords or cookies")

    def _run_script(self, node: ast.Call, q: str) -> None:
        self.add("run-script", node, f"{q} runs another script")

    # -- capability by indirection ----------------------------------------------------------
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

    def _indirect_capability(self, node: ast.Call, q: str) -> None:
        """`importlib.import_module("os").system("ls")` is as capable as a plain call, and it
        hides which capability it uses: rate what is reached, not how harmless the literal
        argument looks."""
        capability = self._capability(q)
        if capability is None:
            return
        how = self._indirection(node.func)
        if how is None:
            return
        category, does = capability
        shown = ""
        first = self._arg(node, 0, "args")
        if first is not None:
            text, _ = self.folder.fold_text(first)
            if text is None:
                folded = self.folder.fold(first)
                if folded is not None and isinstance(folded.value, (list, tuple)):
                    text = _join_argv([str(v) for v in folded.value])
            if text is not None:
                text = text.replace(COMPUTED, "…")
                shown = f" with {text if len(text) <= 60 else text[:57] + '...'!r}"
        self.add(
            "indirect-capability",
            node,
            f"calls {q}{shown} reached through {how}: hidden access to code that {does}",
            category=category,
        )

    # -- calls with extra meaning -----------------------------------------------------------
    def _call_extras(self, node: ast.Call, q: str | None) -> None:
        func = node.func
        attr = func.attr if isinstance(func, ast.Attribute) else ""
        for kw in node.keywords:
            if kw.arg in ("LD_PRELOAD", "LD_AUDIT"):
                self._preload(kw, kw.arg)
        if attr in ("query", "eval") and (q is None or not q.startswith(("numpy.", "jax."))):
            self._query(node, q or f"….{attr}")
        if q in PIP_MAIN:
            self._pip_main(node, q)
        if q in (
            "jupyter_core.paths.jupyter_runtime_dir",
            "jupyter_client.find_connection_file",
            "jupyter_client.connect.find_connection_file",
        ):
            self.add(
                "kernel-keys",
                node,
                f"{q} locates Jupyter kernel connection files (their keys let anyone run code in "
                "the kernels)",
            )
        if attr in ("extractall", "extract") or q == "shutil.unpack_archive":
            self._extract(node, q or f"….{attr}", attr)

    def _preload(self, node: ast.AST, name: str) -> None:
        self.add(
            "preload",
            node,
            f"sets {name}: a library of its choosing is loaded into every program started "
            "from here",
        )

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

    def _extract(self, node: ast.Call, q: str, attr: str) -> None:
        index, keyword = (1, "extract_dir") if q == "shutil.unpack_archive" else (0, "path")
        text = self._path_text(self._arg(node, index, keyword))
        if text is None:
            return
        flt = next((k.value for k in node.keywords if k.arg == "filter"), None)
        if flt is not None and self.folder.fold_str(flt) in ("data", "tar"):
            return  # the extraction filter refuses members that leave the target folder
        where = paths.locate(paths.normalize(text))
        if where in (paths.ROOT, paths.SYSTEM):
            self.add(
                "extract-system",
                node,
                f"{q} unpacks an archive over {text} (replaces system files)",
            )
        elif where in (paths.HOME, paths.HOME_SUB):
            self.add(
                "extract-home",
                node,
                f"{q} unpacks an archive into {text} (its members can replace start-up files "
                "and keys in the home directory)",
                severity="high" if where == paths.HOME else "medium",
            )

    def _socket_fd(self, node: ast.Call) -> bool:
        for a in node.args:
            if isinstance(a, ast.Call) and isinstance(a.func, ast.Attribute):
                if a.func.attr == "fileno" and (
                    (self.qual(a.func.value) or "").startswith("socket.")
                    or "network" in self.origins(a.func.value)
                ):
                    return True
        return False

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

    def _delete_in_loop(
        self, node: ast.Call, display: str, listed: str, var: ast.AST, recursive: bool
    ) -> None:
        """A delete call applied to each entry a listing of a folder yields."""
        base = listed.replace(COMPUTED, "…")
        base = re.sub(r"(/\*\*?)+(/[^/]*)?$", "", base) or "/"
        # Each entry is deleted on its own: judge one entry of the folder (the work dir's own
        # files are the code's business; the home directory's or /etc's are not).
        del recursive
        verdict = paths.delete_verdict(f"{base.rstrip('/')}/*" if base != "~" else "~/*", False)
        if verdict.severity == paths.SEVERITY_NONE:
            return
        name = var.id if isinstance(var, ast.Name) else ""
        source = self.b.sources.get(name) if name else None
        pattern = (
            self.folder.fold_str(source.args[0])
            if isinstance(source, ast.Call)
            and source.args
            and isinstance(source.func, ast.Attribute)
            and source.func.attr in ("glob", "rglob")
            else None
        )
        matched = f" matching {pattern!r}" if pattern else ""
        self.add(
            "delete-loop",
            node,
            f"deletes every file{matched} the loop finds under {base} ({display} on each one)",
            severity=verdict.severity,
            category=verdict.category,
        )

    def _fold_args_rules(self, node: ast.Call) -> None:
        """Folded (non-literal) strings passed anywhere: hidden paths and decoded payloads."""
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Constant):
                continue
            folded = self.folder.fold(arg)
            if folded is None:
                continue
            text = as_text(folded.value)
            if text is None:
                continue
            verdict = paths.mention_verdict(text)
            if verdict is not None:
                self.add(
                    "mention",
                    arg,
                    verdict.reason,
                    severity=verdict.severity,
                    category=verdict.category,
                )

    def _unresolved_call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        attr = func.attr
        if (
            attr in ("system", "popen", "getoutput", "check_output", "Popen")
            and node.args
            and self.qual(func) is None
        ):
            text, decoded = self.folder.fold_text(node.args[0])
            if text is not None:
                self._command_findings(node, f"….{attr}", text, decoded, True)
            return
        if attr in ("unlink", "rmdir", "rmtree") and isinstance(func.value, ast.Name):
            listed = self._listed_dir(func.value.id)
            if listed is not None:
                self._delete_in_loop(node, f".{attr}", listed, func.value, attr == "rmtree")
            return
        if attr in WRITE_METHODS:
            target = self._arg(node, 0, "path")
            if attr in ("touch", "write_text", "write_bytes"):
                target = func.value
            text = self._path_text(target)
            self.add_verdict("write-path", paths.write_verdict(text), node, f".{attr}")
        elif attr in READ_METHODS:
            self.add_verdict(
                "read-secret", paths.read_verdict(self._path_text(func.value)), node, f".{attr}"
            )

    # -- processes --------------------------------------------------------------------------
    def _command_findings(
        self, node: ast.Call, display: str, command: str | None, decoded: bool, argv_known: bool
    ) -> None:
        if command is None or command.strip() in ("", COMPUTED):
            self.add("computed-command", node, f"{display} runs a computed command")
            return
        inner = self.bash_scan(command, self.line(node), self.depth + 1)
        shown = command if len(command) <= 80 else command[:77] + "..."
        shown = shown.replace(COMPUTED, "…")
        severity = "low"
        reason = ""
        first = command.split()[0] if command.split() else ""
        if COMPUTED in first:
            severity, reason = "high", "the program name is computed"
        if decoded:
            severity, reason = "high", "the command was hidden by encoding"
        top: Finding | None = None
        for f in inner:
            if top is None or severity_rank(f.severity) > severity_rank(top.severity):
                top = f
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

    def _loads(self, name: str) -> list[ast.Name]:
        """Every place `name` is read in the module."""
        if self._name_loads is None:
            table: dict[str, list[ast.Name]] = {}
            for sub in ast.walk(self.tree):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                    table.setdefault(sub.id, []).append(sub)
            self._name_loads = table
        return self._name_loads.get(name, [])

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

    def _line_magic(self, node: ast.Call) -> None:
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
            self.add("run-script", node, "%run runs another script")
        elif name in ("load", "loadpy"):
            if line_text and re.match(
                r"https?://", line_text.split()[-1] if line_text.split() else ""
            ):
                self.add("download", node, "%load downloads code from the network")
        elif name in ("pip", "conda", "mamba"):
            self.findings.extend(
                f for f in self.bash_scan(f"pip {line_text or ''}", self.line(node), self.depth + 1)
            )

    def _cell_magic(self, node: ast.Call) -> None:
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
            if not inner:
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

    # -- files ------------------------------------------------------------------------------
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

    def _open(self, node: ast.Call, q: str, path_node: ast.AST | None) -> None:
        text = self._path_text(path_node)
        mode = self._open_mode(node)
        if any(c in mode for c in "wax+?"):
            self.add_verdict(
                "write-path",
                paths.write_verdict(text),
                node,
                f"{q}(..., {mode!r})" if mode != "?" else q,
            )
        if "w" not in mode and "a" not in mode and "x" not in mode:
            self.add_verdict("read-secret", paths.read_verdict(text), node, q)

    def _path_method(self, node: ast.Call, q: str) -> None:
        method = q.rsplit(".", 1)[-1]
        if not isinstance(node.func, ast.Attribute):
            return
        text = self._path_text(node.func.value)
        if method in ("read_text", "read_bytes"):
            self.add_verdict("read-secret", paths.read_verdict(text), node, f"Path.{method}")
        elif method in ("write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "mkdir"):
            if method != "mkdir":
                self.add_verdict("write-path", paths.write_verdict(text), node, f"Path.{method}")
        elif method == "open":
            self._open_path_method(node, text)
        elif method in ("glob", "rglob", "iterdir"):
            self.add_verdict("read-secret", paths.read_verdict(text), node, f"Path.{method}")

    def _open_path_method(self, node: ast.Call, text: str | None) -> None:
        mode_node = self._arg(node, 0, "mode")
        mode = "r"
        if mode_node is not None:
            folded = self.folder.fold(mode_node)
            mode = str(folded.value) if folded is not None else "?"
        if any(c in mode for c in "wax+?"):
            self.add_verdict("write-path", paths.write_verdict(text), node, "Path.open")
        else:
            self.add_verdict("read-secret", paths.read_verdict(text), node, "Path.open")

    # -- dynamic code -----------------------------------------------------------------------
    def _dynamic(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "source")
        if arg is None:
            arg = self._arg(node, 0, "code") or self._arg(node, 0, "expression")
        if arg is None:
            self.add("dynamic-code", node, f"{q} runs code")
            return
        if isinstance(arg, ast.Call) and self.qual(arg.func) == "compile":
            return
        if isinstance(arg, ast.Name) and (self.qual(arg) or "").startswith("compile("):
            return
        folded = self.folder.fold(arg)
        text = as_text(folded.value) if folded is not None else None
        language = "ipython" if q.startswith("get_ipython()") else "python"
        if text is not None and folded is not None:
            if folded.decoded:
                self.add("decoded-exec", node, f"{q} runs a decoded payload")
            elif self._assembled(arg):
                shown = text if len(text) <= 60 else text[:57] + "..."
                self.add(
                    "built-exec",
                    node,
                    f"{q} runs code assembled at run time ({shown!r}): what it runs is hidden "
                    "from a reader",
                )
            else:
                self.add("literal-exec", node, f"{q} runs literal code")
            self._nested(text, language, node, f"code run by {q}")
            return
        origins = self.origins(arg)
        if "network" in origins:
            self.add("download-exec", node, f"{q} runs code downloaded from the network")
        elif "decoded" in origins:
            self.add("decoded-exec", node, f"{q} runs a decoded payload")
        else:
            self.add("computed-exec", node, f"{q} runs computed code")

    def _assembled(self, node: ast.AST, depth: int = 0) -> bool:
        """Whether a string is put together at run time (format, join, +, f-string, chr)."""
        if isinstance(node, ast.Constant) or depth > 4:
            return False
        if isinstance(node, ast.Name):
            bound = self.binding(node.id)
            return bound is not None and self._assembled(bound, depth + 1)
        return isinstance(node, (ast.Call, ast.BinOp, ast.JoinedStr, ast.Subscript))

    def _dynamic_import(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "name")
        folded = self.folder.fold(arg) if arg is not None else None
        name = as_text(folded.value) if folded is not None else None
        if name is None:
            self.add("computed-import", node, f"{q} imports a module whose name is computed")
            return
        top = name.split(".")[0]
        if not isinstance(arg, ast.Constant) and top in RISKY_MODULES:
            self.add(
                "hidden-import",
                node,
                f"{q} builds the module name {name!r} at run time",
                severity="high" if folded is not None and folded.decoded else "medium",
            )
        if top == "ctypes":
            self._import_rule(name, node)

    def _getattr(self, node: ast.Call, q: str) -> None:
        if len(node.args) < 2:
            return
        target, name_node = node.args[0], node.args[1]
        folded = self.folder.fold(name_node)
        name = as_text(folded.value) if folded is not None else None
        base = self.qual(target)
        if name is None:
            if q == "hasattr":
                return
            plain_local = (
                isinstance(target, ast.Name)
                and self.b.bound(target.id)
                and (target.id not in self.b.imports)
                and base is None
            )
            harmless_module = (
                base is not None
                and base.split(".")[0] not in RISKY_MODULES
                and base.split(".")[0] not in ("<globals>", "builtins")
                and self._indirection(target) is None
                and any(base.split(".")[0] == t for t in self.b.import_tops)
            )
            if (
                plain_local
                or harmless_module
                or (isinstance(target, ast.Name) and target.id == "self")
            ):
                self.add(
                    "computed-attribute",
                    node,
                    f"{q} on {base or 'a local value'} with a computed attribute name",
                    severity="low",
                )
            else:
                self.add(
                    "computed-attribute",
                    node,
                    f"{q} on {base or 'an object'} with a computed attribute name",
                )
            return
        if not isinstance(name_node, ast.Constant) and (name in RISKY_ATTRS or name in DUNDERS):
            self.add(
                "hidden-attribute", node, f"{q} builds the attribute name {name!r} at run time"
            )
        elif name in DUNDERS and name not in ("__mro__", "__bases__", "__base__"):
            severity, reason = DUNDERS[name]
            self.add(rules.introspection_rule(name), node, f"{reason} ({name})", severity=severity)

    def _unpickle(self, node: ast.Call, q: str) -> None:
        if q == "yaml.load":
            loader = self._arg(node, 1, "Loader")
            lq = self.qual(loader) if loader is not None else None
            if lq is not None and lq.rsplit(".", 1)[-1] in (
                "SafeLoader",
                "CSafeLoader",
                "BaseLoader",
            ):
                return
            self.add(
                "yaml-unsafe", node, "yaml.load without SafeLoader builds arbitrary Python objects"
            )
            return
        if q in YAML_UNSAFE:
            self.add("yaml-unsafe", node, f"{q} builds arbitrary objects")
            return
        if q == "numpy.load":
            allow = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
            folded_allow = self.folder.fold(allow) if allow is not None else None
            if folded_allow is None or not folded_allow.value:
                return
        if q == "torch.load":
            weights = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
            folded_weights = self.folder.fold(weights) if weights is not None else None
            if folded_weights is not None and folded_weights.value is True:
                return
            if folded_weights is not None and folded_weights.value is False:
                self.add(
                    "unpickle-unsafe",
                    node,
                    "torch.load with weights_only=False unpickles arbitrary objects: a model "
                    "file can run any code when it is loaded",
                )
        arg = self._arg(node, 0, "data")
        if arg is None:
            arg = self._arg(node, 0, "file")
        if isinstance(arg, ast.Call) and self.qual(arg.func) in ROUND_TRIP_DUMPS:
            return  # `pickle.loads(pickle.dumps(obj))` copies an object already in memory
        url = self.folder.fold_str(arg) if arg is not None else None
        if url is not None and re.match(r"^(https?|ftp|s3|gs)://", url):
            self.add(
                "pickle-network",
                node,
                f"{q} unpickles a file fetched from {url}: whoever serves it can run any code here",
            )
            return
        if arg is None:
            self.add("unpickle", node, f"{q} unpickles data of unknown origin")
            return
        folded = self.folder.fold(arg)
        if folded is not None and isinstance(folded.value, (bytes, bytearray, str)):
            raw = (
                folded.value
                if isinstance(folded.value, (bytes, bytearray))
                else folded.value.encode("utf-8", "replace")
            )
            if folded.decoded or re.search(
                rb"(posix|\bos\b|nt|subprocess|builtins|__builtin__)\s*\n?\s*(system|popen|"
                rb"eval|exec|getattr|check_output|Popen|run)|c?os\nsystem|\bsystem\b|\beval\b",
                bytes(raw),
            ):
                self.add("pickle-payload", node, f"{q} unpickles a payload that runs a command")
                return
            if isinstance(folded.value, str) and q not in (
                "pickle.loads",
                "dill.loads",
                "cloudpickle.loads",
                "marshal.loads",
            ):
                text = folded.value
                where = paths.locate(paths.normalize(text))
                if where in (paths.WORK, paths.TMP):
                    self.add(
                        "unpickle-file",
                        node,
                        f"{q} loads a pickle file ({text}); only load files you trust",
                    )
                    return
            self.add("unpickle", node, f"{q} unpickles literal bytes")
            return
        origins = self.origins(arg)
        if "network" in origins:
            self.add("pickle-network", node, f"{q} unpickles bytes received from the network")
            return
        if "decoded" in origins:
            self.add("pickle-payload", node, f"{q} unpickles a decoded payload")
            return
        opened = arg
        if isinstance(arg, ast.Name) and arg.id in self.b.sources:
            opened = self.b.sources[arg.id]
        if isinstance(opened, ast.Call) and self.qual(opened.func) in OPEN_CALLS:
            opened_path = self._path_text(self._arg(opened, 0, "file"))
            if opened_path is not None and paths.locate(paths.normalize(opened_path)) in (
                paths.WORK,
                paths.TMP,
            ):
                self.add(
                    "unpickle-file",
                    node,
                    f"{q} loads a pickle file ({opened_path}); only load files you trust",
                )
                return
        if "file" in origins or (isinstance(arg, ast.Name) and self.binding(arg.id) is None):
            self.add(
                "unpickle-file",
                node,
                f"{q} unpickles data; only load data you trust",
                severity="low" if "file" in origins else "medium",
            )
            return
        self.add("unpickle", node, f"{q} unpickles data of unknown origin")

    # -- network, processes, memory ---------------------------------------------------------
    def _network(self, node: ast.Call, q: str) -> None:
        url_node = self._arg(node, 0, "url")
        url, _ = self.folder.fold_text(url_node) if url_node is not None else (None, False)
        host = "a network host"
        if url:
            m = re.match(r"^[a-z][a-z0-9+.-]*://([^/:?#]+)", url)
            if m:
                host = m.group(1).replace(COMPUTED, "…")
        if isinstance(url_node, (ast.Tuple,)) or q.startswith("socket."):
            folded = self.folder.fold(url_node) if url_node is not None else None
            if folded is not None and isinstance(folded.value, tuple) and folded.value:
                host = (
                    f"{folded.value[0]}:{folded.value[1]}"
                    if len(folded.value) > 1
                    else str(folded.value[0])
                )
        if host.startswith(("127.", "localhost")) and q in NETWORK_FETCH:
            self.add("local-fetch", node, f"{q} talks to {host}")
            return
        sends = (
            q in NETWORK_SEND
            or any(k.arg in ("data", "json", "files") for k in node.keywords)
            or (
                q in ("requests.request", "httpx.request")
                and self.folder.fold_str(self._arg(node, 0, "method"))
                in ("POST", "PUT", "PATCH", "post", "put", "patch")
            )
        )
        if q in ("socket.socket", "socket.fromfd"):
            self.add("raw-socket", node, "opens a raw network socket")
        elif q.endswith((".bind", ".listen")) or q.startswith(("socketserver.", "http.server.")):
            self.add("listen", node, f"{q} listens for network connections")
        elif sends and self._literal_payload(node):
            self.add("upload-literal", node, f"{q} sends fixed data written in the code to {host}")
        elif sends:
            self.add("upload", node, f"{q} sends data to {host}")
        else:
            self.add("download", node, f"{q} fetches from {host}")

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

    def _allocation(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "shape")
        folded = self.folder.fold(arg) if arg is not None else None
        if folded is None:
            return
        value = folded.value
        count: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            count = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            count = 1
            for v in value:
                count *= v
        elif q in ("numpy.random.rand",) and all(
            isinstance(self.folder.fold(a), Folded) for a in node.args
        ):
            count = 1
            for a in node.args:
                f = self.folder.fold(a)
                count *= int(f.value) if f is not None else 1
        if count is None:
            return
        size = count if q in ("bytearray", "bytes", "os.urandom") else count * 8
        if size >= BIG_BYTES:
            self.add(
                "big-allocation", node, f"{q} allocates about {size / 1024**3:.0f} GB in memory"
            )

    def _decoder(self, node: ast.Call, q: str) -> None:
        folded = self.folder.fold(node)
        if folded is None:
            return
        text = as_text(folded.value)
        if text is None or not all(c.isprintable() or c in "\n\r\t" for c in text):
            return
        if not _looks_like_code(text):
            return
        shown = text if len(text) <= 60 else text[:57] + "..."
        if self._feeds_runner(node):
            return  # the exec/system call that runs it reports the payload itself
        self.add("decoded-payload", node, f"{q} decodes a hidden payload: {shown!r}")
        inner: list[Finding] = []
        try:
            ast.parse(text)
            inner = self.code_scan(text, "python", self.line(node), self.depth + 1)
        except (SyntaxError, ValueError):
            inner = self.bash_scan(text, self.line(node), self.depth + 1)
        for f in inner:
            if severity_rank(f.severity) >= severity_rank("high"):
                self.findings.append(
                    Finding(f.rule, f.severity, f.category, f.line, f"hidden payload: {f.message}")
                )

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

    # -- whole-module escalations -----------------------------------------------------------
    def _escalate(self) -> None:
        if self.depth:
            return
        # Introspection used to reach something harmful is an escape, not curiosity.
        harmful = [
            f
            for f in self.findings
            if f.category in ("process", "dynamic-code", "filesystem")
            and severity_rank(f.severity) >= severity_rank("high")
        ]
        escalated: list[Finding] = []
        for f in self.findings:
            if (
                f.category == "introspection"
                and f.severity == "high"
                and harmful
                and f.rule not in ("computed-attribute",)
            ):
                escalated.append(
                    rules.finding(
                        f.rule,
                        f.line,
                        f"{f.message}; used to reach code that runs commands",
                        severity="critical",
                        category=f.category,
                    )
                )
            else:
                escalated.append(f)
        self.findings = escalated


CallHandler = Callable[[PythonAnalyzer, ast.Call, str], None]


def _table(*groups: tuple[Iterable[str], CallHandler]) -> dict[str, CallHandler]:
    """Callee name -> handler; a name in two groups goes to the first, as an elif chain would."""
    table: dict[str, CallHandler] = {}
    for names, handler in groups:
        for name in names:
            table.setdefault(name, handler)
    return table


# Calls on paths: looked up before the `pathlib.Path().<method>` catch-all.
_PATH_HANDLERS = _table(
    (DELETE_CALLS, PythonAnalyzer._delete_call),
    (MOVE_CALLS, PythonAnalyzer._move_call),
    (COPY_CALLS, PythonAnalyzer._copy_call),
    (PERM_CALLS, PythonAnalyzer._perm_call),
    (OPEN_CALLS, PythonAnalyzer._open_call),
)
# Every other call with a rule of its own, looked up after it.
_CALL_HANDLERS = {
    name: handler
    for name, handler in _table(
        (DYNAMIC_CALLS, PythonAnalyzer._dynamic),
        (("__import__", "importlib.import_module"), PythonAnalyzer._dynamic_import),
        (("getattr", "setattr", "delattr", "hasattr"), PythonAnalyzer._getattr),
        ((*PICKLE_CALLS, *YAML_UNSAFE, "yaml.load"), PythonAnalyzer._unpickle),
        (MARSHAL_CALLS, PythonAnalyzer._marshal),
        (
            (*NETWORK_SEND, *NETWORK_FETCH, "socket.socket", "socket.fromfd"),
            PythonAnalyzer._network,
        ),
        (("os.fork", "os.forkpty"), PythonAnalyzer._fork),
        (("os.dup2",), PythonAnalyzer._dup2),
        (("os.kill", "os.killpg"), PythonAnalyzer._kill),
        (
            ("os.setuid", "os.setgid", "os.seteuid", "os.setreuid", "os.chroot"),
            PythonAnalyzer._privilege,
        ),
        (
            (
                "os.getenv",
                "os.environ.get",
                "os.environ.pop",
                "os.getenvb",
                "os.environ.setdefault",
            ),
            PythonAnalyzer._getenv,
        ),
        (
            (
                "bytearray",
                "bytes",
                "os.urandom",
                "numpy.zeros",
                "numpy.ones",
                "numpy.empty",
                "numpy.full",
                "numpy.random.rand",
                "numpy.random.random",
                "numpy.arange",
                "torch.zeros",
                "torch.ones",
                "torch.empty",
                "torch.randn",
            ),
            PythonAnalyzer._allocation,
        ),
        (("crontab.CronTab",), PythonAnalyzer._crontab),
        (
            (
                "keyring.get_password",
                "browser_cookie3.load",
                "browser_cookie3.chrome",
                "browser_cookie3.firefox",
            ),
            PythonAnalyzer._credential_store,
        ),
        (
            ("runpy.run_path", "runpy.run_module", "get_ipython().run_line_magic.run"),
            PythonAnalyzer._run_script,
        ),
        ((*_DECODERS, "codecs.decode"), PythonAnalyzer._decoder),
    ).items()
    # the elif chain this replaces tested the pathlib catch-all first
    if name not in _PATH_HANDLERS and not name.startswith("pathlib.Path().")
}


def _alloc_size(a: object, b: object) -> int | None:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, bytearray)) and isinstance(n, int):
            return len(seq) * n
        if isinstance(seq, (list, tuple)) and isinstance(n, int):
            return len(seq) * n * 8
    return None


def _has_exit(loop: ast.While | ast.For) -> bool:
    for sub in _walk_body(loop):
        if isinstance(sub, (ast.Break, ast.Return, ast.Raise)):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else (func.id if isinstance(func, ast.Name) else "")
            )
            if name in ("exit", "_exit", "quit"):
                return True
    return False


def _walk_body(loop: ast.While | ast.For) -> Iterator[ast.AST]:
    """Nodes of a loop body, not descending into nested loops' breaks or function bodies."""
    stack: list[ast.AST] = list(loop.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.While, ast.For, ast.AsyncFor)):
                # A break in a nested loop does not end this one; still look for writes.
                for inner in ast.walk(child):
                    if not isinstance(inner, (ast.Break,)):
                        yield inner
                continue
            stack.append(child)


def _join_argv(parts: list[str]) -> str:
    import shlex

    out = []
    for p in parts:
        if p == COMPUTED or re.fullmatch(r"[\w@%+=:,./~${}-]+", p):
            out.append(p)
        else:
            out.append(shlex.quote(p))
    return " ".join(out)
