"""Output faults: floods, binary and invalid UTF-8, huge images, carriage-return spam.

Each fault is injected by a scripted model reply whose code misbehaves, and run for real:
through `codeflow run` on a notebook (the magic's inline backend inside an nbclient kernel)
and through `codeflow ask --format json` (a managed kernel with the output cap at the
source). The outcome checked every time: the output is capped with a visible marker (or
collapsed the way a terminal shows it), the written notebook is valid and small relative to
`execution.max_output_chars`, and the fix prompt the model received stays within the budget
`prompts.fix_prompt_budget` derives from the settings. The collector's rules themselves are
pinned down by fast tests at the end of the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from modelserver import ModelServer

from codeflow_magic import prompts
from codeflow_magic.config import load_settings
from codeflow_magic.executors.outputs import (
    BytesToText,
    OutputCollector,
    drop_marker,
    output_text_for_prompt,
    rich_budget,
)
from codeflow_magic.models import RECORD_MIME, Attempt, AttemptError, Output

CAP = 50_000
"""execution.max_output_chars for these runs: small, so the size bounds are tight."""
OVERRIDE = f"execution.max_output_chars={CAP}"
SETTINGS = load_settings([OVERRIDE])
PY = "```python\n{}\n```"

FLOOD = (
    "import sys\n"
    "for _ in range(100):\n"
    "    sys.stdout.write('x' * 1_000_000 + '\\n')\n"
    "raise ValueError('boom after the flood')"
)
FLOOD_FIX = (
    "import sys\n"
    "for i in range(100):\n"
    "    sys.stdout.write(str(i % 10) * 1_000_000 + '\\n')\n"
    "print('flood done')"
)
BYTES = (
    "import random, sys\n"
    "sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\xfe raw bytes\\n')\n"
    "sys.stdout.buffer.write(b'split \\xe2\\x82')\n"
    "sys.stdout.buffer.write(b'\\xac euro\\n')\n"
    "print(b'name-\\xff.txt'.decode('utf-8', 'surrogateescape'))\n"
    "sys.stdout.buffer.write(random.Random(7).randbytes(200_000))\n"
    "print()\n"
    "print('bytes done')"
)
IMAGE = (
    "from IPython.display import Image, display\n"
    "display(Image(data=b'\\x89PNG\\r\\n\\x1a\\n' + bytes(50_000_000), format='png'))\n"
    "print('image done')"
)
PROGRESS = (
    "import sys\n"
    "for i in range(100_000):\n"
    "    sys.stdout.write(f'\\rprogress {i}')\n"
    "print('\\nfinished')"
)

REQUESTS = {
    "flood": "flood the output please",
    "bytes": "write raw bytes please",
    "image": "show a huge image please",
    "progress": "print progress please",
}


def script(server: ModelServer) -> None:
    """The model's replies: the flood fails once (so a fix prompt is sent), the rest work.

    Rules are anchored on the prompt's `Request:` line: a later request's prompt quotes the
    cells above it, earlier requests included."""
    server.add_rule("boom after the flood", PY.format(FLOOD_FIX))
    server.add_rule("Request:\n" + REQUESTS["flood"], PY.format(FLOOD))
    server.add_rule("Request:\n" + REQUESTS["bytes"], PY.format(BYTES))
    server.add_rule("Request:\n" + REQUESTS["image"], PY.format(IMAGE))
    server.add_rule("Request:\n" + REQUESTS["progress"], PY.format(PROGRESS))


def stream_text(outputs: list[Any]) -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in outputs
        if o.get("output_type") == "stream"
    )


def rich_outputs(outputs: list[Any]) -> list[dict[str, Any]]:
    return [
        dict(o["data"])
        for o in outputs
        if o.get("output_type") in ("display_data", "execute_result")
        and RECORD_MIME not in o.get("data", {})
    ]


def output_chars(outputs: list[Any]) -> int:
    """Characters of text and data an output list holds."""
    total = 0
    for out in outputs:
        total += len(stream_text([out])) + len(str(out.get("evalue", "")))
        total += sum(
            len("".join(v) if isinstance(v, list) else str(v)) for v in out.get("data", {}).values()
        )
        total += sum(len(line) for line in out.get("traceback", ()))
    return total


def fix_prompts(server: ModelServer) -> list[str]:
    return [r.last_user for r in server.requests if "The latest attempt" in r.last_user]


def assert_fix_prompt_within_budget(prompt: str) -> None:
    """The fix prompt after 100 MB of output: within the budget, its excerpt within its cap."""
    budget = prompts.fix_prompt_budget(
        REQUESTS["flood"],
        FLOOD,
        language="python",
        output_chars=SETTINGS.execution.prompt_output_chars,
        state_chars=SETTINGS.generation.state_chars,
    )
    assert len(prompt) <= budget, (len(prompt), budget)
    excerpt = prompt.split("Output before the error (trimmed):\n```\n", 1)[1].split("\n```", 1)[0]
    assert "characters dropped" in excerpt  # the model is told that output was cut
    assert len(excerpt) <= SETTINGS.execution.prompt_output_chars + len(drop_marker(10**9)) + 2
    assert excerpt.lstrip("\n").startswith("xxxx") and "ValueError: boom after the flood" in prompt


def assert_small_valid_notebook(path: Path, request_cells: int) -> Any:
    """Valid, strictly UTF-8, and within what the caps allow per request cell: the outputs
    shown (streams within the cap, rich outputs within the display budget) and once more in
    the run record, plus a record and history that are small next to the cap."""
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: nothing that UTF-8 cannot encode was written
    nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    nbformat.validate(nb)
    cap = SETTINGS.execution.max_output_chars
    bound = request_cells * (2 * (cap + rich_budget(cap)) + cap)
    assert len(raw) <= bound, (len(raw), bound)
    return nb


# -- through `codeflow run` on a notebook -------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.slow
def test_codeflow_run_keeps_a_notebook_small_and_valid_under_every_output_fault(
    tmp_path: Path,
    write_notebook: Callable[..., Path],
    codeflow_cli: Callable[..., Any],
) -> None:
    names = list(REQUESTS)
    source = write_notebook(
        tmp_path / "faults.ipynb",
        ["%load_ext codeflow_magic"] + [f"%%codeflow\n{REQUESTS[n]}" for n in names],
    )
    with ModelServer() as server:
        script(server)
        done = codeflow_cli("run", source.name, OVERRIDE, env=server.env())
        prompts_sent = fix_prompts(server)
    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    nb = assert_small_valid_notebook(tmp_path / "faults.out.ipynb", len(names))
    cells = {
        n: next(c for c in nb.cells if c.source == f"%%codeflow\n{REQUESTS[n]}") for n in names
    }
    for name, cell in cells.items():
        record = next(
            o["data"][RECORD_MIME] for o in cell.outputs if RECORD_MIME in o.get("data", {})
        )
        assert record["success"], (name, record)

    # the flood: head and tail with a marker between, within the cap; the fix prompt in budget
    text = stream_text(cells["flood"].outputs)
    head, tail = text.split("\n... [codeflow: ", 1)
    assert set(head) == {"0"} and tail.endswith("9\nflood done\n")
    assert " characters dropped] ...\n" in tail
    assert len(text) <= CAP + len(drop_marker(10**9)) + 2
    (prompt,) = prompts_sent
    assert_fix_prompt_within_budget(prompt)

    # bytes: decoded as UTF-8 across writes, invalid bytes and surrogates as U+FFFD
    text = stream_text(cells["bytes"].outputs)
    assert text.startswith("café \ufffd\ufffd raw bytes\nsplit € euro\nname-\ufffd.txt\n")
    assert text.endswith("bytes done\n") and len(text) <= CAP + len(drop_marker(10**9)) + 2

    # the image: a note in its place, no image data anywhere in the file
    (shown,) = rich_outputs(cells["image"].outputs)
    assert set(shown) == {"text/plain"}
    assert "image/png output of 66,666," in shown["text/plain"] and "dropped" in shown["text/plain"]
    assert stream_text(cells["image"].outputs) == "image done\n"
    assert "iVBORw0KGgo" not in (tmp_path / "faults.out.ipynb").read_text(encoding="utf-8")

    # 100,000 progress updates: the last state of the line, as a terminal shows it
    assert stream_text(cells["progress"].outputs) == "progress 99999\nfinished\n"


# -- through `codeflow ask --format json` -------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("fault", list(REQUESTS))
def test_codeflow_ask_json_caps_every_output_fault(
    fault: str, codeflow_cli: Callable[..., Any]
) -> None:
    with ModelServer() as server:
        script(server)
        done = codeflow_cli(
            "ask", "--format", "json", "--no-cache", REQUESTS[fault], OVERRIDE, env=server.env()
        )
        prompts_sent = fix_prompts(server)
    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads(done.stdout)
    assert record["success"]
    # every attempt's outputs and the final ones: each set within the stream and rich caps
    sets = [record["outputs"]] + [a["outputs"] for a in record["attempts"]]
    kept = sum(output_chars(outputs) for outputs in sets)
    assert kept <= len(sets) * (CAP + rich_budget(CAP)), (kept, len(sets))
    outputs = record["outputs"]
    text = stream_text(outputs)
    if fault == "flood":
        assert text.startswith("0000") and text.endswith("9\nflood done\n")
        assert "characters dropped] ..." in text and len(text) <= CAP + 200
        (prompt,) = prompts_sent
        assert_fix_prompt_within_budget(prompt)
    elif fault == "bytes":
        assert text.startswith("café \ufffd\ufffd raw bytes\nsplit € euro\nname-\ufffd.txt\n")
        assert text.endswith("bytes done\n")
    elif fault == "image":
        (shown,) = rich_outputs(outputs)
        assert set(shown) == {"text/plain"} and "image/png output of" in shown["text/plain"]
        assert "iVBORw0KGgo" not in done.stdout
    else:
        # the kernel caps raw text at the source (its marker says so); what is kept shows
        # lines as a terminal would: no carriage returns, the last state of the line
        assert "\r" not in text and text.endswith("progress 99999\nfinished\n")
        assert len(text.splitlines()) <= 4 and len(text) <= CAP
    if fault != "flood":
        assert prompts_sent == []  # it worked at once: no fix was asked for


# -- the rules, without a kernel ------------------------------------------------------------


def _stream(name: str, text: str) -> dict[str, Any]:
    return {"msg_type": "stream", "content": {"name": name, "text": text}}


def _display(data: dict[str, Any], display_id: str | None = None) -> dict[str, Any]:
    transient = {"display_id": display_id} if display_id else {}
    return {
        "msg_type": "display_data",
        "content": {"data": data, "metadata": {}, "transient": transient},
    }


def test_carriage_returns_rewrite_the_line_like_a_terminal() -> None:
    live: list[Output] = []
    c = OutputCollector(1000, on_output=live.append)
    for i in range(100_000):
        c.feed(_stream("stdout", f"\rprogress {i}"))
    c.feed(_stream("stdout", "\nnext 100%"))
    c.feed(_stream("stdout", "\rdone\r"))  # shorter text overwrites the start only
    c.feed(_stream("stdout", "\nwindows line\r"))
    c.feed(_stream("stdout", "\n"))  # \r\n split across writes is a plain line end
    (out,) = c.outputs()
    assert out["text"] == "progress 99999\ndone 100%\nwindows line\n"
    assert c.dropped_chars == 0 and "characters dropped" not in out["text"]
    assert live[0]["text"] == "\rprogress 0"  # live output is passed on as written


def test_carriage_returns_per_stream_and_around_displays() -> None:
    c = OutputCollector(1000)
    c.feed(_stream("stderr", "\r 10%"))
    c.feed(_stream("stdout", "log line\n"))
    c.feed(_stream("stderr", "\r 50%\r100%\n"))
    c.feed(_stream("stdout", "a\rb"))
    c.feed(_display({"text/plain": "figure"}))
    c.feed(_stream("stdout", "\rc\n"))
    outs = c.outputs()
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in outs] == [
        ("stream", "stderr", " 10%"),
        ("stream", "stdout", "log line\n"),
        ("stream", "stderr", "100%\n"),
        ("stream", "stdout", "b"),
        ("display_data", None, None),
        ("stream", "stdout", "c\n"),
    ]


def test_a_flood_without_newlines_stays_within_the_cap() -> None:
    cap = 10_000
    c = OutputCollector(cap)
    for _ in range(1000):
        c.feed(_stream("stdout", "y" * 997))
    c.feed(_stream("stdout", "END"))
    (out,) = c.outputs()
    assert out["text"].startswith("y" * 100) and out["text"].endswith("yyyEND")
    assert c.stream_chars <= cap
    assert drop_marker(1000 * 997 + 3 - cap) in out["text"]


def test_lone_surrogates_become_replacement_characters() -> None:
    c = OutputCollector(1000)
    c.feed(_stream("stdout", "file-\udcff.txt\n"))
    c.feed(_display({"text/plain": "\ud800 bad", "text/html": ["<b>\udcfe</b>"]}))
    c.feed(
        {
            "msg_type": "error",
            "content": {"ename": "E", "evalue": "\udc80", "traceback": ["tb \udc81"]},
        }
    )
    outs = c.outputs()
    assert outs[0]["text"] == "file-\ufffd.txt\n"
    assert outs[1]["data"] == {"text/plain": "\ufffd bad", "text/html": ["<b>\ufffd</b>"]}
    assert outs[2]["evalue"] == "\ufffd" and outs[2]["traceback"] == ["tb \ufffd"]
    json.dumps(outs, ensure_ascii=False).encode("utf-8")  # strict: encodable now


def test_bytes_to_text_decodes_across_writes() -> None:
    seen: list[str] = []
    buffer = BytesToText(seen.append)
    assert buffer.write(b"caf\xc3") == 4
    assert buffer.write(memoryview(b"\xa9 \xff ok")) == 6
    buffer.close()
    assert "".join(seen) == "café \ufffd ok"


def test_a_matplotlib_sized_figure_fits_even_a_small_cap() -> None:
    png = base64.b64encode(b"\x89PNG" + bytes(30_000)).decode()  # a typical plot
    c = OutputCollector(20_000)
    c.feed(_display({"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"}))
    (out,) = c.outputs()
    assert out["data"]["image/png"] == png and c.dropped_chars == 0


def test_a_huge_image_becomes_a_note_and_later_small_outputs_stay() -> None:
    cap = 100_000
    c = OutputCollector(cap)
    png = base64.b64encode(b"\x89PNG" + bytes(5_000_000)).decode()
    c.feed(_display({"image/png": png, "text/plain": "<Image>"}))
    c.feed(_display({"text/plain": "small table"}))
    c.feed(_display({"image/png": png}))
    outs = c.outputs()
    assert len(outs) == 2
    note = outs[0]["data"]["text/plain"]
    assert set(outs[0]["data"]) == {"text/plain"} and outs[0]["metadata"] == {}
    assert note.startswith("[codeflow: 2 outputs of ") and f"{rich_budget(cap):,}-char" in note
    assert outs[1]["data"] == {"text/plain": "small table"}
    assert c.rich_chars <= rich_budget(cap) and c.dropped_chars >= 2 * len(png)


def test_a_flood_of_tiny_displays_leaves_one_note() -> None:
    cap = 20_000
    c = OutputCollector(cap)
    for i in range(200_000):
        c.feed(_display({"text/plain": str(i)}))
    outs = c.outputs()
    budget = rich_budget(cap)
    assert c.rich_chars <= budget
    kept = [o["data"]["text/plain"] for o in outs]
    assert kept[0] == "0" and len(kept) < budget // 100
    assert kept[-1].startswith("[codeflow: ") and " outputs of " in kept[-1]
    assert len(json.dumps(outs)) <= 2 * budget


def test_a_long_repr_keeps_its_head_and_tail() -> None:
    cap = 10_000
    c = OutputCollector(cap)
    text = "[" + ", ".join(str(i) for i in range(100_000)) + "]"
    c.feed({"msg_type": "execute_result", "content": {"data": {"text/plain": text}}})
    (out,) = c.outputs()
    kept = out["data"]["text/plain"]
    assert kept.startswith("[0, 1, 2") and kept.endswith("99998, 99999]")
    assert "characters dropped" in kept and len(kept) <= cap


def test_display_updates_stay_within_the_budget() -> None:
    cap = 10_000
    c = OutputCollector(cap)
    c.feed(_display({"text/plain": "0%"}, display_id="bar"))
    c.feed(
        {
            "msg_type": "update_display_data",
            "content": {"data": {"image/png": "A" * 500_000}, "transient": {"display_id": "bar"}},
        }
    )
    (out,) = c.outputs()
    assert "image/png output of 500,000 characters dropped" in out["data"]["text/plain"]
    c.feed(
        {
            "msg_type": "update_display_data",
            "content": {"data": {"text/plain": "100%"}, "transient": {"display_id": "bar"}},
        }
    )
    (out,) = c.outputs()
    assert out["data"] == {"text/plain": "100%"} and c.rich_chars <= rich_budget(cap)


def test_a_megabyte_error_message_is_cut() -> None:
    cap = 10_000
    c = OutputCollector(cap)
    evalue = "e" * 1_000_000
    c.feed(
        {
            "msg_type": "error",
            "content": {"ename": "ValueError", "evalue": evalue, "traceback": ["x" * 10**6]},
        }
    )
    (out,) = c.outputs()
    assert len(out["evalue"]) <= cap and "characters dropped" in out["evalue"]
    assert sum(len(line) for line in out["traceback"]) <= cap


def test_the_fix_prompt_budget_holds_for_any_failure() -> None:
    """Whatever the failed attempt printed and raised, the prompt stays within the budget."""
    code = "print('x' * 10**8)\nraise ValueError('x' * 10**7)"
    noise = "ab\n\r\t\x1b[31m" * 400_000
    huge = AttemptError(
        "runtime",
        "ValueError",
        "v" * 10**6,
        traceback="t" * 10**6,
        line=2,
        source_line="s" * 10**5,
        root_cause="r" * 10**6,
    )
    earlier = [Attempt(number=n, code=code * 50, success=False, error=huge) for n in (1, 2, 3)]
    failed = Attempt(number=4, code=code, success=False, error=huge)
    output_chars = SETTINGS.execution.prompt_output_chars
    req = prompts.build_fix(
        "do it",
        language="python",
        failed=failed,
        earlier=earlier,
        output_text=output_text_for_prompt(
            [{"output_type": "stream", "name": "stdout", "text": noise}], output_chars
        ),
        state="s" * SETTINGS.generation.state_chars,
    )
    budget = prompts.fix_prompt_budget(
        "do it",
        code,
        language="python",
        output_chars=output_chars,
        state_chars=SETTINGS.generation.state_chars,
        earlier=len(earlier),
    )
    content = req.messages[0].content
    assert len(content) <= budget
    assert "v" * (prompts.ERROR_CHARS + 1) not in content and "characters trimmed" in content
