"""Grounded requests end to end: `codeflow ask` in a real kernel, prompts recorded by the
loopback model server. What the model sees of the files, the state and the environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from modelserver import ModelServer

from codeflow_magic.prompts import fix_prompt_budget, generate_prompt_budget

pytestmark = pytest.mark.kernel


def py(code: str, note: str = "") -> str:
    return f"Here is the code.\n```python\n{code}\n```\n{note}"


def test_semicolon_csv_with_decimal_commas_is_previewed(
    codeflow, server: ModelServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text(
        "order_id;order_date;amount_eur\n"
        "1;03.01.2024;12,50\n"
        "2;15.01.2024;7,25\n"
        "3;28.02.2024;100,00\n",
        encoding="utf-8",
    )
    server.add_rule(contains="total revenue", reply=py("print('total: 119.75')"))
    res = codeflow("ask", "load orders.csv and print the total revenue", "--format", "json")
    assert res.code == 0, res.stderr
    prompt = server.prompts()[0]
    assert "data/orders.csv: delimited text" in prompt
    assert "delimiter ';'" in prompt and "decimal mark ','" in prompt
    assert "header row: yes" in prompt and "3 rows" in prompt
    assert "columns (3): order_id, order_date, amount_eur" in prompt
    assert "  1;03.01.2024;12,50\n" in prompt and "  3;28.02.2024;100,00" in prompt
    assert "Python 3." in prompt and "installed: " in prompt  # the environment line


def test_jsonl_keys_and_a_2_gb_file_read_64_kb_and_no_env_file(
    codeflow, server: ModelServer, tmp_path: Path
) -> None:
    (tmp_path / "events.jsonl").write_text(
        '{"user": "a", "event": "click", "ts": 1}\n{"user": "b", "event": "view", "ms": 5}\n'
    )
    big = tmp_path / "big.csv"
    rows = "".join(f"{i},{i * 0.5},name{i}\n" for i in range(20_000))  # about 300 KB of rows
    big.write_text("id,value,label\n" + rows)
    subprocess.run(["truncate", "-s", "2G", str(big)], check=True)  # sparse: costs no disk
    (tmp_path / ".env").write_text("DB_PASSWORD=hunter2-very-secret\n")
    server.add_rule(contains="count events", reply=py("print(2)"))
    res = codeflow(
        "ask",
        "count events per user in events.jsonl, join big.csv, settings are in .env",
        "--format",
        "json",
    )
    assert res.code == 0, res.stderr
    prompt = server.prompts()[0]
    assert "events.jsonl: JSON lines" in prompt
    assert "keys: user, event, ts" in prompt and "keys: user, event, ms" in prompt
    assert "big.csv: delimited text, 2.0 GB, previewed from its first 64.0 KB" in prompt
    assert "columns (3): id, value, label" in prompt and "about " in prompt
    assert "hunter2" not in prompt and ".env:" not in prompt


def test_state_summary_shows_example_values_and_date_format(codeflow, server: ModelServer) -> None:
    first = (
        "import pandas as pd\n"
        "sales = pd.DataFrame({'day': ['31/01/2024', '15/02/2024', '01/03/2024'],"
        " 'amount': [1.5, 2.25, 3.0]})\n"
        "raise ValueError('dates not parsed')"
    )
    server.add_rule(contains="dates not parsed", reply=py("print(sales.amount.sum())"))
    server.add_rule(contains="sum the sales", reply=py(first))
    # rollback off: the failed attempt's `sales` stays, so the fix prompt's state shows it
    res = codeflow("ask", "sum the sales", "--format", "json", "execution.rollback=off")
    assert res.code == 0, res.stderr
    fix = server.prompts()[1]
    assert "sales: DataFrame 3 rows x 2 cols" in fix
    assert "Example values:" in fix
    assert "day (" in fix and "'31/01/2024'" in fix and "[dates as DD/MM/YYYY]" in fix
    assert "amount (float64): 1.5, 2.25, 3.0" in fix
    assert "RangeIndex 0..2" in fix


def test_import_error_for_scipy_names_numpy(codeflow, server: ModelServer) -> None:
    missing = (
        "raise ModuleNotFoundError(\"No module named 'scipy'\", name='scipy')\n"
        "from scipy import stats"
    )
    server.add_rule(contains="ModuleNotFoundError", reply=py("import numpy as np\nprint(1.0)"))
    server.add_rule(contains="z-scores", reply=py(missing))
    res = codeflow("ask", "z-scores of 1 2 3", "--format", "json")
    assert res.code == 0, res.stderr
    fix = server.prompts()[1]
    assert "Installed packages that can do the job instead: numpy (" in fix
    assert "statistics (standard library" in fix
    assert "alternatives below" not in fix


def test_prompts_stay_within_the_documented_budget(
    codeflow, server: ModelServer, tmp_path: Path
) -> None:
    long_line = ";".join(f"column_{i}_" + "x" * 30 for i in range(200))
    names = []
    for n in range(6):
        name = f"wide{n}.csv"
        (tmp_path / name).write_text((long_line + "\n") * 3000)
        names.append(name)
    setup = (
        "import pandas as pd\n"
        "frames = {}\n"
        "for k in range(30):\n"
        "    globals()[f'frame_{k}'] = pd.DataFrame({f'c{j}_' + 'y' * 50: ['z' * 100] * 3"
        " for j in range(40)})\n"
        "raise RuntimeError('x' * 100000)"
    )
    request = "merge " + " ".join(names) + " and print it"
    server.add_rule(contains="RuntimeError", reply=py("print('merged')"))
    server.add_rule(contains="merge wide0", reply=py(setup))
    res = codeflow("ask", request, "--format", "json", "execution.rollback=off")
    assert res.code == 0, res.stderr
    first, fix = server.prompts()[:2]
    assert "wide0.csv: delimited text" in first
    assert len(first) <= generate_prompt_budget(
        request, language="python", state_chars=2000, preview_chars=3000, notebook_chars=1500
    )
    record = res.json()
    code = record["attempts"][0]["code"]
    assert "frame_29" in fix or "more" in fix  # the state was there, and cut
    assert len(fix) <= fix_prompt_budget(
        request,
        code,
        language="python",
        output_chars=4000,
        state_chars=2000,
        preview_chars=3000,
        notebook_chars=1500,
    )


def test_sanity_gate_turns_nan_over_no_rows_into_a_second_attempt(
    codeflow, server: ModelServer
) -> None:
    wrong = (
        "import pandas as pd\n"
        "df = pd.DataFrame({'region': ['north', 'south'], 'price': [10.0, 20.0]})\n"
        "sel = df[df.region == 'North']\n"
        "print('average price:', sel.price.mean())"
    )
    # the wrong attempt was rolled back: the fix makes its own `df`
    right = wrong.replace("df.region == 'North'", "df.region.str.lower() == 'north'")
    server.add_rule(contains="SanityGate", reply=py(right, "Root cause: case\nFix: lower()"))
    server.add_rule(contains="average price", reply=py(wrong))
    res = codeflow("ask", "average price in the north region", "--format", "json")
    assert res.code == 0, res.stderr
    record = res.json()
    first, second = record["attempts"]
    assert first["success"] is False and first["error"]["category"] == "logical"
    assert first["error"]["ename"] == "SanityGate"
    assert first["sanity"] == ["a NaN/inf result: 'average price: nan'"]
    assert second["success"] is True and second["sanity"] == []
    fix = server.prompts()[1]
    assert "Evidence that the result is wrong:\n- a NaN/inf result: 'average price: nan'" in fix
    assert record["outputs"][0]["text"] == "average price: 10.0\n"


def test_sanity_gate_leaves_a_normal_result_alone_and_warn_only_records(
    codeflow, server: ModelServer
) -> None:
    server.add_rule(
        contains="table with a gap",
        reply=py(
            "import pandas as pd\n"
            "df = pd.DataFrame({'a': [1.0, None, 3.0], 'b': [4.0, 5.0, 6.0]})\n"
            "print(df)\nprint('mean of a:', df.a.mean())"
        ),
    )
    res = codeflow("ask", "print a table with a gap", "--format", "json")
    assert res.code == 0, res.stderr
    record = res.json()
    assert len(record["attempts"]) == 1 and record["attempts"][0]["sanity"] == []
    assert record["warnings"] == []

    server.add_rule(contains="zero numbers", reply=py("import numpy as np\nprint(np.mean([]))"))
    res = codeflow("ask", "average of zero numbers", "--format", "json", "improvement.sanity=warn")
    assert res.code == 0, res.stderr
    record = res.json()
    assert len(record["attempts"]) == 1 and record["success"] is True
    seen = record["attempts"][0]["sanity"]
    assert any("RuntimeWarning: Mean of empty slice" in s for s in seen), seen
    assert any("a NaN/inf result: 'nan'" in s for s in seen), seen
    assert any("result may be wrong" in w for w in record["warnings"])
    assert json.dumps(record)  # the record is plain JSON
