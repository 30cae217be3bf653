"""Rebuild the example notebooks and their recorded model answers, reproducibly.

The answers are our own: scripted replies served by the loopback model server in
`tests/modelserver.py`, never a real model. The script writes each notebook from the
definitions below, clears `notebooks/.codeflow/cache/`, and runs every notebook with
`codeflow run --inplace --cache-mode rw` against the server, so the committed notebooks hold
their outputs and written-back code and the cache holds every answer they need. Afterwards
`codeflow run` / `pytest --nbval-lax notebooks/` replay them offline (`CODEFLOW_CACHE=replay`).

    python notebooks/record_responses.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHECK = "nbval-check-output"

PY = "```python\n{}\n```"
SH = "```bash\n{}\n```"

# (contains, reply) in priority order: fix prompts contain the request too, so fixes come first.
# A request's rule is anchored on "Request:\n": later prompts quote the cells above them.
RULES: list[tuple[str, str]] = [
    (
        "NameError: name 'statistics' is not defined",
        "`statistics` was used without importing it.\n\n"
        + PY.format(
            "import statistics\n\n"
            "mean_value = statistics.mean(numbers)\n"
            "std_value = statistics.stdev(numbers)\n"
            'print(f"mean {mean_value:.3f}, standard deviation {std_value:.3f}")'
        ),
    ),
    (
        "data/sale.csv: No such file",
        "The file is `data/sales.csv` (plural).\n\n"
        + SH.format('lines=$(wc -l < data/sales.csv)\necho "data/sales.csv has $lines lines"'),
    ),
    (
        "Column not found: revenu",
        "Root cause: the column is `revenue`; `revenu` is a typo.\nFix: use `revenue`.\n\n"
        + PY.format(
            "by_product = sales.groupby('product')['revenue'].sum().sort_values(ascending=False)\n"
            "best_product = by_product.index[0]\n"
            "print(by_product.round(2).to_string())"
        ),
    ),
    (
        "Request:\nFind the best-selling product by revenue in data/sales.csv",
        "## Load the sales\n"
        "Read the file with the dates parsed and add the revenue of each row.\n"
        + PY.format(
            "import pandas as pd\n\n"
            "sales = pd.read_csv('data/sales.csv', parse_dates=['date'])\n"
            "sales['revenue'] = sales['units'] * sales['price']\n"
            "print(len(sales), 'rows from', sales['date'].min().date(), 'to', "
            "sales['date'].max().date())"
        )
        + "\n\n## Revenue per product\n"
        "Total revenue of each product, largest first.\n"
        + PY.format(
            "by_product = sales.groupby('product')['revenu'].sum().sort_values(ascending=False)\n"
            "best_product = by_product.index[0]\n"
            "print(by_product.round(2).to_string())"
        )
        + "\n\n## Plot the totals\n"
        "A bar chart, the best seller first.\n"
        + PY.format(
            "import matplotlib.pyplot as plt\n\n"
            "ax = by_product.plot(kind='bar', figsize=(6, 3), title='Revenue per product')\n"
            "ax.set_ylabel('revenue')\n"
            "plt.show()\n"
            "print('best seller:', best_product)"
        ),
    ),
    (
        "Request:\nCompute the mean and the standard deviation of numbers",
        "Using the standard library:\n\n"
        + PY.format(
            "mean_value = statistics.mean(numbers)\n"
            "std_value = statistics.stdev(numbers)\n"
            'print(f"mean {mean_value:.3f}, standard deviation {std_value:.3f}")'
        ),
    ),
    (
        "Request:\nDraw a bar chart of numbers",
        PY.format(
            "import matplotlib.pyplot as plt\n\n"
            "fig, ax = plt.subplots(figsize=(6, 3))\n"
            "ax.bar(range(len(numbers)), numbers, color='#4c72b0')\n"
            "ax.axhline(mean_value, color='#dd8452', linestyle='--', label='mean')\n"
            "ax.set_title('numbers')\n"
            "ax.legend()\n"
            "plt.show()"
        ),
    ),
    (
        "Request:\nLoad data/sales.csv",
        PY.format(
            "import pandas as pd\n\n"
            "sales = pd.read_csv('data/sales.csv', parse_dates=['date'])\n"
            "sales['revenue'] = sales['units'] * sales['price']\n"
            "sales.head()"
        ),
    ),
    (
        "Request:\nCompute monthly revenue",
        PY.format(
            "import matplotlib.pyplot as plt\n\n"
            "monthly_revenue = sales.groupby(sales['date'].dt.to_period('M'))['revenue'].sum()\n"
            "ax = monthly_revenue.plot(kind='line', marker='o', figsize=(6, 3),\n"
            "                          title='Monthly revenue')\n"
            "ax.set_ylabel('revenue')\n"
            "plt.show()\n"
            'print(f"best month: {monthly_revenue.idxmax()} ({monthly_revenue.max():.2f})")'
        ),
    ),
    (
        "Request:\nCount the lines of data/sales.csv",
        SH.format('lines=$(wc -l < data/sale.csv)\necho "data/sales.csv has $lines lines"'),
    ),
    (
        "Request:\nShow every file in data/ with its sizes in bytes",
        SH.format('for f in data/*; do\n  printf \'%s %s bytes\\n\' "$f" "$(wc -c < "$f")"\ndone'),
    ),
]


def code(source: str, tags: tuple[str, ...] = ()) -> dict[str, Any]:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return dict(cell)


def markdown(source: str) -> dict[str, Any]:
    import nbformat

    return dict(nbformat.v4.new_markdown_cell(source))


NOTEBOOKS: dict[str, list[dict[str, Any]]] = {
    "quickstart.ipynb": [
        markdown(
            "# codeflow quickstart\n\n"
            "`%%codeflow` turns a request in plain words into code, runs it in this notebook, "
            "fixes it when it fails and writes the working code into the cell below the "
            "request. Open *History* under a result to see every attempt."
        ),
        code("%load_ext codeflow_magic"),
        code("numbers = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]"),
        markdown(
            "The first answer to this request forgets an import; codeflow sees the "
            "`NameError`, asks for a fix and keeps the working version."
        ),
        code(
            "%%codeflow\n"
            "Compute the mean and the standard deviation of numbers and store them in "
            "mean_value and std_value"
        ),
        markdown("Generated code uses variables from earlier cells and leaves its own behind."),
        code("%%codeflow\nDraw a bar chart of numbers with a dashed line at mean_value"),
        code('print(f"mean={mean_value:.3f} std={std_value:.3f}")', (CHECK,)),
    ],
    "data_analysis.ipynb": [
        markdown("# Monthly revenue from a small sales file"),
        code("%load_ext codeflow_magic"),
        code(
            "%%codeflow\n"
            "Load data/sales.csv into a DataFrame called sales with the date column parsed "
            "as dates, and add a revenue column (units times price)"
        ),
        code(
            "%%codeflow\n"
            "Compute monthly revenue from sales into a Series monthly_revenue and plot it as "
            "a line chart"
        ),
        code("print(monthly_revenue.round(2).to_string())", (CHECK,)),
    ],
    "steps.ipynb": [
        markdown(
            "# A request in steps\n\n"
            "`%%codeflow --steps` asks for a plan: each step becomes a markdown cell and a code "
            "cell below the request, and runs through the usual loop. Here the second step "
            "first uses a misspelt column; codeflow fixes that step and goes on. The step "
            "cells keep their outputs and, in their metadata, the history of their attempts."
        ),
        code("%load_ext codeflow_magic"),
        code(
            "%%codeflow --steps\n"
            "Find the best-selling product by revenue in data/sales.csv (units times price), "
            "store it in best_product, and plot the revenue of every product"
        ),
        code("print('best seller:', best_product)", (CHECK,)),
    ],
    "bash_basics.ipynb": [
        markdown(
            "# Bash requests\n\n`--language bash` asks for a Bash script; it runs from the "
            "notebook's folder and is written back as a `%%bash` cell."
        ),
        code("%load_ext codeflow_magic"),
        code("%%codeflow --language bash\nCount the lines of data/sales.csv"),
        code("%%codeflow --language bash\nShow every file in data/ with its sizes in bytes"),
        code(
            "with open('data/sales.csv') as handle:\n    print(sum(1 for _ in handle), 'lines')",
            (CHECK,),
        ),
    ],
}


def build(names: list[str]) -> None:
    import nbformat

    for name in names:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.from_dict(c) for c in NOTEBOOKS[name]]
        for index, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:8]}-{index:02d}"
        nbformat.validate(nb)
        (HERE / name).write_text(nbformat.writes(nb), encoding="utf-8")


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from modelserver import ModelServer

    names = sorted(NOTEBOOKS)
    build(names)
    shutil.rmtree(HERE / ".codeflow" / "cache", ignore_errors=True)
    with ModelServer() as server:
        for contains, reply in RULES:
            server.add_rule(contains=contains, reply=reply)
        env = {**os.environ, **server.env(), "CODEFLOW_CACHE": "rw", "MPLBACKEND": ""}
        env.pop("MPLBACKEND")
        for name in names:
            cmd = [sys.executable, "-m", "codeflow_magic.cli", "run", "--inplace", str(HERE / name)]
            print("$", " ".join(cmd), flush=True)
            done = subprocess.run(cmd, env=env, check=False)
            if done.returncode != 0:
                print(f"recording {name} failed (exit {done.returncode})", file=sys.stderr)
                return done.returncode
        print(f"{len(server.requests)} model requests answered and recorded", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
