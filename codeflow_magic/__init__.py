"""codeflow: plain-words requests to working code in Jupyter.

`%load_ext codeflow_magic` registers `%%codeflow` and gets the first request ready while the
user types: the model SDK, seconds of CPU, is imported on a background thread.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["CodeFlow", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from .magic import load_ipython_extension as _load

    _load(ipython)
    _warm_up()


REQUEST_PATH = (
    "codeflow_magic.api",
    "codeflow_magic.flow",
    "codeflow_magic.prompts",
    "codeflow_magic.context",
    "codeflow_magic.notebook",
    "codeflow_magic.grounding",
    "codeflow_magic.secrets",
    "codeflow_magic.executors.inline",
    "codeflow_magic.providers.cache",
    "codeflow_magic.providers.anthropic",
)
"""codeflow's modules a first `%%codeflow` needs before its request leaves."""


def _warm_up() -> None:
    """Get the first `%%codeflow` ready while the user is still typing.

    codeflow's own modules on the request path load here, on this thread (tens of ms); the
    model SDK, seconds of CPU, is imported on a background thread, which is the only place it
    is imported (requests wait for that thread instead of importing it alongside).
    """
    import importlib

    for name in REQUEST_PATH:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # only a head start: a cell imports what it needs and reports errors
    try:
        import json
        import os

        from .config import load_settings
        from .providers import preload_for

        overrides = json.loads(os.environ.get("CODEFLOW_OVERRIDES") or "[]")
        listed = [str(o) for o in overrides] if isinstance(overrides, list) else []
        preload_for(load_settings(listed))
    except Exception:
        pass


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
