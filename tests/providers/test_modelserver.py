"""The scripted model server itself, driven by the real SDKs and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest
from modelserver import ModelServer, Reply

MODELSERVER = Path(__file__).resolve().parents[1] / "modelserver.py"


def _ask(client: anthropic.Anthropic, prompt: str) -> str:
    msg = client.messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    )
    block = msg.content[0]
    assert block.type == "text"
    return block.text


def test_queue_then_rules_then_unmatched_error(model_server: ModelServer) -> None:
    model_server.add_rule(contains="sum", reply="rule reply")
    model_server.add_rule(contains="once", reply="first only", times=1)
    model_server.enqueue("queued reply")
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    assert _ask(client, "please sum it") == "queued reply"
    assert _ask(client, "please sum it") == "rule reply"
    assert _ask(client, "do it once") == "first only"
    with pytest.raises(anthropic.InternalServerError) as info:
        _ask(client, "do it once more")
    assert "no scripted reply for prompt: do it once more" in str(info.value)
    assert model_server.prompts() == [
        "please sum it",
        "please sum it",
        "do it once",
        "do it once more",
    ]


def test_unmatched_prompt_is_not_retried_by_the_sdk(model_server: ModelServer) -> None:
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=3)
    with pytest.raises(anthropic.InternalServerError):
        _ask(client, "nothing matches this")
    assert len(model_server.requests) == 1


def test_stream_event_sequence_and_usage(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(chunks=["```python\n", "print(1)\n", "```"]))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k")
    with client.messages.stream(
        model="claude-test",
        max_tokens=64,
        system="S" * 400,
        messages=[{"role": "user", "content": "go"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    raw = [k for k in kinds if k != "text"]  # `text` events are the SDK's own helpers
    assert raw == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens >= 100  # 400 system chars / 4
    assert final.usage.output_tokens == len("```python\nprint(1)\n```") // 4 + 1
    block = final.content[0]
    assert block.type == "text" and block.text == "```python\nprint(1)\n```"


def test_chunk_delay_spreads_the_stream(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(chunks=["code", "later"], chunk_delay=0.5))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k")
    arrivals: list[tuple[str, float]] = []
    with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        for text in stream.text_stream:
            arrivals.append((text, time.monotonic()))
    assert [t for t, _ in arrivals] == ["code", "later"]
    assert arrivals[1][1] - arrivals[0][1] >= 0.4


def test_overloaded_then_success_through_sdk_retries(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=529), Reply(status=429), "finally")
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=3)
    assert _ask(client, "x") == "finally"
    assert len(model_server.requests) == 3


def test_error_statuses_map_to_sdk_errors(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(status=401), Reply(status=400, text="bad thing"))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        _ask(client, "x")
    with pytest.raises(anthropic.BadRequestError, match="bad thing"):
        _ask(client, "x")


def test_requests_are_recorded_with_headers(model_server: ModelServer) -> None:
    model_server.enqueue("ok")
    client = anthropic.Anthropic(base_url=model_server.url, api_key="recorded-key")
    client.messages.create(
        model="claude-test",
        max_tokens=10,
        system="the system",
        messages=[{"role": "user", "content": "the prompt"}],
    )
    (req,) = model_server.requests
    assert req.body["model"] == "claude-test"
    assert req.system == "the system"
    assert req.last_user == "the prompt"
    assert req.api_key == "recorded-key"
    assert req.headers["content-type"] == "application/json"


def test_openai_plain_and_stream(model_server: ModelServer) -> None:
    model_server.add_rule(contains="hello", reply=Reply(chunks=["a", "b", "c"]))
    client = openai.OpenAI(base_url=model_server.openai_url, api_key="k", max_retries=0)
    plain = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello"}]
    )
    assert plain.choices[0].message.content == "abc"
    assert plain.usage is not None and plain.usage.completion_tokens == 1
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert pieces == ["a", "b", "c"]
    assert usage is not None and usage.prompt_tokens >= 1


def test_subprocess_with_rules_file_and_control_endpoint(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {"contains": "plot", "text": "plotted"},
                {"default": True, "text": "default answer"},
            ]
        )
    )
    port_file = tmp_path / "url.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(MODELSERVER),
            "--port",
            "0",
            "--rules",
            str(rules),
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert port_file.read_text().strip() == url
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        assert _ask(client, "make a plot") == "plotted"
        assert _ask(client, "anything else") == "default answer"
        post = urllib.request.Request(
            url + "/_control/rules",
            data=json.dumps({"contains": "late", "text": "added at runtime"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=30) as resp:
            assert resp.status == 200
        assert _ask(client, "a late rule") == "added at runtime"
        with urllib.request.urlopen(url + "/_control/requests", timeout=30) as resp:
            recorded = json.loads(resp.read())
        assert [r["body"]["messages"][-1]["content"] for r in recorded] == [
            "make a plot",
            "anything else",
            "a late rule",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_subprocess_rejects_a_bad_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text("{not json")
    done = subprocess.run(
        [sys.executable, str(MODELSERVER), "--rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 2
    assert "cannot load rules" in done.stderr
