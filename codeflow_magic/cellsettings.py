"""The settings one `%%codeflow` cell runs with, from every layer a notebook has.

Lowest first: `codeflow.yaml`, `ipython_config.py` and `%config`, `CODEFLOW_OVERRIDES` (set by
`codeflow run`), the JupyterLab settings and the sidebar's one-shot options, then the cell's
own line. No IPython here: the magic hands in its configurables and its frontend link.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import CodeFlowError
from .options import MAGIC_OPTIONS, OPTIONS, settings_from
from .where import notebook_dir

OVERRIDES_ENV = "CODEFLOW_OVERRIDES"
"""JSON list of `section.name=value` strings applied to every request (set by `codeflow run`)."""

CELL_OPTION_KEYS: dict[str, str] = {
    name: str(OPTIONS[name].setting) for name in ("focus", "max_attempts", "model")
}
"""One-shot per-cell options the sidebar may set (Python names) and the settings they change."""


def configured(sections: Mapping[str, Any]) -> dict[str, Any]:
    """Values changed through `ipython_config.py` or `%config` (non-defaults only)."""
    flat: dict[str, Any] = {}
    for name, section in sections.items():
        for trait_name, trait in section.traits(config=True).items():
            value = getattr(section, trait_name)
            if value != trait.default():
                flat[f"{name}.{trait_name}"] = value
    return flat


def _pop_options(link: Any, cell_id: str | None) -> dict[str, Any]:
    if not cell_id:
        return {}
    try:
        options = link.pop_options(cell_id)
    except Exception:
        return {}
    return dict(options) if isinstance(options, Mapping) else {}


def frontend_overrides(
    link: Any, cell_id: str | None
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """The sidebar's settings and its one-shot options for this cell, as dotted keys.

    Returns (settings, write-back enabled, the one-shot options as sent). The settings come
    from the link in Python names (`config_extra`); the one-shot options (the panel's
    "Improve" buttons) go on top. An option the settings would reject is dropped: it came
    from the panel, not from the user's typing, and must not break the cell.
    """
    from .config import validate_value
    from .errors import ConfigError

    if link is None:
        return {}, True, {}
    values: dict[str, Any] = dict(link.config_extra())
    one_shot = _pop_options(link, cell_id)
    for name, value in one_shot.items():
        key = CELL_OPTION_KEYS.get(name)
        if key is None or value is None or value == "":
            continue
        try:
            validate_value(key, value)
        except ConfigError:
            continue
        values[key] = value
    return values, bool(link.writeback_enabled), one_shot


def cell_settings(
    sections: Mapping[str, Any], link: Any, args: Any, cell_id: str | None = None
) -> tuple[Any, dict[str, Any], bool, dict[str, Any]]:
    """Effective settings: file < ipython config/%config < CODEFLOW_OVERRIDES < panel < line.

    Returns (settings, the dotted values set above the file, whether the panel allows
    write-back (True without a panel), the sidebar's one-shot options).
    """
    from .config import build_config, make_settings, parse_overrides

    flat: dict[str, Any] = configured(sections)
    env = os.environ.get(OVERRIDES_ENV, "").strip()
    if env:
        try:
            items = json.loads(env)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise CodeFlowError(
                f'{OVERRIDES_ENV} must be a JSON list of "section.name=value" strings'
            )
        flat.update(parse_overrides(items))
    panel, writeback, one_shot = frontend_overrides(link, cell_id)
    flat.update(panel)
    if args is not None:
        flat.update(parse_overrides(args.overrides))
        flat.update(settings_from(args, MAGIC_OPTIONS))
    cfg = build_config(work_dir=Path.cwd(), overrides=flat)
    return make_settings(cfg), flat, writeback, one_shot


def backend_for(settings: Any, flat: Mapping[str, Any]) -> str:
    """inline unless someone chose a backend (a notebook wants its own variables)."""
    if "execution.backend" in flat:
        return str(settings.execution.backend)
    from .config import find_config_file, load_yaml

    path = find_config_file(Path.cwd())
    if path is not None and "execution.backend" in load_yaml(path):
        return str(settings.execution.backend)
    return "inline"


def cache_dir_for(settings: Any) -> Path | None:
    """The notebook's own `.codeflow/cache`, unless the settings name a folder."""
    if settings.cache.dir:
        return None  # the provider resolves the configured folder
    folder = notebook_dir()
    return folder / ".codeflow" / "cache" if folder else None
