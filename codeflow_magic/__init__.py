"""codeflow: plain-words requests to working code in Jupyter.

`%load_ext codeflow_magic` registers `%%codeflow`. Heavy modules load lazily so that loading
the extension stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CodeFlow", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from .magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magic import unload_ipython_extension as _unload

    _unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "codeflow-labextension"}]


def __getattr__(name: str) -> Any:
    if name == "CodeFlow":
        from .api import CodeFlow

        return CodeFlow
    raise AttributeError(name)
