"""Transactional attempts, inside the kernel: snapshot the user namespace, put it back.

This module travels into the kernel as source (like `grounding`), so it uses the standard
library only and looks pandas and numpy up in `sys.modules` (if the user never imported
them, no object of theirs can be in the namespace). It keeps its state in its own module
object in `sys.modules`, never in the user's namespace.

What a snapshot protects:
- every binding: names an attempt added are removed, names it rebound are rebound;
- contents changed in place, for the types where a copy is cheap or bounded: pandas objects
  (a shallow copy under Copy-on-Write, the only mode since pandas 3; a deep copy within the
  budget before), numpy arrays, and lists, dicts, sets and bytearrays (containers copied
  recursively, leaves shared) within `max_bytes` in all.
What it cannot protect is named instead: objects of other types or over the budget that the
failed code mentions, files it wrote or removed, programs it ran.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

VERSION = 2
"""Bumped when the module changes, so a kernel holding an older copy loads this one."""

UNDO_DEPTH = 10
"""Undo points kept per kernel (oldest dropped first)."""

MAX_NAMED = 20
"""At most this many files or programs are named per attempt."""

_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis))
_CALLABLE_KINDS = ("module", "function", "builtin_function_or_method", "method", "type")
_IPYTHON_CACHE = ("In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_oh", "_ih", "_dh")
_SKIP_PREFIXES = ("/proc/", "/dev/", "/sys/")

_MISSING = object()


class _Over(Exception):
    """The snapshot budget ran out while copying one object."""


class Entry:
    """One name at snapshot time: the object it was bound to, and a copy of its contents."""

    __slots__ = ("kind", "note", "obj", "saved")

    def __init__(self, obj: Any, kind: str, saved: Any = None, note: str = "") -> None:
        self.obj = obj
        self.kind = kind
        """`plain` (the binding is all), `pandas`, `numpy`, `container`, or `other`."""
        self.saved = saved
        self.note = note
        """Why the contents are not protected (for `other`)."""


class Snapshot:
    """The namespace at one moment: names → entries, plus what happened outside it since."""

    def __init__(self, entries: dict[str, Entry], copied_bytes: int) -> None:
        self.entries = entries
        self.copied_bytes = copied_bytes
        self.files: list[str] = []
        self.programs: list[str] = []
        self.after: dict[str, Any] = {}
        """For an undo point: what each changed name was bound to when the request ended."""


_snapshots: dict[str, Snapshot] = {}
_undo: OrderedDict[str, Snapshot] = OrderedDict()
_active: list[Snapshot] = []
_hooked: list[bool] = []


# -- what is in the namespace ----------------------------------------------------------------


_shell: list[Any] = [None]
"""The IPython shell whose namespace this is (None outside IPython), set by `main`."""


def _hidden(ns: MutableMapping[str, Any]) -> Callable[[str], bool]:
    """IPython's own names (`In`, `_oh`, `_i3`, `get_ipython`...) are not the user's."""
    hidden = getattr(_shell[0], "user_ns_hidden", None)
    hidden = hidden if isinstance(hidden, dict) else {}

    def is_hidden(name: str) -> bool:
        if name.startswith("__") or name in _IPYTHON_CACHE:
            return True
        if name[:1] == "_" and (name[1:].isdigit() or (name[2:].isdigit() and name[1] == "i")):
            return True
        if name in hidden and hidden[name] is ns.get(name, _MISSING):
            return True
        return name.startswith("_codeflow")

    return is_hidden


def _user_names(ns: MutableMapping[str, Any]) -> list[str]:
    is_hidden = _hidden(ns)
    return [name for name in list(ns) if isinstance(name, str) and not is_hidden(name)]


def _cow(pd: Any) -> bool:
    """Whether pandas copies on write (always since 3.0; an option before)."""
    try:
        if int(str(pd.__version__).split(".")[0]) >= 3:
            return True
        return bool(pd.get_option("mode.copy_on_write") is True)
    except Exception:
        return False


def _size(obj: Any) -> int:
    try:
        return int(sys.getsizeof(obj))
    except Exception:
        return 64


def _copy_container(obj: Any, budget: list[int], depth: int = 0) -> Any:
    """A copy of nested lists, dicts, sets and bytearrays; other leaves are shared."""
    budget[0] -= _size(obj)
    if budget[0] < 0 or depth > 50:
        raise _Over
    kind = type(obj)
    if kind is list:
        return [_copy_container(x, budget, depth + 1) for x in obj]
    if kind is dict:
        return {k: _copy_container(v, budget, depth + 1) for k, v in obj.items()}
    if kind is set:
        return set(obj)
    if kind is bytearray:
        return bytearray(obj)
    return obj


def _is_container(obj: Any) -> bool:
    return type(obj) in (list, dict, set, bytearray)


def _type_name(obj: Any) -> str:
    return type(obj).__name__


def _entry(obj: Any, budget: list[int], cow: bool | None) -> Entry:
    if isinstance(obj, _IMMUTABLE) or type(obj).__name__ in _CALLABLE_KINDS:
        return Entry(obj, "plain")
    if type(obj) in (tuple, frozenset) and all(isinstance(x, _IMMUTABLE) for x in obj):
        return Entry(obj, "plain")
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
        if cow:
            return Entry(obj, "pandas", obj.copy(deep=False))
        try:
            need = int(obj.memory_usage(deep=False).sum())
        except Exception:
            need = budget[0] + 1
        if need > budget[0]:
            return Entry(obj, "other", note="over the snapshot budget")
        budget[0] -= need
        return Entry(obj, "pandas", obj.copy(deep=True))
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        if obj.nbytes > budget[0] or obj.dtype == object:
            note = "over the snapshot budget" if obj.dtype != object else "an object array"
            return Entry(obj, "other", note=note)
        budget[0] -= int(obj.nbytes)
        return Entry(obj, "numpy", obj.copy())
    if _is_container(obj):
        trial = [budget[0]]
        try:
            saved = _copy_container(obj, trial)
        except (_Over, RecursionError):
            return Entry(obj, "other", note="over the snapshot budget")
        budget[0] = trial[0]
        return Entry(obj, "container", saved)
    return Entry(obj, "other", note="its type is not snapshotted")


# -- files and programs (an audit hook, installed once per process) --------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _path_text(path: Any) -> str:
    try:
        text = os.fsdecode(path) if not isinstance(path, int) else ""
    except Exception:
        return ""
    if not text:
        return ""
    full = os.path.abspath(text)
    if full.startswith(_SKIP_PREFIXES) or full.startswith((sys.prefix, sys.base_prefix)):
        return ""
    cwd = os.getcwd()
    return os.path.relpath(full, cwd) if full.startswith(cwd + os.sep) else full


def _note(items: list[str], text: str) -> None:
    if text and text not in items and len(items) < MAX_NAMED:
        items.append(text)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Only the thread that runs the attempt (the one that took the snapshot) counts: the
    # kernel's and codeflow's own threads (a recorded answer being saved, a history database)
    # write files at any moment, and naming them would make the fix prompt depend on timing.
    if not _active or threading.get_ident() != _thread_of[0]:
        return
    snap = _active[-1]
    try:
        if event == "open":
            path, mode, flags = (*tuple(args), None, None, None)[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes:
                _note(snap.files, _path_text(path) and f"wrote {_path_text(path)}")
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
            _note(snap.files, _path_text(args[0]) and f"removed {_path_text(args[0])}")
        elif event == "os.rename":
            _note(snap.files, _path_text(args[0]) and f"renamed {_path_text(args[0])}")
        elif event == "subprocess.Popen":
            program = args[1] if len(args) > 1 else args[0]
            if isinstance(program, (list, tuple)) and program:
                program = program[0]
            name = os.path.basename(os.fsdecode(program)) if program else "?"
            _note(snap.programs, f"ran the program {name}")
        elif event == "os.system":
            _note(snap.programs, "ran a shell command")
    except Exception:
        pass


_thread_of: list[int] = [0]
"""The thread whose files and programs are noted (the one running the user's code)."""


def _watch(snap: Snapshot) -> None:
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked.append(True)
    del _active[:]
    _thread_of[0] = threading.get_ident()
    _active.append(snap)


def _unwatch() -> None:
    del _active[:]


# -- operations ------------------------------------------------------------------------------


def begin(ns: MutableMapping[str, Any], token: str, max_bytes: int) -> dict[str, Any]:
    """Take a snapshot of the namespace under `token` and start noting files and programs."""
    started = time.perf_counter()
    pd = sys.modules.get("pandas")
    cow = _cow(pd) if pd is not None else None
    budget = [max(0, int(max_bytes))]
    entries = {name: _entry(ns[name], budget, cow) for name in _user_names(ns)}
    snap = Snapshot(entries, max(0, int(max_bytes)) - budget[0])
    _snapshots[token] = snap
    _watch(snap)
    return {
        "names": len(entries),
        "copied_bytes": snap.copied_bytes,
        "unprotected": sorted(n for n, e in entries.items() if e.kind == "other"),
        "seconds": time.perf_counter() - started,
    }


def _pandas_same(obj: Any, saved: Any) -> bool:
    """True when `obj` still holds what `saved` holds (same shape, labels and data buffers)."""
    np = sys.modules.get("numpy")
    try:
        if obj.shape != saved.shape or not obj.index.equals(saved.index):
            return False
        if obj.ndim == 1:
            return bool(
                obj.dtype == saved.dtype
                and np is not None
                and np.shares_memory(obj.to_numpy(), saved.to_numpy())
            )
        if not obj.columns.equals(saved.columns) or len(obj.columns) > 200 or np is None:
            return False
        return all(
            obj.dtypes.iloc[i] == saved.dtypes.iloc[i]
            and np.shares_memory(obj.iloc[:, i].to_numpy(), saved.iloc[:, i].to_numpy())
            for i in range(len(obj.columns))
        )
    except Exception:
        return False


def _restore(ns: MutableMapping[str, Any], name: str, entry: Entry) -> bool:
    """Bind `name` as it was; True when anything had to change."""
    current = ns.get(name, _MISSING)
    changed = current is not entry.obj
    if entry.kind == "pandas":
        if current is entry.obj and _pandas_same(current, entry.saved):
            return False
        pd = sys.modules.get("pandas")
        fresh = entry.saved.copy(deep=not (pd is not None and _cow(pd)))
        entry.obj = fresh  # the object the name is bound to from now on
        ns[name] = fresh
        return True
    if entry.kind == "numpy":
        np = sys.modules["numpy"]
        obj = entry.obj
        if obj.shape == entry.saved.shape and obj.dtype == entry.saved.dtype:
            if not np.array_equal(obj, entry.saved, equal_nan=obj.dtype.kind in "fc"):
                np.copyto(obj, entry.saved)
                changed = True
        else:
            entry.obj = entry.saved.copy()
            changed = True
    elif entry.kind == "container":
        obj = entry.obj
        if obj != entry.saved:
            fresh = _copy_container(entry.saved, [1 << 62])
            if type(obj) is list or type(obj) is bytearray:
                obj[:] = fresh
            else:
                obj.clear()
                obj.update(fresh)
            changed = True
    if ns.get(name, _MISSING) is not entry.obj:
        ns[name] = entry.obj
        changed = True
    return changed


def _mentioned(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _kept(snap: Snapshot, code: str) -> list[str]:
    """What the failed code may have changed that no snapshot covers."""
    mentioned = _mentioned(code)
    kept = [
        f"{name} ({_type_name(entry.obj)}, {entry.note}): changes made to it in place stay"
        for name, entry in snap.entries.items()
        if entry.kind == "other" and name in mentioned
    ]
    return kept + snap.files + snap.programs


def rollback(ns: MutableMapping[str, Any], token: str, code: str = "") -> dict[str, Any]:
    """Put the namespace back as it was at `begin(token)`; name what could not be put back."""
    started = time.perf_counter()
    snap = _snapshots.get(token)
    if snap is None:
        return {"ok": False, "message": "no snapshot (the kernel restarted?)"}
    removed = [name for name in _user_names(ns) if name not in snap.entries]
    for name in removed:
        ns.pop(name, None)
    restored = [name for name, entry in snap.entries.items() if _restore(ns, name, entry)]
    kept = _kept(snap, code)
    snap.files = []
    snap.programs = []
    _watch(snap)
    return {
        "ok": True,
        "restored": restored,
        "removed": removed,
        "kept": kept,
        "seconds": time.perf_counter() - started,
    }


def commit(ns: MutableMapping[str, Any], token: str, undo_key: str = "") -> dict[str, Any]:
    """End the transaction; with `undo_key`, keep what the request changed for `undo`."""
    _unwatch()
    snap = _snapshots.pop(token, None)
    if snap is None or not undo_key:
        return {"ok": snap is not None, "changed": []}
    names = set(_user_names(ns))
    point = Snapshot({}, 0)
    for name in names | set(snap.entries):
        entry = snap.entries.get(name)
        current = ns.get(name, _MISSING)
        if entry is None:
            point.entries[name] = Entry(_MISSING, "added")
        elif current is not entry.obj or (
            entry.kind == "pandas" and not _pandas_same(current, entry.saved)
        ):
            point.entries[name] = entry
        elif entry.kind == "numpy" and not (
            current.shape == entry.saved.shape
            and sys.modules["numpy"].array_equal(current, entry.saved)
        ):
            point.entries[name] = entry
        elif entry.kind == "container" and current != entry.saved:
            point.entries[name] = entry
        else:
            continue
        point.after[name] = current
    _undo[undo_key] = point
    while len(_undo) > UNDO_DEPTH:
        _undo.popitem(last=False)
    return {"ok": True, "changed": sorted(point.entries)}


def undo(ns: MutableMapping[str, Any], undo_key: str) -> dict[str, Any]:
    """Put back the names a request changed, where nothing later changed them again."""
    point = _undo.pop(undo_key, None)
    if point is None:
        return {
            "ok": False,
            "message": "nothing to undo for this request in this kernel "
            f"(the kernel restarted, or it is older than the last {UNDO_DEPTH} requests)",
        }
    restored: list[str] = []
    removed: list[str] = []
    kept: list[str] = []
    for name, entry in sorted(point.entries.items()):
        if ns.get(name, _MISSING) is not point.after[name]:
            kept.append(f"{name}: changed again since; left as it is")
        elif entry.kind == "added":
            ns.pop(name, None)
            removed.append(name)
        elif entry.obj is _MISSING:
            continue
        else:
            _restore(ns, name, entry)
            restored.append(name)
    return {"ok": True, "restored": restored, "removed": removed, "kept": kept}


def discard(token: str) -> dict[str, Any]:
    """Forget a snapshot without restoring anything."""
    _unwatch()
    return {"ok": _snapshots.pop(token, None) is not None}


def run(
    version: int,
    op: str,
    args: str,
    scope: MutableMapping[str, Any],
    write: Callable[[str], Any],
    marker: str,
) -> None:
    """The entry point the flow calls: `args` is JSON; another version asks for the source."""
    if version != VERSION:
        write(marker + '{"missing": true}\n')
        return
    main(op, json.loads(args), scope, write, marker)


def main(
    op: str,
    args: dict[str, Any],
    scope: MutableMapping[str, Any],
    write: Callable[[str], Any],
    marker: str,
) -> None:
    """Run one operation on the user namespace and print its JSON answer on one marked line.

    `scope` is where the snippet runs: the user namespace itself in a kernel, or a private
    scope whose `get_ipython` leads to the shell (the notebook's own shell).
    """
    getter = scope.get("get_ipython")
    shell = getter() if callable(getter) else None
    _shell[0] = shell
    user_ns = getattr(shell, "user_ns", None)
    ns: MutableMapping[str, Any] = user_ns if isinstance(user_ns, dict) else scope
    try:
        if op == "begin":
            answer = begin(ns, str(args["token"]), int(args.get("max_bytes", 0)))
        elif op == "rollback":
            answer = rollback(ns, str(args["token"]), str(args.get("code", "")))
        elif op == "commit":
            answer = commit(ns, str(args["token"]), str(args.get("undo_key", "")))
        elif op == "undo":
            answer = undo(ns, str(args["undo_key"]))
        elif op == "discard":
            answer = discard(str(args["token"]))
        else:
            answer = {"ok": False, "message": f"unknown operation {op!r}"}
    except Exception as exc:  # a snapshot problem must never become the user's error
        answer = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
    write(marker + json.dumps(answer, default=str) + "\n")
