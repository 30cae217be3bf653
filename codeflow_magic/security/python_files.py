"""Python rules for files: deleting, moving, copying, opening and extracting paths.

Every path is folded to text and judged by `paths`, so the rating depends on where the path
points (home, system, work dir), not on which function touched it.
"""

from __future__ import annotations

import ast
import re

from . import paths
from .paths import COMPUTED
from .python_shell import ShellRules
from .python_tables import (
    DELETE_CALLS,
    READ_METHODS,
    WRITE_METHODS,
    _file_key,
)


class FileRules(ShellRules):
    """Rules for calls that read, write or delete paths."""

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

    def _archive_member(self, path_node: ast.AST | None, depth: int = 0) -> str | None:
        """The archive listing (`z.namelist()`) a written path is taken from, unless only its
        base name is used."""
        if path_node is None or depth > 2:
            return None
        todo: list[ast.AST] = [path_node]
        while todo:
            current = todo.pop()
            if isinstance(current, ast.Call) and self.qual(current.func) in (
                "os.path.basename",
                "posixpath.basename",
            ):
                continue
            if isinstance(current, ast.Attribute) and current.attr in ("name", "stem"):
                inner = current.value
                if isinstance(inner, ast.Call) and self.qual(inner.func) == "pathlib.Path":
                    continue
            if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
                source = self._loop_iter(current)
                if (
                    isinstance(source, ast.Call)
                    and isinstance(source.func, ast.Attribute)
                    and source.func.attr in ("namelist", "getnames", "getmembers", "infolist")
                ):
                    return ast.unparse(source)
                bound = self.binding(current.id)
                if bound is not None and bound is not path_node:
                    found = self._archive_member(bound, depth + 1)
                    if found is not None:
                        return found
            todo.extend(ast.iter_child_nodes(current))
        return None

    def _archive_write(self, node: ast.Call, path_node: ast.AST | None) -> None:
        listing = self._archive_member(path_node)
        if listing is not None:
            self.add(
                "archive-paths",
                node,
                f"writes archive members to the paths the archive names ({listing}): a member "
                "named ../x escapes the folder",
            )

    def _open(self, node: ast.Call, q: str, path_node: ast.AST | None) -> None:
        text = self._path_text(path_node)
        mode = self._open_mode(node)
        if any(c in mode for c in "wax+"):
            self._archive_write(node, path_node)
            if text is not None and paths.normalize(text).startswith("/proc/sys/kernel/"):
                self.add(
                    "impair-defenses",
                    node,
                    f"{q} writes the kernel setting {text}: turns off what protects the machine",
                )
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
                self._archive_write(node, node.func.value)
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

    def _extract(self, node: ast.Call, q: str, attr: str) -> None:
        index, keyword = (1, "extract_dir") if q == "shutil.unpack_archive" else (0, "path")
        text = self._path_text(self._arg(node, index, keyword))
        flt = next((k.value for k in node.keywords if k.arg == "filter"), None)
        if flt is not None and self.folder.fold_str(flt) in ("data", "tar"):
            return  # the extraction filter refuses members that leave the target folder
        if attr == "extractall" and flt is None:
            self._downloaded_tar(node)
        if text is None:
            return
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

    def _downloaded_tar(self, node: ast.Call) -> None:
        """`tarfile.open(f).extractall()` with no filter, where f came from the network."""
        if not isinstance(node.func, ast.Attribute):
            return
        receiver: ast.AST | None = node.func.value
        if isinstance(receiver, ast.Name):
            receiver = self.b.sources.get(receiver.id) or self.binding(receiver.id)
        if not isinstance(receiver, ast.Call) or self.qual(receiver.func) != "tarfile.open":
            return
        source = self._arg(receiver, 0, "name")
        fileobj = next((k.value for k in receiver.keywords if k.arg == "fileobj"), None)
        where: str | None = None
        if source is not None:
            name = self.folder.fold_str(source)
            host = self._downloads().get(_file_key(name)) if name is not None else None
            if host is not None:
                where = f"{name}, downloaded from {host}"
        for value in (source, fileobj):
            if where is None and value is not None:
                host = self._fetch_host(value)
                if host is not None:
                    where = f"an archive downloaded from {host}"
        if where is not None:
            self.add(
                "archive-paths",
                node,
                f"extractall unpacks {where} with no filter=: writes archive members to the "
                "paths the archive names, and ../ escapes the folder",
            )

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
