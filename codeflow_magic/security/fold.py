"""Constant folding: what a Python expression evaluates to, when it can be known statically.

Obfuscated code hides the command or the module name behind concatenation, `"".join`, format
strings, `chr` chains or encodings (base64, hex, rot13, zlib). Folding evaluates exactly those
pure operations on literals (never calling anything the code defines) so rules can match the
real value. A value produced by a decoding step is marked `decoded`: hiding code that way is
itself a signal.

`fold_text` is the lenient variant used for commands and paths: unknown parts become the
`${COMPUTED}` placeholder, so `f"rm -rf {target}"` still shows it deletes something.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import gzip
import lzma
import posixpath
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .paths import COMPUTED

MAX_TEXT = 1_000_000
"""Folded strings longer than this are given up on (no scanning of megabyte literals)."""
MAX_ITEMS = 10_000
MAX_DEPTH = 40


class PathStr(str):
    """A string that came from a `pathlib` object, so `/` joins paths."""

    __slots__ = ()


@dataclass(frozen=True)
class Folded:
    value: Any
    decoded: bool = False


_DECODERS: dict[str, Callable[..., Any]] = {
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.decodebytes": base64.decodebytes,
    "base64.decodestring": base64.decodebytes,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.a85decode": base64.a85decode,
    "base64.b85decode": base64.b85decode,
    "binascii.unhexlify": binascii.unhexlify,
    "binascii.a2b_hex": binascii.a2b_hex,
    "binascii.a2b_base64": binascii.a2b_base64,
    "bytes.fromhex": bytes.fromhex,
    "bytearray.fromhex": bytes.fromhex,
    "zlib.decompress": zlib.decompress,
    "gzip.decompress": gzip.decompress,
    "bz2.decompress": bz2.decompress,
    "lzma.decompress": lzma.decompress,
}
_ENCODERS: dict[str, Callable[..., Any]] = {
    "base64.b64encode": base64.b64encode,
    "base64.b32encode": base64.b32encode,
    "base64.b16encode": base64.b16encode,
    "binascii.hexlify": binascii.hexlify,
    "zlib.compress": zlib.compress,
    "gzip.compress": gzip.compress,
    "bz2.compress": bz2.compress,
    "lzma.compress": lzma.compress,
}
_STR_METHODS = frozenset(
    {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "title",
        "capitalize",
        "swapcase",
        "casefold",
        "removeprefix",
        "removesuffix",
        "zfill",
        "center",
        "ljust",
        "rjust",
        "expandtabs",
        "split",
        "rsplit",
        "splitlines",
        "hex",
        "translate",
    }
)
_PATH_FUNCS = frozenset(
    {"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"}
)
_HOME_VARS = frozenset({"HOME", "USERPROFILE"})


def _small(value: Any) -> bool:
    if isinstance(value, (str, bytes, list, tuple)):
        return len(value) <= MAX_TEXT
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() <= 4096
    return True


class Folder:
    """Folds expressions of one parsed module.

    `qualname(node)` resolves a callee to a dotted name through the module's aliases;
    `binding(name)` gives the single expression a name was assigned (None when the name is
    bound more than once or in a way that is not a plain assignment).
    """

    def __init__(
        self,
        qualname: Callable[[ast.expr], str | None],
        binding: Callable[[str], ast.expr | None],
    ) -> None:
        self._qualname = qualname
        self._binding = binding
        self._memo: dict[int, Folded | None] = {}
        self._active: set[str] = set()
        self._locals: list[dict[str, Folded]] = []
        self._depth = 0

    # -- public -----------------------------------------------------------------------------
    def fold(self, node: ast.AST | None) -> Folded | None:
        """The value of `node`, or None when it depends on anything not constant."""
        if node is None:
            return None
        if self._locals:
            return self._fold(node)
        key = id(node)
        if key in self._memo:
            return self._memo[key]
        result = self._fold(node)
        self._memo[key] = result
        return result

    def fold_str(self, node: ast.AST | None) -> str | None:
        """The folded value as text (bytes decoded leniently), or None."""
        f = self.fold(node)
        if f is None:
            return None
        return as_text(f.value)

    def fold_text(self, node: ast.AST | None) -> tuple[str | None, bool]:
        """Text with `${COMPUTED}` for unknown parts; (None, False) when nothing is known."""
        if node is None:
            return None, False
        f = self.fold(node)
        if f is not None:
            text = as_text(f.value)
            if text is not None:
                return text, f.decoded
            if isinstance(f.value, (list, tuple)):
                parts = [as_text(v) for v in f.value]
                return " ".join(p if p is not None else COMPUTED for p in parts), f.decoded
            return None, False
        if isinstance(node, ast.JoinedStr):
            out: list[str] = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    out.append(value.value)
                else:
                    inner = value.value if isinstance(value, ast.FormattedValue) else value
                    t, _ = self.fold_text(inner)
                    out.append(t if t is not None else COMPUTED)
            return "".join(out), False
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            left, _ = self.fold_text(node.left)
            right, _ = self.fold_text(node.right)
            sep = "/" if isinstance(node.op, ast.Div) else ""
            if left is None and right is None:
                return None, False
            if isinstance(node.op, ast.Div) and left is not None and right is not None:
                return posixpath.join(left, right.lstrip("/") if left == COMPUTED else right), False
            return (
                f"{left if left is not None else COMPUTED}{sep}{right if right is not None else COMPUTED}",
                False,
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            left, _ = self.fold_text(node.left)
            if left is not None and "%" in left:
                import re

                return re.sub(r"%[-#0 +]*\d*(?:\.\d+)?[sdrifx]", COMPUTED, left), False
        if isinstance(node, (ast.List, ast.Tuple)):
            parts_t = [self.fold_text(e)[0] for e in node.elts]
            if all(p is None for p in parts_t):
                return None, False
            return " ".join(p if p is not None else COMPUTED for p in parts_t), False
        if isinstance(node, ast.Call):
            q = self._qualname(node.func)
            if q in ("os.path.join", "posixpath.join") or q in _PATH_FUNCS:
                parts_j = [self.fold_text(a)[0] or COMPUTED for a in node.args]
                if parts_j:
                    return posixpath.join(*parts_j), False
            if (
                q
                in (
                    "os.path.expanduser",
                    "os.path.abspath",
                    "os.path.realpath",
                    "str",
                    "os.path.normpath",
                    "os.fspath",
                )
                and node.args
            ):
                return self.fold_text(node.args[0])
            if isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                if attr in ("expanduser", "resolve", "absolute") and not node.args:
                    return self.fold_text(node.func.value)
                if attr == "joinpath":
                    base, _ = self.fold_text(node.func.value)
                    parts_p = [self.fold_text(a)[0] or COMPUTED for a in node.args]
                    return posixpath.join(base or COMPUTED, *parts_p), False
                if attr == "format":
                    base, _ = self.fold_text(node.func.value)
                    if base is not None:
                        import re

                        return re.sub(r"\{[^{}]*\}", COMPUTED, base), False
        if isinstance(node, ast.Name):
            bound = self._binding(node.id)
            if bound is not None and node.id not in self._active:
                self._active.add(node.id)
                try:
                    return self.fold_text(bound)
                finally:
                    self._active.discard(node.id)
        return None, False

    # -- implementation ---------------------------------------------------------------------
    def _fold(self, node: ast.AST) -> Folded | None:
        if self._depth > MAX_DEPTH:
            return None
        self._depth += 1
        try:
            result = self._fold_inner(node)
        except Exception:
            # Folding evaluates literal operations; any failure means "not constant".
            return None
        finally:
            self._depth -= 1
        if result is not None and not _small(result.value):
            return None
        return result

    def _fold_inner(self, node: ast.AST) -> Folded | None:
        if isinstance(node, ast.Constant):
            return Folded(node.value)
        if isinstance(node, ast.Name):
            return self._fold_name(node.id)
        if isinstance(node, ast.JoinedStr):
            return self._fold_fstring(node)
        if isinstance(node, ast.BinOp):
            return self._fold_binop(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.fold(node.operand)
            if operand is None:
                return None
            if isinstance(node.op, ast.USub):
                return Folded(-operand.value, operand.decoded)
            if isinstance(node.op, ast.UAdd):
                return Folded(+operand.value, operand.decoded)
            if isinstance(node.op, ast.Invert):
                return Folded(~operand.value, operand.decoded)
            if isinstance(node.op, ast.Not):
                return Folded(not operand.value, operand.decoded)
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            if len(node.elts) > MAX_ITEMS:
                return None
            items = [self.fold(e) for e in node.elts]
            if any(i is None for i in items):
                return None
            values = [i.value for i in items if i is not None]
            decoded = any(i.decoded for i in items if i is not None)
            return Folded(tuple(values) if isinstance(node, ast.Tuple) else values, decoded)
        if isinstance(node, ast.Subscript):
            if self._qualname(node.value) == "os.environ":
                key = self.fold(node.slice)
                if key is not None and key.value in _HOME_VARS:
                    return Folded("~")
                if key is not None and key.value == "TMPDIR":
                    return Folded("/tmp")
                return None
            base = self.fold(node.value)
            if base is None or not isinstance(base.value, (str, bytes, list, tuple)):
                return None
            if isinstance(node.slice, ast.Slice):
                lo = self.fold(node.slice.lower) if node.slice.lower else Folded(None)
                hi = self.fold(node.slice.upper) if node.slice.upper else Folded(None)
                st = self.fold(node.slice.step) if node.slice.step else Folded(None)
                if lo is None or hi is None or st is None:
                    return None
                return Folded(base.value[lo.value : hi.value : st.value], base.decoded)
            index = self.fold(node.slice)
            if index is None:
                return None
            return Folded(base.value[index.value], base.decoded)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            return self._fold_comprehension(node)
        if isinstance(node, ast.Call):
            return self._fold_call(node)
        if isinstance(node, ast.Attribute):
            return self._fold_attribute(node)
        return None

    def _fold_name(self, name: str) -> Folded | None:
        for scope in reversed(self._locals):
            if name in scope:
                return scope[name]
        if name in self._active:
            return None
        bound = self._binding(name)
        if bound is None:
            return None
        self._active.add(name)
        try:
            return self.fold(bound)
        finally:
            self._active.discard(name)

    def _fold_attribute(self, node: ast.Attribute) -> Folded | None:
        q = self._qualname(node)
        if q == "string.ascii_lowercase":
            return Folded("abcdefghijklmnopqrstuvwxyz")
        if q == "string.ascii_uppercase":
            return Folded("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if q == "string.digits":
            return Folded("0123456789")
        if q == "os.sep":
            return Folded("/")
        if q == "sys.executable":
            return Folded("python3")
        if node.attr in ("parent", "name", "stem", "suffix"):
            base = self.fold(node.value)
            if base is not None and isinstance(base.value, PathStr):
                if node.attr == "parent":
                    return Folded(PathStr(posixpath.dirname(base.value)), base.decoded)
                if node.attr == "name":
                    return Folded(posixpath.basename(base.value), base.decoded)
        return None

    def _fold_fstring(self, node: ast.JoinedStr) -> Folded | None:
        out: list[str] = []
        decoded = False
        for value in node.values:
            if isinstance(value, ast.Constant):
                out.append(str(value.value))
                continue
            if not isinstance(value, ast.FormattedValue):
                return None
            inner = self.fold(value.value)
            if inner is None:
                return None
            decoded = decoded or inner.decoded
            v = inner.value
            if value.conversion == ord("r"):
                v = repr(v)
            elif value.conversion == ord("s"):
                v = str(v)
            elif value.conversion == ord("a"):
                v = ascii(v)
            spec = ""
            if value.format_spec is not None:
                spec_f = self.fold(value.format_spec)
                if spec_f is None:
                    return None
                spec = str(spec_f.value)
            out.append(format(v, spec))
        return Folded("".join(out), decoded)

    def _fold_binop(self, node: ast.BinOp) -> Folded | None:
        left = self.fold(node.left)
        if left is None:
            return None
        right = self.fold(node.right)
        if right is None:
            return None
        lv, rv = left.value, right.value
        decoded = left.decoded or right.decoded
        op = node.op
        if isinstance(op, ast.Mult):
            size = _mult_size(lv, rv)
            if size is not None and size > MAX_TEXT:
                return None
            return Folded(lv * rv, decoded)
        if isinstance(op, ast.Pow):
            if isinstance(lv, int) and isinstance(rv, int):
                if rv < 0 or abs(lv) < 2:
                    return Folded(lv**rv, decoded)
                if rv * max(1, abs(lv).bit_length()) > 4096:
                    return None
            return Folded(lv**rv, decoded)
        if isinstance(op, ast.LShift):
            if isinstance(rv, int) and rv > 4096:
                return None
            return Folded(lv << rv, decoded)
        if isinstance(op, ast.Div) and isinstance(lv, PathStr):
            return Folded(PathStr(posixpath.join(lv, str(rv))), decoded)
        if isinstance(op, ast.Mod) and isinstance(lv, (str, bytes)):
            return Folded(lv % rv, decoded)
        ops: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Div: lambda a, b: a / b,
            ast.FloorDiv: lambda a, b: a // b,
            ast.Mod: lambda a, b: a % b,
            ast.BitXor: lambda a, b: a ^ b,
            ast.BitAnd: lambda a, b: a & b,
            ast.BitOr: lambda a, b: a | b,
            ast.RShift: lambda a, b: a >> b,
        }
        fn = ops.get(type(op))
        if fn is None:
            return None
        result = fn(lv, rv)
        if isinstance(lv, PathStr) and isinstance(result, str):
            result = PathStr(result)
        return Folded(result, decoded)

    def _fold_comprehension(self, node: ast.ListComp | ast.GeneratorExp) -> Folded | None:
        if len(node.generators) != 1:
            return None
        gen = node.generators[0]
        if gen.is_async or not isinstance(gen.target, ast.Name):
            return None
        source = self.fold(gen.iter)
        if source is None or not isinstance(source.value, (str, bytes, list, tuple, range)):
            return None
        if len(source.value) > MAX_ITEMS:
            return None
        out: list[Any] = []
        decoded = source.decoded
        for item in source.value:
            scope = {gen.target.id: Folded(item, source.decoded)}
            self._locals.append(scope)
            try:
                keep = True
                for cond in gen.ifs:
                    c = self.fold(cond)
                    if c is None:
                        return None
                    keep = keep and bool(c.value)
                if not keep:
                    continue
                value = self.fold(node.elt)
            finally:
                self._locals.pop()
            if value is None:
                return None
            decoded = decoded or value.decoded
            out.append(value.value)
        return Folded(out, decoded)

    def _args(self, node: ast.Call) -> list[Folded] | None:
        if any(isinstance(a, ast.Starred) for a in node.args):
            return None
        folded = [self.fold(a) for a in node.args]
        if any(f is None for f in folded):
            return None
        return [f for f in folded if f is not None]

    def _fold_call(self, node: ast.Call) -> Folded | None:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = self._fold_method(node, func)
            if method is not None:
                return method
        q = self._qualname(func)
        if q is None:
            return None
        args = self._args(node)
        if args is None:
            return None
        values = [a.value for a in args]
        decoded = any(a.decoded for a in args)
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                return None
            kv = self.fold(kw.value)
            if kv is None:
                return None
            kwargs[kw.arg] = kv.value
        if q in _DECODERS:
            return Folded(_DECODERS[q](*values), True)
        if q in _ENCODERS:
            return Folded(_ENCODERS[q](*values), decoded)
        if q == "codecs.decode" or q == "codecs.encode":
            text = values[0]
            encoding = (values[1] if len(values) > 1 else kwargs.get("encoding", "utf-8")).lower()
            if encoding.replace("-", "_") in ("rot13", "rot_13"):
                return Folded(codecs.decode(str(text), "rot13"), True)
            fn_c = codecs.decode if q == "codecs.decode" else codecs.encode
            return Folded(fn_c(text, encoding), True if q == "codecs.decode" else decoded)
        if q == "chr":
            return Folded(chr(values[0]), True)
        if q == "ord":
            return Folded(ord(values[0]), decoded)
        if q in ("bytes", "bytearray"):
            if not values:
                return Folded(b"")
            if isinstance(values[0], int):
                if values[0] > MAX_TEXT:
                    return None
                return Folded(bytes(values[0]), decoded)
            if isinstance(values[0], str):
                return Folded(values[0].encode(*values[1:2] or ["utf-8"]), decoded)
            return Folded(bytes(values[0]), True)
        if q == "str":
            if not values:
                return Folded("")
            if len(values) >= 2 and isinstance(values[0], (bytes, bytearray)):
                return Folded(values[0].decode(values[1]), decoded)
            return Folded(str(values[0]), decoded)
        if q == "int":
            return Folded(int(*values), decoded)
        if q == "bytes.decode":
            return Folded(values[0].decode(*values[1:]), decoded)
        if q == "str.join":
            return Folded(values[0].join(values[1]), decoded)
        if q in ("reversed", "list", "tuple", "sorted"):
            if len(values) != 1:
                return None
            seq = values[0]
            seq_fns: dict[str, Callable[[Any], Any]] = {
                "reversed": lambda v: list(reversed(v)),
                "list": list,
                "tuple": tuple,
                "sorted": sorted,
            }
            fn_s = seq_fns[q]
            return Folded(fn_s(seq), decoded)
        if q == "map" and len(node.args) == 2:
            fq = self._qualname(node.args[0])
            seq = values[1] if len(values) == 2 else None
            if fq in ("chr", "str", "ord", "int") and isinstance(seq, (list, tuple, str, bytes)):
                item_fns: dict[str, Callable[[Any], Any]] = {
                    "chr": chr,
                    "str": str,
                    "ord": ord,
                    "int": int,
                }
                fn_m = item_fns[fq]
                return Folded([fn_m(v) for v in seq], decoded or fq == "chr")
            return None
        if q in ("os.path.join", "posixpath.join"):
            return Folded(posixpath.join(*[str(v) for v in values]), decoded)
        if q in (
            "os.path.expanduser",
            "os.path.abspath",
            "os.path.realpath",
            "os.path.normpath",
            "os.fspath",
        ):
            return Folded(str(values[0]), decoded)
        if q == "os.path.expandvars":
            text = str(values[0])
            for var in _HOME_VARS:
                text = text.replace("${" + var + "}", "~").replace("$" + var, "~")
            return Folded(text, decoded)
        if q in ("os.path.dirname", "os.path.basename"):
            fn_p = posixpath.dirname if q.endswith("dirname") else posixpath.basename
            return Folded(fn_p(str(values[0])), decoded)
        if q in _PATH_FUNCS:
            if not values:
                return Folded(PathStr("."))
            return Folded(PathStr(posixpath.join(*[str(v) for v in values])), decoded)
        if q in ("pathlib.Path.home", "os.path.expanduser.home"):
            return Folded(PathStr("~"))
        if q in ("pathlib.Path.cwd", "os.getcwd"):
            return Folded(PathStr("."))
        if q in ("tempfile.gettempdir", "tempfile.mkdtemp", "tempfile.mktemp"):
            return Folded("/tmp/tmp" if q != "tempfile.gettempdir" else "/tmp")
        if q in ("os.getenv", "os.environ.get") and values and values[0] in _HOME_VARS:
            return Folded("~")
        if q in ("os.getenv", "os.environ.get") and values and values[0] == "TMPDIR":
            return Folded("/tmp")
        return None

    def _fold_method(self, node: ast.Call, func: ast.Attribute) -> Folded | None:
        attr = func.attr
        if attr not in _STR_METHODS and attr not in (
            "join",
            "format",
            "decode",
            "encode",
            "expanduser",
            "resolve",
            "absolute",
            "joinpath",
            "as_posix",
            "with_name",
            "with_suffix",
            "fromhex",
        ):
            return None
        base = self.fold(func.value)
        if base is None:
            return None
        args = self._args(node)
        if args is None:
            return None
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                return None
            kv = self.fold(kw.value)
            if kv is None:
                return None
            kwargs[kw.arg] = kv.value
        bv = base.value
        values = [a.value for a in args]
        decoded = base.decoded or any(a.decoded for a in args)
        if attr == "join" and isinstance(bv, (str, bytes)):
            if len(values) != 1:
                return None
            return Folded(bv.join(values[0]), decoded)
        if attr == "format" and isinstance(bv, str):
            return Folded(bv.format(*values, **kwargs), decoded)
        if attr == "decode" and isinstance(bv, (bytes, bytearray)):
            encoding = str(values[0] if values else kwargs.get("encoding", "utf-8"))
            return Folded(bv.decode(encoding, *values[1:2]), decoded)
        if attr == "encode" and isinstance(bv, str):
            encoding = str(values[0] if values else kwargs.get("encoding", "utf-8"))
            if encoding.replace("-", "_").lower() in ("rot13", "rot_13"):
                return Folded(codecs.encode(bv, "rot13"), True)
            return Folded(bv.encode(encoding), decoded)
        if attr in ("expanduser", "resolve", "absolute", "as_posix") and isinstance(bv, str):
            return Folded(PathStr(bv) if isinstance(bv, PathStr) else bv, decoded)
        if attr == "joinpath" and isinstance(bv, str):
            return Folded(PathStr(posixpath.join(bv, *[str(v) for v in values])), decoded)
        if attr == "fromhex" and bv in (bytes, bytearray):
            return None
        if attr in _STR_METHODS and isinstance(bv, (str, bytes)):
            result = getattr(bv, attr)(*values, **kwargs)
            return Folded(result, decoded)
        return None


def _mult_size(a: Any, b: Any) -> int | None:
    if isinstance(a, (str, bytes, list, tuple)) and isinstance(b, int):
        return len(a) * b
    if isinstance(b, (str, bytes, list, tuple)) and isinstance(a, int):
        return len(b) * a
    return None


def as_text(value: Any) -> str | None:
    """Folded strings and bytes as text; anything else is not text."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None
