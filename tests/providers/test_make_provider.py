"""make_provider: which provider, which cache mode and folder, and a light package import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from modelserver import ModelServer

from codeflow_magic.config import Settings, load_settings
from codeflow_magic.errors import CacheMiss, UsageError
from codeflow_magic.providers import default_model, make_provider, split_model
from codeflow_magic.providers.anthropic import AnthropicProvider
from codeflow_magic.providers.base import LLMRequest, Message
from codeflow_magic.providers.cache import CachedProvider
from codeflow_magic.providers.openai_compat import OpenAICompatProvider

REQUEST = LLMRequest(system="s", messages=(Message("user", "make a chart"),))


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return load_settings(work_dir=tmp_path, extra=extra)


def _cached(provider: object) -> CachedProvider:
    assert isinstance(provider, CachedProvider)
    return provider


def test_anthropic_by_prefix_bare_name_and_default(tmp_path: Path) -> None:
    for spec, model in (
        ("anthropic:claude-x", "claude-x"),
        ("claude-y", "claude-y"),
        ("", split_model(default_model())[1]),
    ):
        settings = _settings(tmp_path, **{"generation.model": spec, "generation.timeout": 42})
        cached = _cached(make_provider(settings, work_dir=tmp_path))
        assert isinstance(cached.inner, AnthropicProvider)
        assert cached.inner.model == model and cached.model == model
        assert cached.inner.timeout == 42.0
        assert cached.name == "anthropic"


def test_openai_with_base_url_from_settings(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        **{"generation.model": "openai:llama3", "generation.base_url": "http://127.0.0.1:9/v1"},
    )
    cached = _cached(make_provider(settings, work_dir=tmp_path))
    assert isinstance(cached.inner, OpenAICompatProvider)
    assert cached.inner.base_url == "http://127.0.0.1:9/v1"
    assert cached.name == "openai" and cached.model == "llama3"


def test_model_argument_overrides_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, **{"generation.model": "claude-x"})
    cached = _cached(make_provider(settings, work_dir=tmp_path, model="openai:qwen"))
    assert isinstance(cached.inner, OpenAICompatProvider) and cached.model == "qwen"


def test_unknown_provider_names_the_allowed_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path, **{"generation.model": "gemini:pro"})
    with pytest.raises(UsageError, match=r"unknown model provider 'gemini'.*anthropic, openai"):
        make_provider(settings, work_dir=tmp_path)
    with pytest.raises(UsageError, match="names no model"):
        make_provider(_settings(tmp_path, **{"generation.model": "openai:"}), work_dir=tmp_path)


def test_cache_mode_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, **{"generation.model": "claude-x", "cache.mode": "off"})
    assert _cached(make_provider(settings, work_dir=tmp_path)).mode == "off"
    monkeypatch.setenv("CODEFLOW_CACHE", "rw")
    assert _cached(make_provider(settings, work_dir=tmp_path)).mode == "rw"
    chosen = _cached(make_provider(settings, work_dir=tmp_path, cache_mode="replay"))
    assert chosen.mode == "replay"
    monkeypatch.setenv("CODEFLOW_CACHE", "sometimes")
    with pytest.raises(UsageError, match="CODEFLOW_CACHE: 'sometimes' is not allowed"):
        make_provider(settings, work_dir=tmp_path)
    with pytest.raises(UsageError, match="cache mode: 'never' is not allowed"):
        make_provider(settings, work_dir=tmp_path, cache_mode="never")


def test_cache_folder_choice(tmp_path: Path) -> None:
    default = _settings(tmp_path, **{"generation.model": "claude-x"})
    assert _cached(make_provider(default, work_dir=tmp_path)).cache_dir == (
        tmp_path / ".codeflow" / "cache"
    )
    relative = _settings(tmp_path, **{"generation.model": "claude-x", "cache.dir": "rec"})
    assert _cached(make_provider(relative, work_dir=tmp_path)).cache_dir == tmp_path / "rec"
    explicit = tmp_path / "elsewhere"
    chosen = make_provider(relative, work_dir=tmp_path, cache_dir=explicit)
    assert _cached(chosen).cache_dir == explicit


async def test_replay_needs_no_key_and_builds_no_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, **{"generation.model": "claude-x"})
    with ModelServer() as server:
        server.enqueue("recorded chart code")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-recording-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        recorder = make_provider(settings, work_dir=tmp_path)
        await recorder.complete(REQUEST)
        await recorder.aclose()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    monkeypatch.setenv("CODEFLOW_CACHE", "replay")
    replay = _cached(make_provider(settings, work_dir=tmp_path))
    assert replay.inner is None
    response = await replay.complete(REQUEST)
    assert response.cached and response.text == "recorded chart code"
    with pytest.raises(CacheMiss):
        await replay.complete(LLMRequest(system="s", messages=(Message("user", "other"),)))


def test_package_import_stays_light() -> None:
    code = (
        "import sys, json; import codeflow_magic.providers; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('anthropic', 'openai', 'httpx', 'httpx2'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
