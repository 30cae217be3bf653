"""The default model comes from the installed SDK's own tables, read without importing it."""

from __future__ import annotations

import subprocess
import sys
import typing

from codeflow_magic.providers import _sdk_model_tables, default_model


def test_tables_read_from_source_match_the_imported_sdk() -> None:
    from anthropic.resources.messages.messages import DEPRECATED_MODELS
    from anthropic.types.model_param import ModelParam

    imported: list[str] = []
    for arg in typing.get_args(ModelParam):
        imported.extend(a for a in typing.get_args(arg) if isinstance(a, str))
    names, deprecated = _sdk_model_tables()
    assert names == imported
    assert deprecated == {k for k in DEPRECATED_MODELS if k.startswith("claude-")}


def test_default_is_a_current_sonnet() -> None:
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    model = default_model()
    assert "sonnet" in model and model not in DEPRECATED_MODELS


def test_default_model_does_not_import_the_sdk() -> None:
    code = (
        "import sys; from codeflow_magic.providers import default_model; default_model(); "
        "print('anthropic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
