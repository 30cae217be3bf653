"""The default model is codeflow's own; the SDK only warns, and replay keeps the recorded model."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from cliharness import Result, codeflow, write_notebook
from modelserver import ModelServer

from codeflow_magic.config import load_settings
from codeflow_magic.models import RECORD_MIME
from codeflow_magic.providers import catalogue, default_model, make_provider
from codeflow_magic.providers.anthropic import AnthropicProvider
from codeflow_magic.providers.base import LLMRequest, Message
from codeflow_magic.providers.cache import CachedProvider, cache_key

REQUEST = LLMRequest(system="You write Python.", messages=(Message("user", "print hi"),))
PY = "```python\n{}\n```"
OLDER = "claude-sonnet-4-6"


@pytest.fixture
def sdk_deprecates() -> Iterator[dict[str, str]]:
    """The SDK's own table of deprecated models, restored afterwards.

    Tests may reach into the SDK to stage a deprecation; codeflow itself only sees the
    warning the SDK raises when a request is sent.
    """
    table: dict[str, str] = importlib.import_module(
        "anthropic.resources.messages.messages"
    ).DEPRECATED_MODELS
    saved = dict(table)
    yield table
    table.clear()
    table.update(saved)


def test_the_default_comes_from_codeflows_table_without_the_sdk() -> None:
    assert default_model() == catalogue.DEFAULT_MODEL == catalogue.CURRENT["sonnet"]
    code = (
        "import sys; from codeflow_magic.providers import default_model; "
        "from codeflow_magic.config import load_settings; "
        "print(default_model(), load_settings().model, 'anthropic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [catalogue.DEFAULT_MODEL, catalogue.DEFAULT_MODEL, "False"]


def test_no_sdk_source_is_read_for_the_default() -> None:
    source = Path(catalogue.__file__).parent
    for path in source.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "find_spec(" not in text and "model_param.py" not in text, path


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-6", "claude-sonnet-5-5"),
        ("claude-opus-4-5-20251101", "claude-opus-5-5"),
        ("claude-3-5-haiku-20241022", "claude-haiku-5-5"),
        ("claude-sonnet-5-5", None),
        ("some-local-model", None),
    ],
)
def test_replacements(model: str, expected: str | None) -> None:
    assert catalogue.replacement(model) == expected


async def test_sdk_deprecating_the_default_gives_a_warning_not_a_python_warning(
    model_server: ModelServer, sdk_deprecates: dict[str, str]
) -> None:
    sdk_deprecates[catalogue.DEFAULT_MODEL] = "March 3rd, 2031"
    model_server.enqueue(PY.format("print('hi')"))
    provider = AnthropicProvider(
        catalogue.DEFAULT_MODEL, api_key="k", base_url=model_server.url, named=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the SDK's DeprecationWarning must not escape
        response = await provider.complete(REQUEST)
    await provider.aclose()
    (notice,) = response.extra["warnings"]
    assert "codeflow's default model" in notice and catalogue.DEFAULT_MODEL in notice
    assert "March 3rd, 2031" in notice and "knows no newer one" in notice
    assert model_server.requests[0].body["model"] == catalogue.DEFAULT_MODEL


async def test_sdk_deprecating_a_named_model_names_its_replacement(
    model_server: ModelServer, sdk_deprecates: dict[str, str]
) -> None:
    sdk_deprecates[OLDER] = "May 1st, 2027"
    model_server.enqueue(PY.format("print('hi')"))
    provider = AnthropicProvider(OLDER, api_key="k", base_url=model_server.url)
    response = await provider.complete(REQUEST)
    await provider.aclose()
    (notice,) = response.extra["warnings"]
    assert (
        f"{OLDER!r} is deprecated" in notice and "'claude-sonnet-5-5' as its replacement" in notice
    )
    # a model the SDK does not deprecate gets no notice
    model_server.enqueue(PY.format("print('hi')"))
    provider = AnthropicProvider(catalogue.DEFAULT_MODEL, api_key="k", base_url=model_server.url)
    plain = await provider.complete(REQUEST)
    await provider.aclose()
    assert "warnings" not in plain.extra


def test_requests_naming_no_model_are_keyed_by_the_placeholder(tmp_path: Path) -> None:
    unnamed = make_provider(load_settings(), work_dir=tmp_path, cache_mode="replay")
    named = make_provider(
        load_settings([f"generation.model={catalogue.DEFAULT_MODEL}"]),
        work_dir=tmp_path,
        cache_mode="replay",
    )
    assert isinstance(unnamed, CachedProvider) and isinstance(named, CachedProvider)
    assert unnamed.model == named.model == catalogue.DEFAULT_MODEL
    assert unnamed.key_for(REQUEST) == cache_key("anthropic", "(default)", REQUEST)
    assert named.key_for(REQUEST) == cache_key("anthropic", catalogue.DEFAULT_MODEL, REQUEST)


def _cli(
    *args: str, env: dict[str, str], cwd: Path, default: str | None = None, prelude: str = ""
) -> Result:
    """`codeflow ARGS`, with codeflow's default model replaced by `default` when given (as an
    older or newer codeflow would have it), after running `prelude`."""
    if default:
        prelude += (
            f"import codeflow_magic.providers.catalogue as c; c.DEFAULT_MODEL = {default!r}\n"
        )
    return codeflow(*args, env=env, cwd=cwd, prelude=prelude)


def _ask_print_hi(cwd: Path, default: str | None = None, prelude: str = "") -> Result:
    """`codeflow ask "print hi" --format json` against a model server that answers it."""
    with ModelServer() as server:
        server.add_rule("print hi", PY.format("print('hi')"))
        return _cli(
            "ask",
            "print hi",
            "--format",
            "json",
            "-q",
            env=server.env(),
            cwd=cwd,
            default=default,
            prelude=prelude,
        )


@pytest.mark.kernel
def test_ask_shows_the_sdks_deprecation_of_the_default(tmp_path: Path) -> None:
    stage = (
        "import importlib\n"
        "table = importlib.import_module('anthropic.resources.messages.messages').DEPRECATED_MODELS\n"
        f"table[{catalogue.DEFAULT_MODEL!r}] = 'March 3rd, 2031'\n"
    )
    done = _ask_print_hi(tmp_path, prelude=stage)
    assert done.code == 0, done.stderr
    record = json.loads(done.stdout)
    (notice,) = record["warnings"]
    assert "deprecated" in notice and "March 3rd, 2031" in notice
    assert f"codeflow: warning: {notice}" in done.stderr
    assert "DeprecationWarning" not in done.stderr


@pytest.mark.kernel
def test_ask_replays_what_another_default_recorded(tmp_path: Path) -> None:
    recorded = _ask_print_hi(tmp_path, default=OLDER)
    assert recorded.code == 0, recorded.stderr
    assert json.loads(recorded.stdout)["model"] == OLDER
    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    replayed = _cli("ask", "print hi", "--format", "json", "-q", env=offline, cwd=tmp_path)
    assert replayed.code == 0, replayed.stderr
    record = json.loads(replayed.stdout)
    assert record["model"] == OLDER  # the recorded model, not today's default
    assert record["metrics"]["cache_hits"] == 1 and record["success"]
    # a request that names a model is its own key: no recorded answer for it
    named = _cli(
        "ask",
        "print hi",
        "--format",
        "json",
        "-q",
        "--model",
        catalogue.DEFAULT_MODEL,
        env=offline,
        cwd=tmp_path,
    )
    assert named.code == 3 and "no recorded response" in named.stderr


@pytest.mark.kernel
@pytest.mark.slow
def test_a_notebook_recorded_under_another_default_replays(tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "n.ipynb",
        ["%load_ext codeflow_magic", "%%codeflow\nmake a list called squares of 1 to 4 squared"],
    )
    # The kernel of the recording run has an older codeflow default (an IPython startup file).
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-older-default.py").write_text(
        "import codeflow_magic.providers.catalogue\n"
        f"codeflow_magic.providers.catalogue.DEFAULT_MODEL = {OLDER!r}\n"
        "del codeflow_magic\n"
    )
    with ModelServer() as server:
        server.add_rule("squares", PY.format("squares = [n * n for n in range(1, 5)]"))
        env = {**server.env(), "IPYTHONDIR": str(tmp_path / "ipython")}
        done = _cli("run", "n.ipynb", "-o", "recorded.ipynb", env=env, cwd=tmp_path)
        assert done.code == 0, done.stderr
        assert [r.body["model"] for r in server.requests] == [OLDER]
    offline = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "CODEFLOW_CACHE": "replay"}
    again = _cli("run", "recorded.ipynb", "-o", "again.ipynb", env=offline, cwd=tmp_path)
    assert again.code == 0, again.stderr
    out = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    record = next(o for o in out.cells[1].outputs if RECORD_MIME in o.get("data", {}))
    assert record["data"][RECORD_MIME]["model"] == OLDER
    assert record["data"][RECORD_MIME]["metrics"]["cache_hits"] == 1
    assert out.cells[1].metadata["codeflow"]["success"]
