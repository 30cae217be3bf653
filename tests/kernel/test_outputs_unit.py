"""Output collection, caps and prompt text, without a kernel."""

from __future__ import annotations

import base64
from typing import Any

from codeflow_magic.executors.outputs import (
    OutputCollector,
    cap_text,
    drop_marker,
    output_text_for_prompt,
)
from codeflow_magic.models import Output
from codeflow_magic.text import strip_ansi


def _msg(msg_type: str, **content: Any) -> dict[str, Any]:
    return {"msg_type": msg_type, "header": {"msg_type": msg_type}, "content": content}


def _stream(name: str, text: str) -> dict[str, Any]:
    return _msg("stream", name=name, text=text)


def _display(data: dict[str, Any], display_id: str | None = None) -> dict[str, Any]:
    transient = {"display_id": display_id} if display_id else {}
    return _msg("display_data", data=data, metadata={}, transient=transient)


def test_strip_ansi() -> None:
    coloured = (
        "\x1b[31mValueError\x1b[39m: \x1b[1;32mbad\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07"
    )
    assert strip_ansi(coloured) == "ValueError: bad link"
    assert strip_ansi("plain [31m text") == "plain [31m text"


def test_cap_text_keeps_head_and_tail() -> None:
    text = "".join(f"{i:05d}\n" for i in range(10_000))
    capped, dropped = cap_text(text, 1000)
    assert dropped == len(text) - 1000
    assert capped.startswith("00000\n00001\n")
    assert capped.endswith("09999\n")
    assert drop_marker(dropped) in capped
    assert drop_marker(58_000) == "... [codeflow: 58,000 characters dropped] ..."
    assert cap_text("short", 1000) == ("short", 0)


def test_streams_merge_and_interleave() -> None:
    c = OutputCollector(1000)
    c.feed(_stream("stdout", "a\n"))
    c.feed(_stream("stdout", "b\n"))
    c.feed(_stream("stderr", "warn\n"))
    c.feed(_stream("stdout", "c\n"))
    assert c.outputs() == (
        {"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
        {"output_type": "stream", "name": "stderr", "text": "warn\n"},
        {"output_type": "stream", "name": "stdout", "text": "c\n"},
    )


def test_rich_outputs_and_errors_are_nbformat() -> None:
    c = OutputCollector(1000)
    c.feed(_msg("execute_result", data={"text/plain": "42"}, metadata={}, execution_count=3))
    c.feed(_msg("error", ename="ValueError", evalue="bad", traceback=["tb"]))
    c.feed(_msg("status", execution_state="idle"))
    c.feed(_msg("execute_input", code="x", execution_count=3))
    outs = c.outputs()
    assert outs[0] == {
        "output_type": "execute_result",
        "data": {"text/plain": "42"},
        "metadata": {},
        "execution_count": 3,
    }
    assert outs[1] == {
        "output_type": "error",
        "ename": "ValueError",
        "evalue": "bad",
        "traceback": ["tb"],
    }
    assert len(outs) == 2


def test_clear_output_now_and_on_next_output() -> None:
    c = OutputCollector(1000)
    c.feed(_stream("stdout", "old\n"))
    c.feed(_msg("clear_output", wait=False))
    c.feed(_stream("stdout", "new\n"))
    assert c.outputs() == ({"output_type": "stream", "name": "stdout", "text": "new\n"},)
    c.feed(_msg("clear_output", wait=True))
    assert len(c.outputs()) == 1, "wait=True clears only when the next output arrives"
    c.feed(_stream("stdout", "newer\n"))
    assert c.outputs() == ({"output_type": "stream", "name": "stdout", "text": "newer\n"},)


def test_update_display_data_applies_to_its_display() -> None:
    c = OutputCollector(1000)
    c.feed(_display({"text/plain": "0%"}, display_id="bar"))
    c.feed(_display({"text/plain": "other"}))
    c.feed(
        _msg(
            "update_display_data",
            data={"text/plain": "100%"},
            metadata={},
            transient={"display_id": "bar"},
        )
    )
    c.feed(
        _msg(
            "update_display_data",
            data={"text/plain": "x"},
            metadata={},
            transient={"display_id": "unknown"},
        )
    )
    outs = c.outputs()
    assert [o["data"]["text/plain"] for o in outs] == ["100%", "other"]
    assert all("transient" not in o for o in outs)


def test_on_output_sees_each_piece() -> None:
    seen: list[Output] = []
    c = OutputCollector(1000, on_output=seen.append)
    c.feed(_stream("stdout", "a"))
    c.feed(_stream("stdout", "b"))
    c.feed(_display({"text/plain": "p"}))
    assert [o.get("text") for o in seen[:2]] == ["a", "b"]
    assert seen[2]["output_type"] == "display_data"


def test_flood_stays_bounded_and_keeps_head_and_tail() -> None:
    cap = 10_000
    seen: list[Output] = []
    c = OutputCollector(cap, on_output=seen.append)
    total = 0
    for i in range(2000):
        chunk = f"{i:06d}" + "x" * 993 + "\n"
        total += len(chunk)
        c.feed(_stream("stdout", chunk))
        assert c.stream_chars <= cap
    (out,) = c.outputs()
    text = out["text"]
    assert c.dropped_chars == total - cap
    assert text.startswith("000000xxx")
    assert text.endswith("x\n") and "001999" in text[-1100:]
    marker = drop_marker(total - cap)
    assert text.count(marker) == 1
    assert len(text) == cap + len(marker) + 1
    live = "".join(o.get("text", "") for o in seen)
    assert len(live) < cap, "text past the head budget is not passed on live"
    assert "only its end is kept" in live


def test_one_huge_chunk() -> None:
    c = OutputCollector(1000)
    c.feed(_stream("stdout", "H" * 10**6 + "\n"))
    c.feed(_stream("stdout", "end\n"))
    (out,) = c.outputs()
    head, tail = out["text"].split(drop_marker(c.dropped_chars))
    assert head == "H" * 500 + "\n"
    assert tail.endswith("end\n") and len(tail) == 1 + 500
    assert c.dropped_chars == 10**6 + 5 - 1000


def test_marker_sits_between_head_and_tail_across_outputs() -> None:
    c = OutputCollector(100)
    c.feed(_stream("stdout", "h" * 50))
    c.feed(_display({"text/plain": "figure"}))
    c.feed(_stream("stderr", "e" * 200))
    outs = c.outputs()
    kinds = [(o["output_type"], o.get("name")) for o in outs]
    assert kinds == [("stream", "stdout"), ("display_data", None), ("stream", "stderr")]
    assert outs[0]["text"] == "h" * 50
    assert outs[2]["text"] == drop_marker(150) + "\n" + "e" * 50
    assert c.dropped_chars == 150


def test_under_cap_nothing_dropped() -> None:
    c = OutputCollector(100)
    c.feed(_stream("stdout", "x" * 60))
    c.feed(_stream("stdout", "y" * 40))
    (out,) = c.outputs()
    assert out["text"] == "x" * 60 + "y" * 40 and c.dropped_chars == 0


def test_prompt_text_placeholders() -> None:
    png = base64.b64encode(b"\x89PNG" + b"\0" * 23_958).decode()
    outputs: list[Output] = [
        {"output_type": "stream", "name": "stdout", "text": "\x1b[32mhello\x1b[0m\n"},
        {
            "output_type": "display_data",
            "data": {"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"},
            "metadata": {},
        },
        {
            "output_type": "execute_result",
            "data": {"text/html": "<table>" + "x" * 93 + "</table>", "text/plain": "   a\n0  1"},
            "metadata": {},
            "execution_count": 1,
        },
        {"output_type": "display_data", "data": {"application/json": {"a": 1}}, "metadata": {}},
        {"output_type": "error", "ename": "KeyError", "evalue": "'b'", "traceback": ["\x1b[31mx"]},
    ]
    text = output_text_for_prompt(outputs, 10_000)
    assert text.splitlines() == [
        "hello",
        "[image/png, 23.4 KB]",
        "<Figure size 640x480 with 1 Axes>",
        "[text/html, 108 chars]",
        "   a",
        "0  1",
        "[application/json]",
        "KeyError: 'b'",
    ]
    assert png[:50] not in text


def test_prompt_text_is_trimmed_head_and_tail() -> None:
    outputs: list[Output] = [
        {"output_type": "stream", "name": "stdout", "text": "START " + "m" * 5000},
        {"output_type": "error", "ename": "RuntimeError", "evalue": "at the end", "traceback": []},
    ]
    text = output_text_for_prompt(outputs, 400)
    assert text.startswith("START ")
    assert text.endswith("RuntimeError: at the end\n")
    assert "characters dropped" in text
    assert len(text) < 400 + 60
