"""The pure parts of grounding, and the kernel-side module run in-process: which names are
files, what a preview reads and says, what the sanity gate calls evidence."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scripted import MemoryExecutor, ScriptedProvider

from codeflow_magic import context, grounding
from codeflow_magic.analysis import sanity_evidence
from codeflow_magic.flow import Flow, FlowOptions


class CountingFile(io.RawIOBase):
    """A raw file that counts every byte handed out, whatever the caller asks for."""

    total = 0

    def __init__(self, path: str) -> None:
        self._f = io.FileIO(path, "rb")

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer)
        CountingFile.total += n or 0
        return n or 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()
        super().close()


def counting_open(path: str, mode: str = "r", buffering: int = -1, **kw: Any) -> Any:
    assert mode == "rb", mode
    raw = CountingFile(path)
    return raw if buffering == 0 else io.BufferedReader(raw)


def test_a_2_gb_file_costs_64_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "huge.csv"
    big.write_text("id;amount\n" + "".join(f"{i};{i},5\n" for i in range(30_000)))
    subprocess.run(["truncate", "-s", "2G", str(big)], check=True)
    monkeypatch.setattr(grounding, "open", counting_open, raising=False)
    CountingFile.total = 0
    entry = grounding.preview_file(str(big), max_bytes=65_536, seconds=0.2)
    assert CountingFile.total <= 65_536
    assert entry["bytes_read"] == CountingFile.total
    assert entry["size"] == 2 * 1024**3
    assert entry["kind"] == "delimited text" and entry["delimiter"] == ";"
    assert entry["decimal"] == "," and entry["rows_estimate"] > 10_000_000
    text = context.file_text(entry)
    assert "2.0 GB, previewed from its first 64.0 KB" in text and "(estimated" in text


@pytest.mark.parametrize(
    "name",
    [".env", ".env.local", "prod.env", "id_rsa", "server.pem", "tls.key", "credentials.json",
     "client_secret.json", ".ssh/config", ".aws/config", "access_token.txt", ".netrc"],
)  # fmt: skip
def test_secret_looking_names(name: str) -> None:
    assert grounding.looks_secret(name)
    assert name not in context.file_candidates(f"read {name} please")


@pytest.mark.parametrize(
    "name", ["titanic.csv", "data/orders.csv", "tokenizer_output.jsonl", "environment.yml"]
)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not grounding.looks_secret(name)


def test_file_candidates() -> None:
    found = context.file_candidates(
        "Using titanic.csv and data/x.parquet, df.head() and np.mean, see https://a.io/b.csv, "
        "not .env; also 'my export.xlsx'"
    )
    assert set(found) == {"titanic.csv", "data/x.parquet", "my export.xlsx"}
    assert context.file_candidates("version 1.2.3 of numpy.linalg") == ()


def test_resolve_stays_inside_the_work_dir(tmp_path: Path) -> None:
    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "sub" / ".hidden").mkdir(parents=True)
    outside.mkdir()
    (outside / "leak.csv").write_text("a\n1\n")
    (work / "sub" / "deep.csv").write_text("a\n1\n")
    (work / "sub" / ".hidden" / "skipped.csv").write_text("a\n1\n")
    (work / "link.csv").symlink_to(outside / "leak.csv")
    (work / ".env").write_text("KEY=1\n")
    (work / "innocent.csv").symlink_to(work / ".env")
    names = ["link.csv", "../outside/leak.csv", "deep.csv", "skipped.csv", "innocent.csv"]
    found = grounding.resolve(names, str(work), deadline=float("inf"))
    assert [(n, os.path.relpath(p, work)) for n, p in found] == [("deep.csv", "sub/deep.csv")]


def test_json_shapes(tmp_path: Path) -> None:
    doc = tmp_path / "rows.json"
    doc.write_text(json.dumps([{"id": i, "name": "n" * 50, "tags": []} for i in range(5000)]))
    entry = grounding.preview_file(str(doc), max_bytes=4096, seconds=1)
    assert entry["kind"] == "JSON" and entry["top"] == "array"
    assert entry["records"][0] == ["id", "name", "tags"] and entry["bytes_read"] == 4096
    obj = tmp_path / "cfg.json"
    obj.write_text(json.dumps({"meta": {"v": 1}, "items": [{"sku": 1, "qty": 2}]}))
    entry = grounding.preview_file(str(obj), max_bytes=4096, seconds=1)
    assert entry["keys"] == ["meta", "items"] and entry["records_under"] == "items"
    assert "first records (under 'items'):\n  keys: sku, qty" in context.file_text(entry)


def test_excel_and_binary_files_say_what_they_are(tmp_path: Path) -> None:
    xlsx = tmp_path / "book.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    entry = grounding.preview_file(str(xlsx), max_bytes=4096, seconds=1)
    assert entry["kind"] == "Excel workbook" and entry.get("note")
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    entry = grounding.preview_file(str(png), max_bytes=4096, seconds=1)
    assert entry["kind"] == "PNG image" and entry["size"] == 108


def test_latin1_text_with_tabs(tmp_path: Path) -> None:
    path = tmp_path / "städte.tsv"
    path.write_bytes("stadt\teinwohner\nMünchen\t1488202\nKöln\t1073096\n".encode("cp1252"))
    entry = grounding.preview_file(str(path), max_bytes=4096, seconds=1)
    assert entry["encoding"] == "cp1252" and entry["delimiter"] == "\t" and entry["header"]
    assert entry["rows"] == 2 and entry["first_lines"][1] == "München\t1488202"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2024-01-31", "2024-02-01"], "YYYY-MM-DD"),
        (["31/01/2024", "01/02/2024"], "DD/MM/YYYY"),
        (["01/31/2024", "02/01/2024"], "MM/DD/YYYY"),
        (["01.02.2024", "03.04.2024"], "DD.MM.YYYY or MM.DD.YYYY (ambiguous in these values)"),
        (["apple", "2024-01-01"], None),
    ],
)
def test_date_formats(values: list[str], expected: str | None) -> None:
    assert grounding.date_format(values) == expected


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def result(text: str) -> dict[str, Any]:
    return {"output_type": "execute_result", "data": {"text/plain": text}, "metadata": {}}


@pytest.mark.parametrize(
    "outputs",
    [
        [stream("Mean: 3.5\nTotal: 42\n")],
        [stream("   a    b\n0  1.0  NaN\n1  2.0  3.0\n2  NaN  4.0\n")],
        [result("region\nnorth    12.5\nsouth     8.0\nName: price, dtype: float64")],
        [stream("Info: inference done for nancy\n")],
        [
            stream(
                "/v/lib/python3.11/site-packages/seaborn/_oldcore.py:1119: FutureWarning: "
                "use_inf_as_na option is deprecated\n",
                "stderr",
            )
        ],
        [{"output_type": "display_data", "data": {"image/png": "nan"}, "metadata": {}}],
    ],
)
def test_ordinary_results_are_no_evidence(outputs: list[dict[str, Any]]) -> None:
    assert sanity_evidence(outputs, "summarise the prices") == ()


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ([stream("average price: nan\n")], "a NaN/inf result: 'average price: nan'"),
        ([result("nan")], "a NaN/inf result: 'nan'"),
        ([result("a   NaN\nb   NaN\ndtype: float64")], "NaN/inf values and few numbers"),
        ([result("Empty DataFrame\nColumns: [a]\nIndex: []")], "an empty result: 'Empty DataFrame"),
        ([result("Series([], Name: x, dtype: float64)")], "an empty result: 'Series([]"),
        ([stream("x.py:3: RuntimeWarning: divide by zero encountered in log\n", "stderr")],
         "a warning: 'RuntimeWarning: divide by zero encountered in log'"),
        ([stream("<ipython>:2: SettingWithCopyWarning: \nA value is trying", "stderr")],
         "a warning: 'SettingWithCopyWarning:"),
        ([stream("ratio = inf\n")], "a NaN/inf result: 'ratio = inf'"),
        ([stream("/tmp/ipykernel_1/2.py:4: FutureWarning: The default of observed=False is "
                 "deprecated\n", "stderr")], "a warning: 'FutureWarning: The default of observed"),
        ([stream("/tmp/x.py:2: UserWarning: Could not infer format, so each element will be "
                 "parsed individually\n", "stderr")], "a warning: 'UserWarning: Could not infer"),
    ],
)  # fmt: skip
def test_evidence_of_a_wrong_result(outputs: list[dict[str, Any]], expected: str) -> None:
    found = sanity_evidence(outputs, "compute it")
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_request_about_missing_values_is_left_alone() -> None:
    outputs = [stream("share missing: nan\n"), result("Empty DataFrame\nColumns: []\nIndex: []")]
    assert sanity_evidence(outputs, "count the missing values per column") == ()
    assert sanity_evidence(outputs, "rows where price is NaN") == ()


def test_substitutes_name_only_what_is_installed() -> None:
    found = context.substitutes("scipy.stats", ["numpy", "pandas"])
    assert found[0].startswith("numpy (") and found[1].startswith("statistics (standard library")
    assert not any(s.startswith("statsmodels") for s in found)
    assert context.substitutes("sklearn.linear_model", ["numpy"])[0].startswith("numpy (")
    assert context.substitutes("nothing_known", ["numpy"]) == []


def test_previews_and_notebook_stay_within_their_budgets() -> None:
    huge = {"path": "x.csv", "size": 10, "kind": "text", "first_lines": ["y" * 5000] * 50}
    assert len(context.files_text([huge] * 5, 3000)) <= 3000
    cells = [("markdown", "z" * 5000)] * 30
    assert len(context.notebook_text(cells, 1500)) <= 1500
    assert context.notebook_text(cells, 0) == ""


def test_preceding_cells_by_id_by_request_and_without_generated_code() -> None:
    cells = [
        {"cell_type": "markdown", "id": "a", "source": "# Title"},
        {"cell_type": "code", "id": "b", "source": "%%codeflow\nload it"},
        {
            "cell_type": "code",
            "id": "g",
            "source": "df = load()",
            "metadata": {"codeflow": {"generated_from": "b"}},
        },
        {"cell_type": "raw", "id": "r", "source": "raw text"},
        {"cell_type": "code", "id": "c", "source": ["%%codeflow --max-attempts 2\n", "plot it"]},
        {"cell_type": "code", "id": "d", "source": "%%codeflow\nload it"},
    ]
    by_id = context.preceding_cells(cells, cell_id="c", request="ignored")
    assert by_id == [("code", "%%codeflow\nload it"), ("markdown", "# Title")]
    second = context.preceding_cells(cells, cell_id=None, request="load it", occurrence=1)
    assert second[0] == ("code", "%%codeflow --max-attempts 2\nplot it") and len(second) == 3
    assert context.preceding_cells(cells, cell_id=None, request="load it") == [
        ("markdown", "# Title")
    ]
    assert context.preceding_cells(cells, cell_id=None, request="never asked") == []


def block(code: str) -> str:
    return f"```python\n{code}\n```"


async def test_sanity_off_and_check_keep_the_gate_quiet() -> None:
    for opts in ({"sanity": "off"}, {"check": "True"}):
        provider = ScriptedProvider([block("print('mean:', float('nan'))")])
        flow = Flow(provider, MemoryExecutor())
        record = await flow.run("the mean", FlowOptions(**opts))  # type: ignore[arg-type]
        assert record.success and len(record.attempts) == 1
        assert record.attempts[0].sanity == ()


async def test_a_kernel_without_files_named_is_not_waited_for(tmp_path: Path) -> None:
    class Unstarted(MemoryExecutor):
        started = False

        async def start(self) -> None:
            self.started = True  # type: ignore[misc]

    executor = Unstarted()
    provider = ScriptedProvider([block("print(1)")])
    record = await Flow(provider, executor).run("print one", FlowOptions())
    assert record.success
    first = provider.requests[0].messages[0].content
    assert "Environment" not in first and "Files named" not in first
