"""FrontendLink inside a real ipykernel, with this test acting as the JupyterLab frontend.

The test speaks the Jupyter protocol itself (comm_open / comm_msg / execute_request with
`metadata.cellId`), exactly what the labextension sends, so the kernel side is exercised
end to end without a browser.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

pytestmark = pytest.mark.kernel

TIMEOUT = 60


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=TIMEOUT)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(
    kc: BlockingKernelClient, code: str, cell_id: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run code like JupyterLab does; return the iopub messages of that request and the reply."""
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    msg = kc.session.msg(
        "execute_request", content, metadata={"cellId": cell_id} if cell_id else {}
    )
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    messages: list[dict[str, Any]] = []
    while True:
        got = kc.get_iopub_msg(timeout=TIMEOUT)
        if got["parent_header"].get("msg_id") != msg_id:
            continue
        if got["msg_type"] == "status" and got["content"]["execution_state"] == "idle":
            break
        messages.append(got)
    while True:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    return messages, reply


def stdout(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def errors(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["ename"] for m in messages if m["msg_type"] == "error"]


def comm_msgs(messages: list[dict[str, Any]], comm_id: str) -> list[dict[str, Any]]:
    return [
        m["content"]["data"]
        for m in messages
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
    ]


def send_comm(kc: BlockingKernelClient, msg_type: str, content: dict[str, Any]) -> None:
    kc.shell_channel.send(kc.session.msg(msg_type, content))


@pytest.fixture(scope="module")
def linked(kernel: tuple[KernelManager, BlockingKernelClient]) -> tuple[BlockingKernelClient, str]:
    """A kernel whose FrontendLink is open and has received `hello`; returns (client, comm id)."""
    _, kc = kernel
    messages, reply = execute(
        kc,
        "from codeflow_magic.frontend import FrontendLink, current_cell_id\n"
        "link = FrontendLink.for_shell(get_ipython())\n"
        "print(link.open(), link.connected, FrontendLink.for_shell(get_ipython()) is link)",
    )
    assert reply["content"]["status"] == "ok", errors(messages)
    assert stdout(messages).split() == ["True", "False", "True"]
    opens = [m for m in messages if m["msg_type"] == "comm_open"]
    assert len(opens) == 1
    assert opens[0]["content"]["target_name"] == "codeflow"
    assert opens[0]["content"]["data"]["type"] == "open"
    comm_id = opens[0]["content"]["comm_id"]

    # Before hello nothing is sent: the magic must fall back.
    messages, _ = execute(
        kc,
        "print(link.send_event('c0', {'kind': 'start'}), link.write_back('c0', 'x=1', {}, {}))",
        cell_id="c0",
    )
    assert stdout(messages).split() == ["False", "False"]
    assert comm_msgs(messages, comm_id) == []

    hello = {
        "type": "hello",
        "version": "0.1.0",
        "settings": {"model": " m-1 ", "max_attempts": 5, "backend": "kernel", "writeback": True},
    }
    send_comm(kc, "comm_msg", {"comm_id": comm_id, "data": hello})
    return kc, comm_id


def test_hello_connects_and_stores_valid_settings(linked: tuple[BlockingKernelClient, str]) -> None:
    kc, _ = linked
    messages, _ = execute(
        kc,
        "print(link.connected, link.frontend_version)\n"
        "print(sorted(link.settings.items()))\n"
        "print(sorted(link.config_extra().items()))",
    )
    lines = stdout(messages).splitlines()
    assert lines[0] == "True 0.1.0"
    assert lines[1] == str(
        [("backend", "kernel"), ("max_attempts", 5), ("model", "m-1"), ("writeback", True)]
    )
    assert lines[2] == str(
        [
            ("execution.backend", "kernel"),
            ("generation.model", "m-1"),
            ("improvement.max_attempts", 5),
        ]
    )


def test_cell_id_and_one_shot_options(linked: tuple[BlockingKernelClient, str]) -> None:
    kc, comm_id = linked
    cell = f"cell-{uuid.uuid4().hex[:8]}"
    send_comm(
        kc,
        "comm_msg",
        {
            "comm_id": comm_id,
            "data": {"type": "set_next_options", "cell_id": cell, "options": {"focus": "optimize"}},
        },
    )
    messages, _ = execute(
        kc,
        "cid = current_cell_id(get_ipython())\n"
        "print(cid)\n"
        "print(link.pop_options(cid))\n"
        "print(link.pop_options(cid))",
        cell_id=cell,
    )
    assert stdout(messages).splitlines() == [cell, "{'focus': 'optimize'}", "{}"]

    messages, _ = execute(kc, "print(current_cell_id(get_ipython()))")
    assert stdout(messages).strip() == "None"


def test_events_records_and_write_back_reach_the_frontend(
    linked: tuple[BlockingKernelClient, str],
) -> None:
    kc, comm_id = linked
    code = textwrap.dedent(
        """
        from codeflow_magic.models import FlowEvent
        cid = current_cell_id(get_ipython())
        r1 = link.send_event(cid, FlowEvent(kind="attempt", attempt=1, data={"number": 1}))
        r2 = link.send_record(cid, {"success": True, "attempts": []})
        r3 = link.write_back(cid, "print(1)\\n", {"request": "say 1"}, {"generated_from": cid}, "below")
        print(r1, r2, r3)
        try:
            link.write_back(cid, "x", {}, {}, "sideways")
        except ValueError as exc:
            print("ValueError", exc)
        """
    )
    messages, reply = execute(kc, code, cell_id="req-1")
    assert reply["content"]["status"] == "ok", errors(messages)
    out = stdout(messages).splitlines()
    assert out[0] == "True True True"
    assert out[1].startswith("ValueError") and "sideways" in out[1]
    sent = comm_msgs(messages, comm_id)
    assert [d["type"] for d in sent] == ["event", "record", "writeback"]
    assert sent[0] == {
        "type": "event",
        "cell_id": "req-1",
        "event": {"kind": "attempt", "attempt": 1, "data": {"number": 1}},
    }
    assert sent[1]["record"] == {"success": True, "attempts": []}
    assert sent[2] == {
        "type": "writeback",
        "cell_id": "req-1",
        "code": "print(1)\n",
        "request_metadata": {"request": "say 1"},
        "code_metadata": {"generated_from": "req-1"},
        "mode": "below",
    }


def test_settings_update_and_disabled_write_back(linked: tuple[BlockingKernelClient, str]) -> None:
    kc, comm_id = linked
    bad_and_good = {"max_attempts": 99, "backend": "cloud", "writeback": False, "model": 3}
    send_comm(
        kc, "comm_msg", {"comm_id": comm_id, "data": {"type": "settings", "settings": bad_and_good}}
    )
    messages, _ = execute(
        kc,
        "print(link.settings)\nprint(link.write_back('req-2', 'x = 1', {}, {}))",
        cell_id="req-2",
    )
    # Invalid values are dropped (the magic's defaults apply), a disabled write-back sends
    # nothing but reports handled so that no fallback writes anyway.
    assert stdout(messages).splitlines() == ["{'writeback': False}", "True"]
    assert comm_msgs(messages, comm_id) == []
    send_comm(
        kc,
        "comm_msg",
        {"comm_id": comm_id, "data": {"type": "settings", "settings": {"writeback": True}}},
    )


def test_frontend_opened_comm_replaces_the_old_one(
    linked: tuple[BlockingKernelClient, str],
) -> None:
    """After a page reload the extension opens a new comm; the kernel must talk to it."""
    kc, old_id = linked
    new_id = uuid.uuid4().hex
    hello = {"type": "hello", "version": "0.2.0", "settings": {"writeback": True}}
    send_comm(kc, "comm_open", {"comm_id": new_id, "target_name": "codeflow", "data": hello})
    messages, _ = execute(
        kc,
        "print(link.connected, link.frontend_version, link.send_event('c9', {'kind': 'start'}))",
        cell_id="c9",
    )
    assert stdout(messages).split() == ["True", "0.2.0", "True"]
    assert comm_msgs(messages, old_id) == []
    assert comm_msgs(messages, new_id) == [
        {"type": "event", "cell_id": "c9", "event": {"kind": "start"}}
    ]

    # The frontend closing the comm disconnects the link.
    send_comm(kc, "comm_close", {"comm_id": new_id, "data": {}})
    messages, _ = execute(kc, "print(link.connected, link.send_event('c9', {'kind': 'x'}))")
    assert stdout(messages).split() == ["False", "False"]
    # ... and open() gives a fresh comm for the next hello.
    messages, _ = execute(kc, "print(link.open())")
    assert stdout(messages).strip() == "True"
    assert [m["content"]["target_name"] for m in messages if m["msg_type"] == "comm_open"] == [
        "codeflow"
    ]


def test_without_a_kernel_everything_is_a_quiet_no() -> None:
    code = textwrap.dedent(
        """
        from IPython.core.interactiveshell import InteractiveShell
        from codeflow_magic.frontend import FrontendLink, current_cell_id
        shell = InteractiveShell.instance()
        link = FrontendLink.for_shell(shell)
        print(current_cell_id(shell), link.open(), link.connected)
        print(link.send_event("c", {"kind": "start"}), link.write_back("c", "x", {}, {}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "False", "False", "False", "False"]
