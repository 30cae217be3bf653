"""Binding pre-pass for the Python rules: what each name in a module is bound to.

Resolution (`import os as o`, `s = os.system`) needs every binding before the rules run, so
this pass collects them once; names bound in ways the scanner cannot follow are `opaque`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


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
