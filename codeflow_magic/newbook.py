"""`codeflow new REQUEST -o analysis.ipynb`: a whole executed notebook from one request.

The notebook is ordinary: a title, the request, `%load_ext codeflow_magic` and one
`%%codeflow --steps` cell. `codeflow run` executes it in place, so the plan's steps land below
the request with their outputs, and a later `CODEFLOW_CACHE=replay codeflow run` re-runs it
from the recorded answers, identically.
"""

from __future__ import annotations

from typing import Any

TITLE_CHARS = 80


def skeleton(request: str, data: list[str], max_steps: int | None) -> Any:
    """The notebook before it runs (nbformat 4.5, a python3 kernel)."""
    import nbformat

    title = request.strip().splitlines()[0][:TITLE_CHARS].rstrip(" .")
    title = title[:1].upper() + title[1:]
    intro = [f"# {title}", "", request.strip()]
    body = request.strip()
    if data:
        listed = ", ".join(f"`{d}`" for d in data)
        intro += ["", f"Data: {listed}"]
        body += "\n\nData files: " + ", ".join(data)
    options = " --steps" + (f" --max-steps {max_steps}" if max_steps else "")
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("\n".join(intro)),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell("%load_ext codeflow_magic"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(f"%%codeflow{options}\n{body}"),  # type: ignore[no-untyped-call]
    ]
    return nb
