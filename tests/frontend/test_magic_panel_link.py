"""`%%codeflow` in a real ipykernel, with this test playing the JupyterLab extension.

The test speaks the comm protocol the extension speaks (hello with settings, one-shot
options, execute_request with `metadata.cellId`) and checks what the magic does with it:
the sidebar's max-attempts setting, the "Improve" buttons' focus, magic-line options on top,
the write-back switch, the one metadata shape, and a single status line per run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from modelserver import ModelServer

from codeflow_magic.models import RECORD_MIME
from codeflow_magic.notebook import CODE_METADATA_KEYS, REQUEST_METADATA_KEYS, source_hash

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

TIMEOUT = 120
PY = "```python\n{}\n```"


class Lab:
    """The frontend end: one kernel client and the codeflow comm id."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.comm_id = ""

    def execute(self, code: str, cell_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run a cell as JupyterLab does; the iopub messages of that request and its reply."""
        content = {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.kc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        messages: list[dict[str, Any]] = []
        while True:
            got = self.kc.get_iopub_msg(timeout=TIMEOUT)
            if got["parent_header"].get("msg_id") != msg_id:
                continue
            if got["msg_type"] == "status" and got["content"]["execution_state"] == "idle":
                break
            messages.append(got)
        while True:
            reply = self.kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", [
            m["content"] for m in messages if m["msg_type"] == "error"
        ]
        return messages, reply

    def send(self, data: dict[str, Any]) -> None:
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def settings(self, **values: Any) -> None:
        base = {"model": "", "max_attempts": 1, "backend": "inline", "writeback": True}
        self.send({"type": "settings", "settings": {**base, **values}})

    def comm_data(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            m["content"]["data"]
            for m in messages
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == self.comm_id
        ]

    def run(self, source: str, cell_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
        """Run a request cell: (the record it displayed, its comm messages, the reply)."""
        messages, reply = self.execute(source, cell_id)
        shown = [
            m["content"]["data"]
            for m in messages
            if m["msg_type"] in ("display_data", "execute_result")
        ]
        records = [d for d in shown if RECORD_MIME in d]
        assert len(records) == 1, shown
        # The status line is shown once: inside the record bundle, in no output of its own.
        status = [
            d
            for d in shown
            if "succeeded after" in d.get("text/plain", "")
            or "failed after" in d.get("text/plain", "")
        ]
        assert status == records
        return records[0][RECORD_MIME], self.comm_data(messages), reply


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def lab(server: ModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("panel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CODEFLOW_"))}
    env.update(server.env(), CODEFLOW_CACHE="off")
    env.pop("JPY_SESSION_NAME", None)
    sockets = tempfile.TemporaryDirectory(prefix="cf-test-", dir="/tmp")
    km = KernelManager(
        kernel_name="python3",
        transport="ipc",
        connection_file=str(Path(sockets.name) / "kernel.json"),
    )
    km.start_kernel(env=env, cwd=str(folder))
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        front = Lab(kc)
        messages, _ = front.execute("%load_ext codeflow_magic", "load")
        opens = [m for m in messages if m["msg_type"] == "comm_open"]
        assert [m["content"]["target_name"] for m in opens] == ["codeflow"]
        front.comm_id = opens[0]["content"]["comm_id"]
        hello = {
            "type": "hello",
            "version": "0.1.0",
            "settings": {"model": "", "max_attempts": 1, "backend": "inline", "writeback": True},
        }
        front.send(hello)
        messages, _ = front.execute("%codeflow status", "status")
        text = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
        assert "frontend:  connected" in text
        yield front
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        sockets.cleanup()


def cell() -> str:
    return f"req-{uuid.uuid4().hex[:8]}"


def test_sidebar_max_attempts_applies_and_the_magic_line_wins(
    lab: Lab, server: ModelServer
) -> None:
    server.reset()
    server.add_rule("ValueError", PY.format("raise KeyError('still')"))  # the fix, also broken
    server.add_rule("always broken", PY.format("raise ValueError('nope')"))
    lab.settings(max_attempts=1)
    record, comms, _ = lab.run("%%codeflow\nalways broken", cell())
    assert not record["success"] and len(record["attempts"]) == 1
    assert "writeback" not in [d["type"] for d in comms]  # nothing to write for a failure
    assert len(server.requests) == 1

    record, _, _ = lab.run("%%codeflow --max-attempts 2\nalways broken", cell())
    assert len(record["attempts"]) == 2 and len(server.requests) == 3


def test_improve_focus_is_one_shot_and_write_back_has_the_one_shape(
    lab: Lab, server: ModelServer
) -> None:
    server.reset()
    server.add_rule("Improve it.", PY.format("five = 2 + 3\nprint(five)"))
    server.add_rule("make five", PY.format("five = 5\nprint(five)"))
    lab.settings(max_attempts=3)
    request_id = cell()
    lab.send({"type": "set_next_options", "cell_id": request_id, "options": {"focus": "optimize"}})
    record, comms, reply = lab.run("%%codeflow\nmake five", request_id)
    assert record["focus"] == "optimize"
    assert [a["kind"] for a in record["attempts"]] == ["generate", "improve"]
    assert "Improve it." in server.prompts()[-1]

    writes = [d for d in comms if d["type"] == "writeback"]
    assert len(writes) == 1 and writes[0]["cell_id"] == request_id and writes[0]["mode"] == "below"
    meta = writes[0]["request_metadata"]
    assert tuple(meta) == REQUEST_METADATA_KEYS
    assert meta["request"] == "make five" and meta["success"] is True
    assert meta["attempts"] == 2 and [h["kind"] for h in meta["history"]] == ["generate", "improve"]
    assert meta["run_id"] == record["run_id"] and meta["linked_cell_id"] is None
    assert writes[0]["code_metadata"] == {
        "generated_from": request_id,
        "run_id": record["run_id"],
        "written_hash": source_hash(writes[0]["code"]),
        "review": None,
    }
    assert tuple(writes[0]["code_metadata"]) == CODE_METADATA_KEYS
    assert reply["content"].get("payload", []) == []  # the extension wrote it: no fallback

    # The option was for one run only; an invalid one is dropped, the cell still runs.
    lab.send({"type": "set_next_options", "cell_id": request_id, "options": {"focus": "turbo"}})
    record, _, _ = lab.run("%%codeflow\nmake five", request_id)
    assert record["focus"] == "fix_errors" and len(record["attempts"]) == 1


def test_write_back_switched_off_in_the_sidebar_writes_nothing(
    lab: Lab, server: ModelServer
) -> None:
    server.reset()
    server.add_rule("make six", PY.format("six = 6"))
    lab.settings(writeback=False)
    try:
        _, comms, reply = lab.run("%%codeflow\nmake six", cell())
    finally:
        lab.settings(writeback=True)
    assert [d for d in comms if d["type"] == "writeback"] == []
    assert reply["content"].get("payload", []) == []  # and no set_next_input fallback

    request_id = cell()
    _, comms, _ = lab.run("%%codeflow --replace\nmake six", request_id)
    writes = [d for d in comms if d["type"] == "writeback"]
    assert len(writes) == 1 and writes[0]["mode"] == "replace"
    assert writes[0]["request_metadata"]["linked_cell_id"] == request_id
    assert writes[0]["code"].startswith("# %%codeflow\n# make six\n")
