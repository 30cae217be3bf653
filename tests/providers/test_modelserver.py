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
from modelserver import PROSE_TEXT, ModelServer, Reply

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


# --- injected faults ---------------------------------------------------------------------


def _stream_text(client: anthropic.Anthropic) -> tuple[list[str], str | None]:
    pieces: list[str] = []
    with client.messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        for text in stream.text_stream:
            pieces.append(text)
        final = stream.get_final_message()
    return pieces, final.stop_reason


def test_reset_fault_sends_rst_before_any_byte(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(fault="reset"))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError) as info:
        _ask(client, "x")
    causes: list[BaseException] = []
    err: BaseException | None = info.value
    while err is not None:
        causes.append(err)
        err = err.__cause__ or err.__context__
    assert any(isinstance(c, ConnectionResetError) for c in causes), causes
    (req,) = model_server.requests
    assert req.fault == "reset" and req.answered_at is not None


def test_hang_fault_outlasts_the_client_timeout_and_ends_when_it_leaves(
    model_server: ModelServer,
) -> None:
    model_server.enqueue(Reply(fault="hang"))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0, timeout=1)
    with pytest.raises(anthropic.APITimeoutError):
        _ask(client, "x")
    (req,) = model_server.requests
    deadline = time.monotonic() + 30
    while req.answered_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # the server noticed the client leave (not the 600 s cap) and sent nothing meanwhile; the
    # client's 1 s started before the server had read the request, so the server sees a
    # little less than the whole second
    assert req.answered_at is not None and 0.9 <= req.answered_at - req.received_at < 30
    assert req.fault == "hang"


def test_cut_fault_stops_mid_message_and_cut_start_before_any_text(
    model_server: ModelServer,
) -> None:
    model_server.enqueue(
        Reply(chunks=["one ", "two ", "three ", "four"], fault="cut"), Reply(fault="cut_start")
    )
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    received: list[str] = []
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        client.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for text in stream.text_stream:
            received.append(text)
    assert received == ["one ", "two "]
    events: list[str] = []
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        client.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        for event in stream:
            events.append(event.type)
    assert events == ["message_start"]
    assert [r.fault for r in model_server.requests] == ["cut", "cut_start"]


def test_empty_and_prose_faults_are_complete_answers(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(fault="empty"), Reply(fault="prose"), Reply(fault="empty"))
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    assert _stream_text(client) == ([], "end_turn")
    pieces, stop = _stream_text(client)
    assert stop == "end_turn" and "".join(pieces) == PROSE_TEXT and "```" not in PROSE_TEXT
    plain = client.messages.create(
        model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "x"}]
    )
    assert plain.content == [] and plain.stop_reason == "end_turn"


def test_error_statuses_carry_their_retry_headers(model_server: ModelServer) -> None:
    model_server.enqueue(
        Reply(status=429, retry_after=3),
        Reply(status=529),
        Reply(status=500),
        Reply(status=503, headers={"retry-after": "7"}),
    )
    client = anthropic.Anthropic(base_url=model_server.url, api_key="k", max_retries=0)
    seen: list[tuple[int, str | None, str | None, str]] = []
    for _ in range(4):
        with pytest.raises(anthropic.APIStatusError) as info:
            _ask(client, "x")
        headers = info.value.response.headers
        body = info.value.body
        assert isinstance(body, dict)
        seen.append(
            (
                info.value.status_code,
                headers.get("retry-after"),
                headers.get("retry-after-ms"),
                body["error"]["type"],
            )
        )
    assert seen == [
        (429, "3", None, "rate_limit_error"),
        (529, None, "20", "overloaded_error"),
        (500, None, "20", "api_error"),
        (503, "7", None, "api_error"),
    ]
    assert [r.retry_after for r in model_server.requests] == ["3", None, None, "7"]
    assert [r.fault for r in model_server.requests] == [
        "status 429",
        "status 529",
        "status 500",
        "status 503",
    ]


def test_openai_stream_faults(model_server: ModelServer) -> None:
    model_server.enqueue(Reply(chunks=["a", "b", "c", "d"], fault="cut"), Reply(fault="empty"))
    client = openai.OpenAI(base_url=model_server.openai_url, api_key="k", max_retries=0)
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert pieces == ["a", "b"]
    finishes: list[str | None] = []
    for chunk in client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        assert not (chunk.choices and chunk.choices[0].delta.content)
        finishes += [c.finish_reason for c in chunk.choices]
    assert finishes[-1] == "stop"


def test_unknown_fault_names_are_refused(model_server: ModelServer) -> None:
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        Reply(fault="explode")
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        model_server.set_faults(0.5, kinds=["explode"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        model_server.set_faults(1.5)


def _fault_log(rate: float, seed: int, n: int) -> list[str | None]:
    with ModelServer(default="```python\nprint(1)\n```", fault_rate=rate, seed=seed) as server:
        server.set_faults(rate, seed, kinds=["reset", "529", "cut", "empty", "prose", "429"])
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        for _ in range(n):
            try:
                _stream_text(client)
            except Exception:
                pass
        return [r.fault for r in server.requests]


def test_random_faults_are_seeded_and_leave_the_scripted_reply_in_place() -> None:
    first = _fault_log(0.5, seed=11, n=40)
    assert first == _fault_log(0.5, seed=11, n=40)  # the same seed, the same faults
    assert first != _fault_log(0.5, seed=12, n=40)
    faulted = [f for f in first if f is not None]
    assert 8 <= len(faulted) <= 32  # about half of 40
    assert {"reset", "status 529", "cut", "empty", "prose", "status 429"} >= set(faulted)
    assert len(set(faulted)) >= 4
    assert _fault_log(0.0, seed=11, n=10) == [None] * 10

    with ModelServer(fault_rate=1.0, seed=3) as server:
        server.set_faults(1.0, 3, kinds=["529"])
        server.enqueue("the scripted answer")
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.APIStatusError):
            _ask(client, "x")
        server.set_faults(0.0)
        assert _ask(client, "x") == "the scripted answer"  # the fault did not consume it


def test_subprocess_fault_flags_and_control_endpoint(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"default": True, "text": "fine"}]))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(MODELSERVER),
            "--rules",
            str(rules),
            "--fault-rate",
            "1",
            "--seed",
            "5",
            "--faults",
            "529,empty",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        outcomes: list[str] = []
        for _ in range(12):
            try:
                outcomes.append("empty" if _stream_text(client)[0] == [] else "text")
            except anthropic.APIStatusError as exc:
                outcomes.append(str(exc.status_code))
        assert set(outcomes) == {"529", "empty"}
        post = urllib.request.Request(
            url + "/_control/faults",
            data=json.dumps({"rate": 0}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=30) as resp:
            assert resp.status == 200
        assert _ask(client, "x") == "fine"
        with urllib.request.urlopen(url + "/_control/requests", timeout=30) as resp:
            recorded = json.loads(resp.read())
        assert [r["fault"] for r in recorded][-1] is None
        assert {r["fault"] for r in recorded[:-1]} == {"status 529", "empty"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        if proc.stdout is not None:
            proc.stdout.close()
    bad = subprocess.run(
        [sys.executable, str(MODELSERVER), "--fault-rate", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr
