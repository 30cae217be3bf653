"""Record the answers `codeflow eval` replays for the shipped task files, reproducibly.

The answers are our own, scripted and served by the loopback model server in
`tests/modelserver.py`, never a real model. The script clears each task file's
`.codeflow/cache/` and runs `codeflow eval` against the server with `--cache-mode rw`;
afterwards the same commands run offline with `--cache-mode replay`:

    python benchmarks/eval/record.py
    codeflow eval benchmarks/eval/tasks.jsonl --cache-mode replay
    codeflow eval benchmarks/eval/dabench/questions.jsonl --labels \\
        benchmarks/eval/dabench/labels.jsonl --tables benchmarks/eval/dabench/tables \\
        --cache-mode replay

Some first answers are wrong on purpose (a KeyError, a NaN from a missed decimal comma), so
pass@1 and pass@k differ and the sanity gate has something to catch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = "```python\n{}\n```"
FIX = "\nRoot cause: {}\nFix: {}"

# (contains, reply) in priority order: fixes first, then each request anchored on "Request:".
RULES: list[tuple[str, str]] = [
    (
        "KeyError: 'region'",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv', sep=';', decimal=',')\n"
            "counts = orders['region'].value_counts().to_dict()\n"
            "print(counts)"
        )
        + FIX.format("the file is separated by semicolons", "read it with sep=';'"),
    ),
    (
        "SanityGate",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv', sep=';', decimal=',')\n"
            "print(f\"@mean_amount[{orders['amount_eur'].mean():.2f}]\")"
        )
        + FIX.format("decimal commas became NaN", "read with decimal=','"),
    ),
    (
        "Request:\nPrint the total of amount_eur",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv', sep=';', decimal=',')\n"
            "print(f\"@total[{orders['amount_eur'].sum():.2f}]\")"
        ),
    ),
    (
        "Request:\nCount the orders per region",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv')\n"
            "counts = orders['region'].value_counts().to_dict()\n"
            "print(counts)"
        ),
    ),
    (
        "Request:\nHow many distinct users",
        PY.format(
            "import json\n"
            "with open('events.jsonl') as handle:\n"
            "    users = {json.loads(line)['user'] for line in handle if line.strip()}\n"
            'print(f"@users[{len(users)}]")'
        ),
    ),
    (
        "Request:\nWhat is the mean order amount",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv', sep=';')\n"
            "amount = pd.to_numeric(orders['amount_eur'], errors='coerce')\n"
            'print(f"@mean_amount[{amount.mean():.2f}]")'
        ),
    ),
    (
        "Request:\nWhich region has the most orders",
        PY.format(
            "import pandas as pd\n"
            "orders = pd.read_csv('orders.csv', sep=';', decimal=',')\n"
            "top = orders['region'].value_counts()\n"
            'print(f"@top_region[{top.index[0]}] @orders[{top.iloc[0]}]")'
        ),
    ),
]

RUNS: list[list[str]] = [
    [str(HERE / "tasks.jsonl")],
    [
        str(HERE / "dabench" / "questions.jsonl"),
        "--labels",
        str(HERE / "dabench" / "labels.jsonl"),
        "--tables",
        str(HERE / "dabench" / "tables"),
    ],
]


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from modelserver import ModelServer

    for folder in (HERE, HERE / "dabench"):
        shutil.rmtree(folder / ".codeflow" / "cache", ignore_errors=True)
    with ModelServer() as server:
        for contains, reply in RULES:
            server.add_rule(contains=contains, reply=reply)
        env = {**os.environ, **server.env()}
        env.pop("CODEFLOW_CACHE", None)
        for args in RUNS:
            cmd = [sys.executable, "-m", "codeflow_magic.cli", "eval", *args, "--cache-mode", "rw"]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, env=env, check=False, cwd=REPO)
        print(f"{len(server.requests)} model requests answered and recorded", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
