"""Grounding on the flow's side: which files a request names, the probe that looks at them
inside the kernel (`grounding`), and the bounded text the prompts get from its answer.

Pure but for reading `grounding.py`'s own source once (it travels into the kernel as code,
since a kernel in a container or behind a gateway has no codeflow installed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from .grounding import DATA_EXTENSIONS, DATA_LIBRARIES, human_size, looks_secret
from .prompts import ENV_CHARS

MARKER = "@@codeflow-probe@@ "
"""Starts the one stdout line that carries the probe's JSON answer."""

NOTEBOOK_CELL_CHARS = 800
"""Room for one notebook cell's source, at most (the whole block has `notebook_chars`)."""

NotebookCell = tuple[str, str]
"""(cell type, source) of a notebook cell, as the prompt shows it."""

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
_QUOTED = re.compile(
    r"""(?<![^\s(\[])["'`\u201c\u2018]([^"'`\n\u201d\u2019]{1,300})["'`\u201d\u2019](?=$|[\s).,;:!?\]])"""
)
_TOKEN = re.compile(r"(?<![\w@$])((?:~|\.{1,2})?/?(?:[\w.+-]+/)*[\w+-]*(?:\.[\w-]+)+)")


def file_candidates(request: str, limit: int = 5) -> tuple[str, ...]:
    """Names in the request that may be files: paths (`data/orders.csv`, any extension) and
    bare names with a data-ish extension (`titanic.csv`, not `df.head`); secrets dropped."""
    text = _URL.sub(" ", request)
    found: list[str] = []

    def add(name: str) -> None:
        name = name.strip().rstrip(".,:;!?)")
        if not name or len(name) > 300 or name in found:
            return
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if "." not in base.strip("."):
            return
        ext = base.rsplit(".", 1)[-1].lower()
        if "/" not in name and ext not in DATA_EXTENSIONS:
            return
        if looks_secret(name) or re.fullmatch(r"[\d.]+", base):
            return
        found.append(name)

    for match in _QUOTED.finditer(text):
        add(match.group(1))
    text = _QUOTED.sub(" ", text)
    for match in _TOKEN.finditer(text):
        add(match.group(1))
    return tuple(found[:limit])


@cache
def _grounding_source() -> str:
    return (Path(__file__).parent / "grounding.py").read_text(encoding="utf-8")


def probe_snippet(spec: Mapping[str, Any]) -> str:
    """Python that prints the probe's answer on one marked line and leaves no trace.

    The module is compiled once per kernel and kept in `sys.modules` (so the environment is
    looked up once per kernel); user data travels as a JSON literal.
    """
    from .grounding import VERSION

    return (
        "def _codeflow_probe():\n"
        '    globals().pop("_codeflow_probe", None)\n'
        "    import sys, types\n"
        '    mod = sys.modules.get("_codeflow_grounding")\n'
        f'    if mod is None or getattr(mod, "VERSION", None) != {VERSION}:\n'
        '        mod = types.ModuleType("_codeflow_grounding")\n'
        '        sys.modules["_codeflow_grounding"] = mod\n'
        f"        exec(compile({_grounding_source()!r}, '<codeflow-grounding>', 'exec'), "
        "mod.__dict__)\n"
        f"    mod.main({json.dumps(dict(spec))!r}, globals(), sys.stdout.write, {MARKER!r})\n"
        "\n"
        "\n"
        "_codeflow_probe()\n"
    )


def parse_probe(outputs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The probe's answer from its outputs ({} when it printed none)."""
    return parse_marked(outputs, MARKER)


def parse_marked(outputs: Iterable[Mapping[str, Any]], marker: str) -> dict[str, Any]:
    """The JSON object a snippet printed on its last stdout line starting with `marker`
    ({} when there is none): how codeflow's own snippets answer from inside a kernel."""
    text = "".join(
        str(o.get("text", ""))
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    for line in reversed(text.splitlines()):
        if line.startswith(marker):
            try:
                data = json.loads(line[len(marker) :])
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


# -- text for prompts -------------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 20:
        return text[:limit]
    return text[: limit - 16].rstrip() + "\n... [cut here]"


def _count(entry: Mapping[str, Any], exact: str, estimate: str, what: str) -> str:
    if isinstance(entry.get(exact), int):
        return f"{entry[exact]:,} {what[:-1] if entry[exact] == 1 else what}"
    if isinstance(entry.get(estimate), int):
        return f"about {entry[estimate]:,} {what} (estimated from the part read)"
    return ""


def file_text(entry: Mapping[str, Any]) -> str:
    """One file's preview as the model reads it."""
    path = str(entry.get("path") or entry.get("name"))
    size = entry.get("size")
    kind = str(entry.get("kind", "file"))
    facts = [kind]
    if isinstance(size, int):
        read = entry.get("bytes_read")
        part = ""
        if isinstance(read, int) and read < size:
            part = f", previewed from its first {human_size(read)}"
        facts.append(f"{human_size(size)}{part}")
    if entry.get("encoding"):
        facts.append(f"encoding {entry['encoding']}")
    if entry.get("delimiter"):
        facts.append(f"delimiter {entry['delimiter']!r}")
    if entry.get("decimal"):
        facts.append(f"decimal mark {entry['decimal']!r}")
    if "header" in entry:
        facts.append("header row: " + ("yes" if entry["header"] else "no"))
    rows = _count(entry, "rows", "rows_estimate", "rows")
    if rows:
        facts.append(rows)
    elif kind == "text" or kind.startswith("JSON"):
        lines = _count(entry, "lines", "lines_estimate", "lines")
        if lines:
            facts.append(lines)
    if isinstance(entry.get("length"), int):
        facts.append(f"{entry['length']:,} top-level items")
    if isinstance(entry.get("record_batches"), int):
        facts.append(f"{entry['record_batches']} record batches")
    out = [f"{path}: " + ", ".join(facts)]
    if entry.get("note"):
        out.append(f"note: {entry['note']}")
    if entry.get("top"):
        out.append(f"top level: {entry['top']}")
    if entry.get("keys"):
        out.append("keys: " + ", ".join(str(k) for k in entry["keys"]))
    if entry.get("records"):
        under = f" (under {entry['records_under']!r})" if entry.get("records_under") else ""
        out.append(f"first records{under}:")
        for record in entry["records"]:
            shown = ", ".join(str(k) for k in record) if isinstance(record, list) else record
            out.append(f"  keys: {shown}" if isinstance(record, list) else f"  a {shown}")
    if entry.get("columns"):
        count = entry.get("column_count", len(entry["columns"]))
        out.append(f"columns ({count}): " + ", ".join(str(c) for c in entry["columns"]))
    if entry.get("sheet_names"):
        out.append("sheets: " + ", ".join(str(s) for s in entry["sheet_names"]))
    for sheet in entry.get("sheets", ()):
        if isinstance(sheet, Mapping) and sheet.get("first_rows"):
            out.append(f"sheet {sheet.get('name')!r} first rows:")
            out.extend(f"  {row}" for row in sheet["first_rows"])
    if entry.get("first_lines"):
        out.append("first lines:")
        out.extend(f"  {line}" for line in entry["first_lines"])
    return "\n".join(out)


def files_text(files: Sequence[Mapping[str, Any]], budget: int) -> str:
    """Every previewed file, the budget shared evenly (a file given less is cut, never dropped)."""
    if not files or budget <= 0:
        return ""
    share = budget // len(files)
    return "\n\n".join(clip(file_text(f), max(0, share - 2)) for f in files)


def _minor(version: object) -> str:
    """`2.2.3` -> `2.2`: what decides an API; a patch release must not change the prompt
    (recorded answers are keyed by the prompt)."""
    return ".".join(str(version).split(".")[:2])


def env_text(env: Mapping[str, Any]) -> str:
    """`Python 3.11; installed: numpy 2.1, ...; not installed: polars, ...`."""
    libs = env.get("libraries")
    if not env.get("python") or not isinstance(libs, Mapping):
        return ""
    present = [f"{n} {_minor(v)}" for n, v in libs.items() if v]
    absent = [n for n, v in libs.items() if not v]
    parts = [f"Python {_minor(env['python'])}"]
    parts.append("installed: " + (", ".join(present) if present else "none of the data libraries"))
    if absent:
        parts.append("not installed: " + ", ".join(absent))
    return clip("; ".join(parts), ENV_CHARS)


def notebook_text(cells: Sequence[NotebookCell], budget: int) -> str:
    """The cells above the request, nearest first, within `budget` characters."""
    out: list[str] = []
    left = budget
    for distance, (kind, source) in enumerate(cells, start=1):
        head = f"[{kind} cell, {distance} above]"
        room = min(NOTEBOOK_CELL_CHARS, left - len(head) - 2)
        if room < 40:
            break
        body = clip(source.strip(), room)
        out.append(f"{head}\n{body}")
        left -= len(head) + len(body) + 2
    return "\n\n".join(out)


# -- notebook cells ---------------------------------------------------------------------------

MAX_CELLS = 12


def preceding_cells(
    cells: Sequence[Mapping[str, Any]],
    *,
    cell_id: str | None,
    request: str,
    occurrence: int = 0,
    limit: int = MAX_CELLS,
) -> list[NotebookCell]:
    """The code and markdown cells above the request's cell, nearest first.

    The cell is found by id when the front end sent one (JupyterLab does), else as the
    `%%codeflow` cell whose body is `request` (`occurrence` picks among identical ones: the
    n-th time the same request ran, the n-th such cell, as a top-to-bottom run goes).

    Cells that codeflow wrote (the code below a request) are left out and a request cell that
    `--replace` turned into code counts as its request: the context is what the user wrote, so
    a notebook run again after write-back asks the same prompt (and replays from the cache).
    """
    from .notebook import META_KEY, is_generated_cell, is_replaced_cell, split_request

    def text(cell: Mapping[str, Any]) -> str:
        src = cell.get("source", "")
        return "".join(src) if isinstance(src, list) else str(src)

    def is_request(cell: Mapping[str, Any]) -> bool:
        parts = split_request(text(cell)) if cell.get("cell_type") == "code" else None
        return parts is not None and parts[1].strip() == wanted

    wanted = request.strip()
    index: int | None = None
    if cell_id:
        index = next((i for i, c in enumerate(cells) if c.get("id") == cell_id), None)
    if index is None:
        same = [i for i, c in enumerate(cells) if is_request(c)]
        if same:
            index = same[occurrence % len(same)]
    if index is None:
        return []
    out: list[NotebookCell] = []
    for cell in reversed(cells[:index]):
        kind = str(cell.get("cell_type", ""))
        if is_generated_cell(cell):
            continue
        body = text(cell)
        if is_replaced_cell(cell):
            body = "%%codeflow\n" + str(cell["metadata"][META_KEY].get("request", ""))
        if kind not in ("code", "markdown") or not body.strip():
            continue
        out.append((kind, body))
        if len(out) >= limit:
            break
    return out


# -- substitutes for a missing module ---------------------------------------------------------

STDLIB = "standard library"

SUBSTITUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "scipy.stats": (
        ("numpy", "mean, std, percentile, corrcoef, histogram"),
        ("statistics", STDLIB + ": mean, median, stdev, correlation, linear_regression"),
        ("statsmodels", "tests and regression models"),
    ),
    "scipy": (
        ("numpy", "linear algebra, FFT, polyfit, interpolation with numpy.interp"),
        ("statistics", STDLIB + ": descriptive statistics"),
    ),
    "sklearn": (
        ("numpy", "least squares with numpy.linalg.lstsq, distances, k-means by hand"),
        ("statsmodels", "regression models"),
        ("scipy", "scipy.cluster, scipy.optimize"),
    ),
    "statsmodels": (
        ("numpy", "ordinary least squares with numpy.linalg.lstsq"),
        ("scipy", "scipy.stats tests"),
    ),
    "seaborn": (("matplotlib", "the same plots by hand"), ("plotly", "plotly.express")),
    "plotly": (("matplotlib", "static plots"),),
    "matplotlib": (("plotly", "plotly.express"),),
    "polars": (("pandas", "DataFrames"),),
    "pandas": (("polars", "DataFrames"), ("csv", STDLIB + ": reading and writing CSV")),
    "numpy": (
        ("math", STDLIB),
        ("statistics", STDLIB + ": mean, median, stdev"),
    ),
    "pyarrow": (("fastparquet", "Parquet files"), ("polars", "read_parquet")),
    "openpyxl": (("xlrd", "old .xls files"), ("zipfile", STDLIB + ": an .xlsx is a zip of XML")),
    "requests": (("httpx", "HTTP client"), ("urllib.request", STDLIB)),
    "bs4": (("lxml", "HTML parsing"), ("html.parser", STDLIB)),
    "tabulate": (("pandas", "DataFrame.to_string / to_markdown"),),
    "dateutil": (("datetime", STDLIB + ": datetime.strptime, fromisoformat"),),
    "yaml": (("json", STDLIB + ": if the data can be JSON"),),
    "tqdm": (("print", "progress lines by hand"),),
}
"""Packages that can do a missing package's job: (module, what for), the first ones first."""

_DIST = {"sklearn": "scikit-learn", "bs4": "beautifulsoup4", "yaml": "pyyaml"}
_BUILTIN = frozenset({"statistics", "csv", "math", "json", "zipfile", "datetime", "print"})


def substitutes(module: str, installed: Iterable[str]) -> list[str]:
    """Installed packages (or standard modules) that can stand in for `module`, with what for."""
    have = {name.lower().replace("_", "-") for name in installed}
    parts = module.split(".")
    options: tuple[tuple[str, str], ...] = ()
    for end in range(len(parts), 0, -1):
        options = SUBSTITUTES.get(".".join(parts[:end]), ())
        if options:
            break
    out: list[str] = []
    for name, what in options:
        top = name.split(".")[0]
        dist = _DIST.get(top, top).lower()
        if top in _BUILTIN or name == "urllib.request" or name == "html.parser" or dist in have:
            out.append(f"{name} ({what})")
    return out


__all__ = [
    "DATA_LIBRARIES",
    "MARKER",
    "env_text",
    "file_candidates",
    "files_text",
    "notebook_text",
    "parse_probe",
    "preceding_cells",
    "probe_snippet",
    "substitutes",
]
