"""CachedProvider: record, replay, key rules, atomic concurrent writes, corrupt entries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from modelserver import ModelServer, Reply

from codeflow_magic.errors import CacheMiss, UsageError
from codeflow_magic.providers.anthropic import AnthropicProvider
from codeflow_magic.providers.base import LLMRequest, LLMResponse, Message, Provider
from codeflow_magic.providers.cache import CachedProvider, cache_key

SECRET = "sk-ant-secret-never-in-cache-0123456789"
REQUEST = LLMRequest(
    system="You write Python.",
    messages=(Message("user", "print the first 5 squares"),),
    max_tokens=200,
)
ANSWER = "```python\nprint([i * i for i in range(5)])\n```\n" + "This prints squares.\n" * 30


def _recording(server: ModelServer, folder: Path, mode: str = "rw") -> CachedProvider:
    inner = AnthropicProvider("claude-test", api_key=SECRET, base_url=server.url)
    return CachedProvider(inner, folder, mode)


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json"))


async def test_miss_then_hit_asks_the_model_once(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add_rule(contains="squares", reply=ANSWER)
    cached = _recording(model_server, tmp_path)
    assert isinstance(cached, Provider) and cached.name == "anthropic"
    first = await cached.complete(REQUEST)
    deltas: list[str] = []
    fix_request = LLMRequest(REQUEST.system, REQUEST.messages, REQUEST.max_tokens, purpose="fix")
    second = await cached.complete(fix_request, deltas.append)  # purpose is not in the key
    await cached.aclose()
    assert len(model_server.requests) == 1
    assert not first.cached and second.cached
    assert first.cache_key == second.cache_key == cache_key("anthropic", "claude-test", REQUEST)
    assert second.text == first.text == ANSWER
    assert (second.input_tokens, second.output_tokens) == (first.input_tokens, first.output_tokens)
    assert second.stop_reason == "end_turn"
    assert len(deltas) > 1 and "".join(deltas) == ANSWER
    assert (cached.hits, cached.misses, cached.writes) == (1, 1, 1)
    (entry_path,) = _entries(tmp_path)
    key = first.cache_key
    assert key is not None and entry_path == tmp_path / key[:2] / f"{key}.json"
    entry = json.loads(entry_path.read_text())
    assert entry["request"]["system"] == "You write Python."
    assert entry["request"]["messages"] == [
        {"role": "user", "content": "print the first 5 squares"}
    ]
    assert entry["response"]["text"] == ANSWER
    assert entry["usage"]["output_tokens"] == first.output_tokens
    assert entry["provider"] == "anthropic" and entry["model"] == "claude-test"
    assert "created" in entry


async def test_key_depends_on_model_and_messages_only() -> None:
    base = cache_key("anthropic", "m1", REQUEST)
    assert cache_key("anthropic", "m2", REQUEST) != base
    assert cache_key("openai", "m1", REQUEST) != base
    other = LLMRequest(REQUEST.system, (Message("user", "print 6 squares"),), REQUEST.max_tokens)
    assert cache_key("anthropic", "m1", other) != base
    verify = LLMRequest(REQUEST.system, REQUEST.messages, REQUEST.max_tokens, purpose="verify")
    assert cache_key("anthropic", "m1", verify) == base


async def test_replay_answers_with_the_server_gone(tmp_path: Path) -> None:
    with ModelServer() as server:
        server.enqueue(ANSWER)
        recorder = _recording(server, tmp_path)
        recorded = await recorder.complete(REQUEST)
        await recorder.aclose()
    replay = CachedProvider(None, tmp_path, "replay", name="anthropic", model="claude-test")
    response = await replay.complete(REQUEST)
    assert response.cached and response.text == ANSWER
    assert response.cache_key == recorded.cache_key
    assert response.output_tokens == recorded.output_tokens


async def test_replay_miss_raises_and_never_asks(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add_rule(contains="", reply="should not be asked")
    replay = _recording(model_server, tmp_path, mode="replay")
    with pytest.raises(CacheMiss) as info:
        await replay.complete(REQUEST)
    await replay.aclose()
    assert str(info.value) == (
        f"no recorded response for this request in {tmp_path}; "
        "run once with a model (CODEFLOW_CACHE=rw) to record it"
    )
    assert info.value.exit_status == 3
    assert model_server.requests == []
    assert replay.misses == 1 and _entries(tmp_path) == []


async def test_entries_hold_no_key_or_header(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.enqueue(ANSWER)
    cached = _recording(model_server, tmp_path)
    await cached.complete(REQUEST)
    await cached.aclose()
    assert model_server.requests[0].api_key == SECRET  # the key did reach the server...
    (entry,) = _entries(tmp_path)
    text = entry.read_text()
    assert SECRET not in text  # ...but never the cache
    lowered = text.lower()
    for word in ("x-api-key", "authorization", "bearer", "anthropic-version"):
        assert word not in lowered


async def test_off_mode_passes_through(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add_rule(contains="squares", reply="live")
    cached = _recording(model_server, tmp_path, mode="off")
    first = await cached.complete(REQUEST)
    second = await cached.complete(REQUEST)
    await cached.aclose()
    assert first.text == second.text == "live"
    assert first.cache_key is None and not second.cached
    assert len(model_server.requests) == 2
    assert not tmp_path.exists() or _entries(tmp_path) == []


async def test_corrupt_entry_is_a_miss_with_a_warning(
    model_server: ModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = cache_key("anthropic", "claude-test", REQUEST)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"key": "' + key + '", "response": ')
    model_server.enqueue("fresh answer")
    cached = _recording(model_server, tmp_path)
    response = await cached.complete(REQUEST)
    await cached.aclose()
    assert response.text == "fresh answer" and not response.cached
    assert f"ignoring corrupt cache entry {path}" in capsys.readouterr().err
    assert json.loads(path.read_text())["response"]["text"] == "fresh answer"


def test_modes_and_missing_inner_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="one of rw, replay, off"):
        CachedProvider(None, tmp_path, "sometimes", name="anthropic", model="m")
    with pytest.raises(UsageError, match="needs a model provider"):
        CachedProvider(None, tmp_path, "rw", name="anthropic", model="m")
    with pytest.raises(UsageError, match="provider name and model"):
        CachedProvider(None, tmp_path, "replay")


def _response(i: int) -> LLMResponse:
    """Different lengths per writer, so interleaved non-atomic writes would leave garbage."""
    return LLMResponse(text=f"answer {i} " + "x" * (20_000 + 7_000 * i), model="m", output_tokens=i)


def test_concurrent_threads_writing_one_key_leave_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cached = CachedProvider(None, tmp_path, "replay", name="anthropic", model="m")
    key = cached.key_for(REQUEST)
    barrier = threading.Barrier(9)
    done = threading.Event()

    def write(i: int) -> None:
        barrier.wait()
        for _ in range(20):
            cached.store(key, REQUEST, _response(i))

    def read() -> None:
        barrier.wait()
        while not done.is_set():
            hit = cached.lookup(key)
            if hit is not None:
                assert hit.text == _response(hit.output_tokens).text

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    reader.join(timeout=120)
    assert "corrupt" not in capsys.readouterr().err  # a reader never saw a half-written file
    entry = json.loads(cached.path_for(key).read_text())
    i = entry["usage"]["output_tokens"]
    assert entry["response"]["text"] == _response(i).text
    assert cached.writes == 160
    assert [p.name for p in cached.path_for(key).parent.iterdir()] == [f"{key}.json"]


def test_concurrent_processes_writing_one_key_leave_a_valid_file(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from codeflow_magic.providers.base import LLMRequest, LLMResponse, Message
        from codeflow_magic.providers.cache import CachedProvider
        i = int(sys.argv[1])
        req = LLMRequest(system="You write Python.",
                         messages=(Message("user", "print the first 5 squares"),),
                         max_tokens=200)
        c = CachedProvider(None, Path(sys.argv[2]), "replay", name="anthropic", model="m")
        key = c.key_for(req)
        for _ in range(30):
            c.store(key, req, LLMResponse(text=f"answer {i} " + "x" * (20_000 + 7_000 * i),
                                          model="m", output_tokens=i))
        print(key)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i), str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    keys = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        keys.add(out.strip())
    (key,) = keys
    replay = CachedProvider(None, tmp_path, "replay", name="anthropic", model="m")
    assert key == replay.key_for(REQUEST)
    hit = replay.lookup(key)
    assert hit is not None and hit.text == _response(hit.output_tokens).text
    assert [p.name for p in (tmp_path / key[:2]).iterdir()] == [f"{key}.json"]


async def test_streamed_reply_is_recorded_whole(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.enqueue(Reply(chunks=["part one, ", "part two"], chunk_delay=0.05))
    cached = _recording(model_server, tmp_path)
    live: list[str] = []
    await cached.complete(REQUEST, live.append)
    replayed: list[str] = []
    hit = await cached.complete(REQUEST, replayed.append)
    await cached.aclose()
    assert live == ["part one, ", "part two"]
    assert "".join(replayed) == hit.text == "part one, part two"
