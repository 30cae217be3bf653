"""What the model should see before it writes a line, gathered inside the kernel.

This module's source is sent into the kernel (as `executors/fdpump.py` is), so the previews
read the files where the code will run: a local kernel, a sandbox, a container or a remote
gateway alike. It must stay standard-library only (pandas, openpyxl and pyarrow are used when
the kernel has them) and must never import codeflow.

`probe(spec, namespace)` returns JSON-able facts:

* `files`: a bounded preview of each file the request names, read from the work dir only,
  never a file that looks like a secret, at most `max_bytes` bytes each within `seconds`;
* `env`: the Python version and the versions of the data libraries that are installed,
  looked up once per kernel through `importlib.metadata` (nothing is imported);
* `frames`: example values, index and dtypes of the DataFrames and Series in `namespace`.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

VERSION = 1
"""Bumped when the kernel-side contract changes (a cached module of another version is replaced)."""

DATA_LIBRARIES: tuple[str, ...] = (
    "numpy",
    "pandas",
    "polars",
    "matplotlib",
    "seaborn",
    "plotly",
    "scipy",
    "scikit-learn",
    "statsmodels",
    "pyarrow",
    "openpyxl",
    "xlrd",
    "duckdb",
    "altair",
)
"""Distributions whose presence decides how data code is written (listed present or absent)."""

DATA_EXTENSIONS = frozenset(
    {
        "csv", "tsv", "tab", "psv", "txt", "dat", "json", "jsonl", "ndjson", "geojson",
        "xlsx", "xlsm", "xls", "ods", "parquet", "pq", "feather", "arrow", "ipc", "orc",
        "avro", "h5", "hdf5", "hdf", "pkl", "pickle", "npy", "npz", "mat", "sav", "dta",
        "sas7bdat", "xml", "yaml", "yml", "toml", "ini", "cfg", "log", "md", "html", "htm",
        "sql", "sqlite", "sqlite3", "db", "duckdb", "gz", "bz2", "xz", "zst", "zip", "tar",
        "png", "jpg", "jpeg", "gif", "tif", "tiff", "svg", "pdf", "wav", "mp3", "ipynb",
        "py", "sh", "r",
    }
)  # fmt: skip
"""Extensions that make a bare word (`sales.csv`) a file name rather than `df.head`."""

SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "venv", "env"})
WALK_ENTRIES = 5000
"""Directory entries looked at, at most, to find a bare file name under the work dir."""
WALK_DEPTH = 6

_SECRET_NAME = re.compile(
    r"""(?ix)^(
        \.env(\..*)? | .*\.env | \.envrc | \.netrc | \.pgpass | \.pypirc | \.npmrc |
        \.git-credentials | \.vault-token | \.htpasswd | \.dockercfg |
        id_(rsa|dsa|ecdsa|ed25519)(\.pub)? | .*\.(pem|key|p12|pfx|jks|keystore|kdbx|asc|gpg|ppk) |
        .*credential.* | .*secret.* | .*password.* | .*passwd.* | (.*[._-])?tokens?(\.(txt|json|ya?ml))? |
        .*api[_-]?key.* |
        authorized_keys2? | known_hosts | shadow | gshadow | sudoers
    )$"""
)
_SECRET_DIRS = frozenset(
    {".ssh", ".aws", ".azure", ".gnupg", ".kube", ".docker", ".password-store"}
)


def looks_secret(path: str) -> bool:
    """A file that may hold credentials: never previewed, whatever the request says."""
    parts = [p for p in re.split(r"[\\/]+", path) if p]
    if not parts:
        return False
    if any(p.lower() in _SECRET_DIRS for p in parts[:-1]):
        return True
    return bool(_SECRET_NAME.match(parts[-1]))


# -- reading with a budget --------------------------------------------------------------------


class OverBudget(Exception):
    """A reader asked for more bytes than the preview may read."""


class Budgeted(io.RawIOBase):
    """A seekable raw file that counts what it reads and refuses to read past `limit`."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # closed in close()
        self.limit = limit
        self.used = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        want = min(len(view), self.limit - self.used)
        if want <= 0 and len(view) > 0:
            raise OverBudget(f"more than {self.limit} bytes")
        data = self._file.read(want)
        if not data:
            return 0
        view[: len(data)] = data
        self.used += len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()


def read_head(path: str, limit: int) -> bytes:
    """At most `limit` bytes from the start of the file, with unbuffered reads (no read-ahead)."""
    chunks: list[bytes] = []
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < limit:
            data = f.read(limit - got)
            if not data:
                break
            chunks.append(data)
            got += len(data)
    return b"".join(chunks)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


# -- decoding and sniffing --------------------------------------------------------------------


def decode_sample(data: bytes, complete: bool) -> tuple[str, str]:
    """(text, encoding) of a file's first bytes; a cut multi-byte character at the end is dropped."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            decoder = codecs.getincrementaldecoder(name)("replace")
            return decoder.decode(data, final=complete), name
    try:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        return decoder.decode(data, final=complete), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def is_binary(data: bytes) -> bool:
    head = data[:8192]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip archive (xlsx, docx and ods are zip archives too)"),
    (b"PAR1", "Parquet file"),
    (b"ARROW1", "Arrow/Feather file"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"\x1f\x8b", "gzip-compressed file"),
    (b"BZh", "bzip2-compressed file"),
    (b"\xfd7zXZ", "xz-compressed file"),
    (b"SQLite format 3", "SQLite database"),
    (b"\x89HDF", "HDF5 file"),
    (b"\x93NUMPY", "NumPy .npy array"),
    (b"\x80", "Python pickle (do not unpickle files you do not trust)"),
)


def binary_kind(data: bytes) -> str:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return "binary file"


_NUMBER_COMMA = re.compile(r"^[-+]?\d{1,3}(\.\d{3})*,\d+$|^[-+]?\d+,\d+$")
_NUMBER_DOT = re.compile(r"^[-+]?\d{1,3}(,\d{3})*\.\d+$|^[-+]?\d+\.\d+$")


def sniff_table(lines: list[str]) -> tuple[str | None, bool]:
    """(delimiter, has header) of delimited text, or (None, False) when it is not a table."""
    import csv

    sample = [line for line in lines[:50] if line.strip()]
    if len(sample) < 1:
        return None, False
    best: tuple[float, str] | None = None
    for delim in (",", ";", "\t", "|"):
        counts = [len(next(csv.reader([line], delimiter=delim))) for line in sample]
        if counts[0] < 2:
            continue
        same = sum(1 for c in counts if c == counts[0]) / len(counts)
        if same < 0.8:
            continue
        score = same * 10 + min(counts[0], 50) / 50
        if best is None or score > best[0]:
            best = (score, delim)
    if best is None:
        return None, False
    delim = best[1]
    rows = [next(csv.reader([line], delimiter=delim)) for line in sample[:20]]
    return delim, _has_header(rows)


def _numeric(cell: str) -> bool:
    text = cell.strip().replace(" ", "")
    return bool(text) and bool(
        re.fullmatch(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?%?", text)
        or _NUMBER_COMMA.match(text)
        or _NUMBER_DOT.match(text)
    )


def _has_header(rows: list[list[str]]) -> bool:
    """A first row of words above rows with numbers, or a first row unlike every other row."""
    if len(rows) < 2:
        return bool(rows) and not any(_numeric(c) for c in rows[0])
    first, rest = rows[0], rows[1:]
    if any(_numeric(c) for c in first):
        return False
    for col in range(len(first)):
        values = [r[col] for r in rest if col < len(r)]
        if (
            values
            and all(_numeric(v) for v in values if v.strip())
            and any(v.strip() for v in values)
        ):
            return True
    # all text: a header when its cells never repeat below
    return all(first[i] not in {r[i] for r in rest if i < len(r)} for i in range(len(first)))


def decimal_mark(rows: list[list[str]], delimiter: str) -> str | None:
    comma = dot = 0
    for row in rows:
        for cell in row:
            text = cell.strip()
            if _NUMBER_COMMA.match(text) and not _NUMBER_DOT.match(text):
                comma += 1
            elif _NUMBER_DOT.match(text):
                dot += 1
    if comma and delimiter != "," and comma >= dot:
        return ","
    if dot:
        return "."
    return None


# -- previews ---------------------------------------------------------------------------------

Preview = dict[str, Any]


def _text_preview(
    path: str, size: int, data: bytes, ext: str, deadline: float, rows: int, line_chars: int
) -> Preview:
    complete = len(data) >= size
    text, encoding = decode_sample(data, complete)
    lines = text.splitlines()
    if not complete and lines and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line was cut by the budget
    out: Preview = {"encoding": encoding}
    newlines = data.count(b"\n") + (1 if complete and data and not data.endswith(b"\n") else 0)
    if complete:
        out["lines"] = newlines
    elif newlines:
        out["lines_estimate"] = int(size * newlines / max(1, len(data)))
    if ext in ("json", "geojson", "ipynb") or (
        ext not in ("jsonl", "ndjson") and text.lstrip().startswith(("{", "["))
    ):
        shape = _json_shape(text, complete, lines)
        if shape is not None:
            out.update(shape)
            return out
    if ext in ("jsonl", "ndjson") or _looks_jsonl(lines):
        out.update(_jsonl_shape(lines))
        if "records" in out:
            return out
    if time.monotonic() > deadline:
        out["kind"] = "text"
        out["first_lines"] = [_clip(line, line_chars) for line in lines[:rows]]
        return out
    delim, header = sniff_table(lines) if ext not in ("md", "log", "py", "sh") else (None, False)
    if delim is not None:
        import csv

        parsed = [next(csv.reader([line], delimiter=delim)) for line in lines[:200] if line.strip()]
        out["kind"] = "delimited text"
        out["delimiter"] = delim
        out["header"] = header
        mark = decimal_mark(parsed[1:] if header else parsed, delim)
        if mark:
            out["decimal"] = mark
        if header and parsed:
            out["columns"] = [_clip(c, 40) for c in parsed[0][:60]]
            out["column_count"] = len(parsed[0])
        count = out.get("lines", out.get("lines_estimate"))
        if isinstance(count, int):
            out["rows" if complete else "rows_estimate"] = max(0, count - (1 if header else 0))
        out["first_lines"] = [
            _clip(line, line_chars) for line in lines[: rows + (1 if header else 0)]
        ]
        return out
    out["kind"] = "text"
    out["first_lines"] = [_clip(line, line_chars) for line in lines[:rows]]
    return out


def _looks_jsonl(lines: list[str]) -> bool:
    sample = [line for line in lines[:5] if line.strip()]
    if len(sample) < 2:
        return False
    try:
        return all(isinstance(json.loads(line), dict) for line in sample)
    except ValueError:
        return False


def _keys(record: Any, limit: int = 30) -> list[str]:
    return [_clip(str(k), 40) for k in list(record)[:limit]] if isinstance(record, dict) else []


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _json_shape(text: str, complete: bool, lines: list[str]) -> Preview | None:
    """Top-level shape and the keys of the first records, from a document that may be cut."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if complete:
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        else:
            out: Preview = {"kind": "JSON", "top": _type_name(doc)}
            if isinstance(doc, list):
                out["length"] = len(doc)
                out["records"] = [_keys(r) or _type_name(r) for r in doc[:3]]
            elif isinstance(doc, dict):
                out["keys"] = _keys(doc, 40)
                out["length"] = len(doc)
                for key, value in list(doc.items())[:40]:
                    if isinstance(value, list) and value and isinstance(value[0], dict):
                        out["records_under"] = _clip(str(key), 40)
                        out["records"] = [_keys(r) for r in value[:3]]
                        break
            return out
    if stripped.startswith("["):
        out = {"kind": "JSON", "top": "array", "records": []}
        pos = 1
        while len(out["records"]) < 3:
            while pos < len(stripped) and stripped[pos] in " \t\r\n,":
                pos += 1
            try:
                value, pos = decoder.raw_decode(stripped, pos)
            except ValueError:
                break
            out["records"].append(_keys(value) or _type_name(value))
        return out
    if stripped.startswith("{"):
        if len(lines) > 1 and _looks_jsonl(lines):
            return None
        keys: list[str] = []
        pos = 1
        while len(keys) < 40:
            m = re.compile(r'\s*,?\s*("(?:[^"\\]|\\.)*")\s*:\s*').match(stripped, pos)
            if not m:
                break
            keys.append(_clip(json.loads(m.group(1)), 40))
            try:
                _, pos = decoder.raw_decode(stripped, m.end())
            except ValueError:
                break
        return {"kind": "JSON", "top": "object", "keys": keys}
    return None


def _jsonl_shape(lines: list[str]) -> Preview:
    records = []
    for line in lines[:200]:
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            break
        if len(records) >= 3:
            break
    if not records:
        return {}
    return {"kind": "JSON lines", "records": [_keys(r) or _type_name(r) for r in records]}


def _excel_preview(path: str, limit: int, rows: int, line_chars: int) -> Preview:
    try:
        import openpyxl
    except ImportError:
        return {"kind": "Excel workbook", "note": "openpyxl is not installed"}
    raw = Budgeted(path, limit)
    try:
        book = openpyxl.load_workbook(io.BufferedReader(raw, 8192), read_only=True, data_only=True)
        sheets: list[dict[str, Any]] = []
        for sheet in book.worksheets[:10]:
            first = []
            for row in sheet.iter_rows(max_row=min(rows, 3), values_only=True):
                first.append(
                    _clip(", ".join("" if v is None else str(v) for v in row[:30]), line_chars)
                )
            sheets.append(
                {
                    "name": sheet.title,
                    "dims": sheet.max_row and f"{sheet.max_row} rows",
                    "first_rows": first,
                }
            )
        out: Preview = {
            "kind": "Excel workbook",
            "sheet_names": book.sheetnames[:30],
            "sheets": sheets,
        }
        book.close()
    except OverBudget:
        out = {
            "kind": "Excel workbook",
            "note": f"larger than the {human_size(limit)} preview budget",
        }
    except Exception as exc:  # a broken workbook is worth saying so
        out = {"kind": "Excel workbook", "note": f"cannot be read: {type(exc).__name__}"}
    finally:
        out["bytes_read"] = raw.used
        raw.close()
    return out


def _arrow_preview(path: str, ext: str, limit: int) -> Preview:
    kind = "Parquet file" if ext in ("parquet", "pq") else "Arrow/Feather file"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return {"kind": kind, "note": "pyarrow is not installed"}
    raw = Budgeted(path, limit)
    out: Preview = {"kind": kind}
    try:
        if kind == "Parquet file":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(raw).metadata
            out["rows"] = meta.num_rows
            schema = meta.schema.to_arrow_schema()
        else:
            import pyarrow.ipc as ipc

            reader = ipc.open_file(raw)
            schema = reader.schema
            out["record_batches"] = reader.num_record_batches
        out["columns"] = [f"{f.name}: {f.type}" for f in list(schema)[:60]]
        out["column_count"] = len(schema)
    except OverBudget:
        out["note"] = f"its schema is larger than the {human_size(limit)} preview budget"
    except Exception as exc:
        out["note"] = f"cannot be read: {type(exc).__name__}"
    finally:
        out["bytes_read"] = raw.used
        raw.close()
    return out


def preview_file(
    path: str, *, max_bytes: int, seconds: float, rows: int = 5, line_chars: int = 200
) -> Preview:
    """A bounded look at one file: at most `max_bytes` read, parsing stops at `seconds`."""
    deadline = time.monotonic() + seconds
    size = os.path.getsize(path)
    ext = path.rsplit(".", 1)[-1].lower() if "." in os.path.basename(path) else ""
    out: Preview = {"size": size}
    if ext in ("xlsx", "xlsm"):
        out.update(_excel_preview(path, max_bytes, rows, line_chars))
        return out
    if ext in ("parquet", "pq", "feather", "arrow", "ipc"):
        out.update(_arrow_preview(path, ext, max_bytes))
        return out
    data = read_head(path, max_bytes)
    out["bytes_read"] = len(data)
    if is_binary(data):
        out["kind"] = binary_kind(data)
        return out
    out.update(_text_preview(path, size, data, ext, deadline, rows, line_chars))
    return out


# -- finding the files ------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(root: str, wanted: set[str], deadline: float) -> dict[str, str]:
    """Shallowest file under `root` for each wanted base name (bounded, no hidden folders)."""
    found: dict[str, str] = {}
    queue: deque[tuple[str, int]] = deque([(root, 0)])
    seen = 0
    while queue and len(found) < len(wanted) and seen < WALK_ENTRIES:
        folder, depth = queue.popleft()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if time.monotonic() > deadline or seen >= WALK_ENTRIES:
                break
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not name.startswith(".") and name not in SKIP_DIRS and depth < WALK_DEPTH:
                        queue.append((entry.path, depth + 1))
                elif name in wanted and name not in found and entry.is_file():
                    found[name] = entry.path
            except OSError:
                continue
    return found


def resolve(names: Iterable[str], root: str, deadline: float) -> list[tuple[str, str]]:
    """(name as written, real path) for each name that is an existing file inside `root`."""
    root_real = os.path.realpath(root)
    out: list[tuple[str, str]] = []
    missing: list[str] = []
    for name in names:
        if looks_secret(name) or name.startswith("~"):
            continue
        candidate = name if os.path.isabs(name) else os.path.join(root_real, name)
        real = os.path.realpath(candidate)
        if os.path.isfile(real):
            if _inside(real, root_real) and not looks_secret(os.path.relpath(real, root_real)):
                out.append((name, real))
        elif "/" not in name and "\\" not in name:
            missing.append(name)
    if missing:
        found = _walk(root_real, set(missing), deadline)
        for name in missing:
            path = found.get(name)
            if path is None:
                continue
            real = os.path.realpath(path)
            if _inside(real, root_real) and not looks_secret(os.path.relpath(real, root_real)):
                out.append((name, real))
    seen: set[str] = set()
    unique = []
    for name, real in out:
        if real not in seen:
            seen.add(real)
            unique.append((name, real))
    return unique


# -- the environment --------------------------------------------------------------------------

_ENV_CACHE: dict[str, Any] = {}


def environment(fresh: bool = False) -> dict[str, Any]:
    """Python version and data-library versions; looked up once per kernel (no imports),
    again when `fresh` (after an install)."""
    if fresh:
        _ENV_CACHE.clear()
    if not _ENV_CACHE:
        import importlib.metadata as metadata

        versions: dict[str, str | None] = {}
        for name in DATA_LIBRARIES:
            try:
                versions[name] = metadata.version(name)
            except Exception:
                versions[name] = None
        _ENV_CACHE["python"] = ".".join(str(p) for p in sys.version_info[:3])
        _ENV_CACHE["libraries"] = versions
    return dict(_ENV_CACHE)


# -- DataFrames and Series --------------------------------------------------------------------

_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"),
        "ISO date-time",
    ),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "YYYY-MM-DD"),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "YYYY/MM/DD"),
    (re.compile(r"^\d{8}$"), "YYYYMMDD?"),
)
_DMY = re.compile(r"^(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})( \d{1,2}:\d{2}(:\d{2})?)?$")


def date_format(values: list[str]) -> str | None:
    """The format date-like strings are written in (day/month order decided from the values)."""
    if not values:
        return None
    for pattern, name in _DATE_PATTERNS:
        if all(pattern.match(v) for v in values):
            return None if name == "YYYYMMDD?" else name
    matches = [_DMY.match(v) for v in values]
    if not all(matches):
        return None
    sep = matches[0].group(2) if matches[0] else "/"
    year = "YYYY" if all(m and len(m.group(4)) == 4 for m in matches) else "YY"
    first = max(int(m.group(1)) for m in matches if m)
    second = max(int(m.group(3)) for m in matches if m)
    time_part = " hh:mm" if any(m and m.group(5) for m in matches) else ""
    if first > 12 >= second:
        return f"DD{sep}MM{sep}{year}{time_part}"
    if second > 12 >= first:
        return f"MM{sep}DD{sep}{year}{time_part}"
    return f"DD{sep}MM{sep}{year} or MM{sep}DD{sep}{year}{time_part} (ambiguous in these values)"


def _examples(series: Any, count: int) -> tuple[list[str], str | None]:
    head = series.head(200)
    try:
        values = list(head.dropna().unique()[:count])
    except Exception:  # unhashable values
        values = list(head.dropna()[:count])
    shown = [_clip(repr(v) if isinstance(v, str) else str(v), 30) for v in values]
    strings = [v for v in values if isinstance(v, str)]
    fmt = date_format(strings) if strings and len(strings) == len(values) else None
    return shown, fmt


def _index_text(index: Any) -> str:
    name = type(index).__name__
    if name == "RangeIndex":
        return f"RangeIndex {index.start}..{index.stop - 1}" if len(index) else "RangeIndex (empty)"
    values = ", ".join(_clip(str(v), 25) for v in list(index[:3]))
    label = f" {index.name!r}" if getattr(index, "name", None) is not None else ""
    return f"{name}{label} ({index.dtype}): {values}{', ...' if len(index) > 3 else ''}"


def describe_frame(name: str, value: Any, per_column: int = 3, max_columns: int = 12) -> str:
    kind = type(value).__name__
    lines = [f"{name} ({kind}) index: {_index_text(value.index)}"]
    if kind == "Series":
        shown, fmt = _examples(value, per_column)
        note = f" [dates as {fmt}]" if fmt else ""
        none = "(no rows)" if len(value) == 0 else "(all missing)"
        lines.append(f"  values ({value.dtype}): {', '.join(shown) or none}{note}")
        return "\n".join(lines)
    columns = list(value.columns)
    for col in columns[:max_columns]:
        try:
            series = value[col]
            if type(series).__name__ != "Series":
                continue
            shown, fmt = _examples(series, per_column)
        except Exception:
            continue
        note = f" [dates as {fmt}]" if fmt else ""
        none = "(no rows)" if len(value) == 0 else "(all missing)"
        lines.append(f"  {_clip(str(col), 40)} ({series.dtype}): {', '.join(shown) or none}{note}")
    if len(columns) > max_columns:
        lines.append(f"  ... {len(columns) - max_columns} more columns")
    return "\n".join(lines)


def frames(namespace: Mapping[str, Any], hidden: Mapping[str, Any], max_chars: int) -> str:
    """Example values of the user's pandas DataFrames and Series, within `max_chars`."""
    if max_chars <= 0:
        return ""
    out: list[str] = []
    used = 0
    missing = object()
    for name in sorted(namespace):
        if name.startswith("_"):
            continue
        value = namespace[name]
        if hidden.get(name, missing) is value:
            continue
        cls = type(value)
        if not (cls.__module__ or "").startswith("pandas") or cls.__name__ not in (
            "DataFrame",
            "Series",
        ):
            continue
        try:
            text = describe_frame(name, value)
        except Exception:
            continue
        if used + len(text) + 1 > max_chars:
            break
        out.append(text)
        used += len(text) + 1
    return "\n".join(out)


# -- the probe --------------------------------------------------------------------------------


def probe(
    spec: Mapping[str, Any], namespace: Mapping[str, Any], hidden: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the flow asked for in `spec`, as JSON-able data; never raises."""
    result: dict[str, Any] = {"version": VERSION}
    names = [str(n) for n in spec.get("files", ())][: int(spec.get("max_files", 5))]
    if names:
        seconds = float(spec.get("seconds", 0.2))
        max_bytes = int(spec.get("max_bytes", 65536))
        root = os.getcwd()
        files: list[dict[str, Any]] = []
        try:
            found = resolve(names, root, time.monotonic() + seconds)
        except Exception:
            found = []
        for name, real in found:
            entry: dict[str, Any] = {
                "name": name,
                "path": os.path.relpath(real, os.path.realpath(root)),
            }
            try:
                entry.update(preview_file(real, max_bytes=max_bytes, seconds=seconds))
            except Exception as exc:
                entry["note"] = f"cannot be read: {type(exc).__name__}"
            files.append(entry)
        result["files"] = files
    if spec.get("env"):
        try:
            result["env"] = environment(bool(spec.get("env_fresh")))
        except Exception:
            pass
    frame_chars = int(spec.get("frame_chars", 0))
    if frame_chars > 0:
        try:
            result["frames"] = frames(namespace, hidden or {}, frame_chars)
        except Exception:
            result["frames"] = ""
    return result


def main(
    spec_json: str, namespace: dict[str, Any], emit: Callable[[str], None], marker: str
) -> None:
    """The kernel-side entry point: print the probe's result on one marked line."""
    hidden: Mapping[str, Any] = {}
    shell = namespace.get("get_ipython")
    if callable(shell):
        try:
            ip = shell()
            namespace = ip.user_ns
            hidden = getattr(ip, "user_ns_hidden", {}) or {}
        except Exception:
            pass
    emit(marker + json.dumps(probe(json.loads(spec_json), namespace, hidden)) + "\n")
