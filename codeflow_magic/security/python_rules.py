"""Python rules: what a parsed module would do, rated by harm.

The analysis is one pass over the tree after a binding pre-pass. Names are resolved to dotted
names through imports and plain assignments (`import os as o`, `s = os.system`,
`m = __import__('o' + 's')`, `getattr(os, 'sys' + 'tem')`, `sys.modules['os']`), values are
folded (`fold.Folder`), and each call is matched against tables of what the callee does. The
shell commands a call runs are judged by the Bash rules, so `os.system("rm -rf ~")` and
`!rm -rf ~` get the same verdict.

This module only detects: findings name a rule id of the catalogue (`rules.py`), which holds
each rule's severity, category and rationale; graded rules pass the rating they reached.
Calls with a rule of their own are dispatched by callee name (`PROCESS_HANDLERS`,
`PATH_HANDLERS`, `CALL_HANDLERS` in `python_calls`). The analyzer is one line of layers:
`python_core` (resolution) <- `python_shell` <- `python_files` <- `python_calls` <- this
module's visitor; the tables live in `python_tables`.
"""

from __future__ import annotations

import ast

from ..models import Finding, severity_rank
from ..secrets import is_secret_name
from . import paths, rules
from .bash_chains import script_chains
from .fold import as_text
from .python_calls import CALL_HANDLERS, PATH_HANDLERS, CallRules, process_handler
from .python_core import BashScan, CodeScan
from .python_files import FileRules
from .python_tables import (
    BIG_BYTES,
    DELETE_CALLS,
    DUNDERS,
    DYNAMIC_CALLS,
    OPEN_CALLS,
    OUTPUT_CALLS,
    REACHABLE_MODULES,
    READ_METHODS,
    SHELL_CALLS,
    SUBPROCESS_CALLS,
    WAIT_CALLS,
    WRITE_METHODS,
    _alloc_size,
    _canon,
    _has_exit,
    _walk_body,
)

__all__ = ["BashScan", "CodeScan", "PythonAnalyzer"]


class PythonAnalyzer(CallRules):
    """Findings for one parsed module (a cell, a script, or code found inside them)."""

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

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import_rule(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._import_rule(node.module, node)

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
        if "docker.sock" in node.value:
            self._docker_socket(node, node.value)
        verdict = paths.mention_verdict(node.value)
        if verdict is not None:
            self.add_verdict("mention", verdict, node)

    def _docker_socket(self, node: ast.Constant, text: str) -> None:
        """The Docker daemon's socket passed to anything but an existence check."""
        parent = self.parent(node)
        call = self.parent(parent) if isinstance(parent, ast.keyword) else parent
        if isinstance(call, ast.Call):
            q = self.qual(call.func) or ""
            attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            if q in ("os.path.exists", "os.path.isfile", "os.stat", "print") or attr in (
                "exists",
                "is_socket",
            ):
                return
        self.add(
            "docker-socket",
            node,
            f"talks to the Docker daemon through {text}: root on the host (it can start "
            "a privileged container)",
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

    def visit_Call(self, node: ast.Call) -> None:
        """Extras any call can carry, then the callee's own rules, looked up by name in the
        dispatch tables of `python_calls` (process, then path, then every other rule)."""
        q = self.qual(node.func)
        self._call_extras(node, q)
        if q is None:
            self._unresolved_call(node)
            self._fold_args_rules(node)
            return
        self._indirect_capability(node, q)
        process = process_handler(q)
        if process is not None:
            process(self, node, q)
        handler = PATH_HANDLERS.get(q)
        if handler is None and q.startswith("pathlib.Path()."):
            handler = FileRules._path_method
        if handler is None:
            handler = CALL_HANDLERS.get(q)
        if handler is not None:
            handler(self, node, q)
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITE_METHODS | READ_METHODS
            and not q.startswith("pathlib.Path()")
        ):
            self._unresolved_call(node)
        self._fold_args_rules(node)

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
