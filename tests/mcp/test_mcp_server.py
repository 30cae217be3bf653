"""`codeflow mcp` driven by the MCP SDK's own client over stdio, as an agent drives it.

Each test starts the real `codeflow mcp` in a subprocess (in a temporary work dir, with the
environment the CLI tests use) and talks to it with `mcp.ClientSession` over `stdio_client`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from cliharness import clean_env, write_notebook

# The SDK is a dev dependency (the `mcp` extra, in the lock): missing, this file fails.
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError as McpError
from mcp.types import CallToolResult, ImageContent, TextContent
from modelserver import ModelServer

pytestmark = pytest.mark.kernel

BASE_TOOLS = {"execute", "run_request", "state", "preview", "history", "result"}
NOTEBOOK_TOOLS = {"list_cells", "write_cell", "run_cell"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@asynccontextmanager
async def connect(
    work: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """A client session with `codeflow mcp ARGS` running in `work` (HOME there too)."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "codeflow_magic.cli", "mcp", "--no-cache", *args],
        env={
            **clean_env(work, env),
            "HOME": str(home),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        },
        cwd=str(work),
    )
    with (work / "server.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=120) as session:
                await session.initialize()
                yield session


def texts(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data(result: CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


async def test_lists_the_tools_and_the_notebook_tools_only_with_a_notebook(
    tmp_path: Path,
) -> None:
    async with connect(tmp_path) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == BASE_TOOLS
        assert tools["execute"].input_schema["required"] == ["code"]
        assert tools["state"].annotations is not None
        assert tools["state"].annotations.read_only_hint is True
    async with connect(tmp_path, "--notebook", "nb.ipynb") as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert names == BASE_TOOLS | NOTEBOOK_TOOLS
        bad = await call(session, "execute", code=1)
        assert bad.is_error and "bad arguments" in texts(bad)


async def test_execute_keeps_state_returns_images_and_classifies_errors(
    tmp_path: Path,
) -> None:
    async with connect(tmp_path) as session:
        first = await call(session, "execute", code="x = 41\nprint('set x')")
        assert not first.is_error, texts(first)
        assert "set x" in texts(first)
        second = await call(session, "execute", code="x + 1")
        assert not second.is_error
        assert "42" in texts(second)

        plot = await call(
            session,
            "execute",
            code="import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 1, 9])\nplt.show()",
        )
        assert not plot.is_error, texts(plot)
        images = [c for c in plot.content if isinstance(c, ImageContent)]
        assert len(images) == 1
        assert images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data).startswith(PNG_MAGIC)
        # the structured record names the image instead of carrying it twice
        assert "base64 chars" in json.dumps(data(plot)["record"]["outputs"])

        failed = await call(session, "execute", code="y = 1\nprint(undefined_name)")
        assert failed.is_error
        error = data(failed)["error"]
        assert error["category"] == "runtime"
        assert error["ename"] == "NameError"
        assert error["line"] == 2
        assert "runtime error: NameError" in texts(failed)
        assert "root cause:" in texts(failed)

        bash = await call(session, "execute", code="echo from-bash", language="bash")
        assert not bash.is_error and "from-bash" in texts(bash)

        state = await call(session, "state")
        assert "x: int = 41" in texts(state)
        assert "Python 3." in data(state)["environment"]


async def test_a_destructive_snippet_is_blocked_with_its_finding(tmp_path: Path) -> None:
    secret = "mcp-test-secret-value-42"
    async with connect(tmp_path, env={"WAREHOUSE_API_KEY": secret}) as session:
        home = tmp_path / "home"
        (home / "keep.txt").write_text("still here")
        code = "import os, shutil\nshutil.rmtree(os.path.expanduser('~'))"
        blocked = await call(session, "execute", code=code)
        assert blocked.is_error
        assert "Blocked by codeflow's security scanner" in texts(blocked)
        assert "deletes the home directory" in texts(blocked)
        findings = data(blocked)["findings"]
        assert findings[0]["rule"] == "delete-path"
        assert findings[0]["severity"] == "critical"
        assert data(blocked)["status"] == "security_blocked"
        assert (home / "keep.txt").read_text() == "still here"  # nothing ran

        # a secret the server knows never goes back, nor into the session record
        leak = await call(session, "execute", code=f"print('key: ' + {secret!r})")
        assert secret not in texts(leak)
        assert "[REDACTED:WAREHOUSE_API_KEY]" in texts(leak)

        history = await call(session, "history")
        runs = data(history)["runs"]
        assert [r["status"] for r in runs] == ["security_blocked", "ok"]
        calls = data(history)["calls"]
        assert calls[0]["tool"] == "execute" and calls[0]["is_error"] is True
        assert secret not in json.dumps(data(history))


async def test_a_timeout_interrupts_and_the_next_call_sees_the_state(tmp_path: Path) -> None:
    async with connect(tmp_path) as session:
        slow = await call(
            session,
            "execute",
            code="import time\nbefore = 'kept'\ntime.sleep(60)\nafter = 1",
            timeout=1,
        )
        assert slow.is_error
        assert data(slow)["status"] == "timeout"
        assert data(slow)["error"]["category"] == "environment"
        assert "state is kept" in texts(slow)
        after = await call(session, "execute", code="print(before, 'after' in dir())")
        assert not after.is_error, texts(after)
        assert "kept False" in texts(after)


async def test_a_run_past_wait_answers_with_a_run_id_and_goes_on(tmp_path: Path) -> None:
    async with connect(tmp_path) as session:
        await call(session, "execute", code="1")  # the kernel is up
        early = await call(
            session, "execute", code="import time\ntime.sleep(2)\nprint('done')", wait=0.2
        )
        assert not early.is_error
        assert data(early)["status"] == "running"
        run_id = data(early)["run_id"]
        assert run_id in texts(early)
        late = await call(session, "result", run_id=run_id, wait=60)
        assert not late.is_error, texts(late)
        assert "done" in texts(late)
        unknown = await call(session, "result", run_id="nope")
        assert unknown.is_error

        # a client that gives up on a call (its own request timeout) does not stop the run
        with pytest.raises(McpError):
            await session.call_tool(
                "execute",
                {"code": "import time\ntime.sleep(3)\nsurvived = True\nprint('late')"},
                read_timeout_seconds=0.5,
            )
        running = data(await call(session, "history"))["runs"][-1]
        assert running["status"] == "running"
        late = await call(session, "result", run_id=running["run_id"], wait=60)
        assert "late" in texts(late)
        assert "True" in texts(await call(session, "execute", code="print(survived)"))


async def test_write_cell_writes_a_valid_notebook_with_history(tmp_path: Path) -> None:
    nb_path = tmp_path / "analysis.ipynb"
    async with connect(tmp_path, "--notebook", str(nb_path)) as session:
        ran = await call(session, "execute", code="total = sum(range(10))\nprint(total)")
        run_id = data(ran)["run_id"]
        written = await call(session, "write_cell", request="sum of 0..9", run_id=run_id)
        assert not written.is_error, texts(written)
        request_id = data(written)["request_cell"]
        code_id = data(written)["code_cell"]

        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        request_cell, code_cell = nb.cells
        assert request_cell.id == request_id and code_cell.id == code_id
        assert request_cell.source == "%%codeflow\nsum of 0..9"
        meta = request_cell.metadata["codeflow"]
        assert meta["request"] == "sum of 0..9"
        assert meta["success"] is True
        assert meta["linked_cell_id"] == code_id
        assert meta["run_id"] == run_id
        assert meta["history"][0]["success"] is True
        record = request_cell.outputs[0]["data"]["application/vnd.codeflow.run+json"]
        assert record["final_code"].startswith("total = sum(range(10))")
        assert code_cell.source == "total = sum(range(10))\nprint(total)"
        assert code_cell.metadata["codeflow"]["generated_from"] == request_id

        # code that never ran goes in for the user's review; the same request cell updates
        review = await call(
            session, "write_cell", request="sum of 0..19", code="total = sum(range(20))",
            cell_id=code_id,
        )  # fmt: skip
        assert not review.is_error, texts(review)
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        assert len(nb.cells) == 2
        assert nb.cells[0].metadata["codeflow"]["review"] == "pending"
        assert nb.cells[1].source == "total = sum(range(20))"

        listed = await call(session, "list_cells")
        assert [c["kind"] for c in data(listed)["cells"]] == ["request", "generated"]

        ran_cell = await call(session, "run_cell", cell_id=code_id)
        assert not ran_cell.is_error, texts(ran_cell)
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[1].outputs == []  # an assignment prints nothing
        shown = await call(session, "execute", code="print(total)")
        assert "190" in texts(shown)

        missing = await call(session, "write_cell", request="x", run_id="nope")
        assert missing.is_error


async def test_run_request_runs_the_loop_with_codeflows_model(tmp_path: Path) -> None:
    with ModelServer() as server:
        server.add_rule(
            contains="NameError",
            reply="Fixed.\n```python\nsquares = [i * i for i in range(5)]\nprint(squares)\n```",
        )
        server.add_rule(
            contains="list the first five squares",
            reply="Here.\n```python\nprint(squares)\n```",
        )
        server.add_rule(
            contains="count the squares",
            reply="Counting.\n```python\nprint('count', len(squares))\n```",
        )
        nb_path = write_notebook(tmp_path / "nb.ipynb", ["%%codeflow\ncount the squares"])
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        async with connect(tmp_path, "--notebook", str(nb_path), env=server.env()) as session:
            result = await session.call_tool(
                "run_request",
                {"request": "list the first five squares", "max_attempts": 3},
                progress_callback=on_progress,
            )
            assert not result.is_error, texts(result)
            record = data(result)["record"]
            assert record["success"] is True
            assert [a["success"] for a in record["attempts"]] == [False, True]
            assert record["attempts"][0]["error"]["category"] == "runtime"
            assert "[0, 1, 4, 9, 16]" in texts(result)
            assert "```python\nsquares = [i * i" in texts(result)
            assert progress, "no progress notification"

            after = await call(session, "execute", code="print(len(squares))")
            assert "5" in texts(after)
            history = data(await call(session, "history"))
            assert [r["tool"] for r in history["runs"]] == ["run_request", "execute"]
            assert history["runs"][0]["request"] == "list the first five squares"

            # a request cell runs through the loop and its code is written back below it
            cell = await call(session, "run_cell", index=0)
            assert not cell.is_error, texts(cell)
            assert "count 5" in texts(cell)
            nb = nbformat.read(nb_path, as_version=4)
            nbformat.validate(nb)
            request_cell, code_cell = nb.cells
            assert request_cell.metadata["codeflow"]["success"] is True
            assert request_cell.metadata["codeflow"]["linked_cell_id"] == code_cell.id
            assert code_cell.source == "print('count', len(squares))"


async def test_streamable_http_on_loopback_needs_the_token(tmp_path: Path) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    token = "test-token-0123456789"
    log = tmp_path / "server.log"
    with log.open("w") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeflow_magic.cli", "mcp", "--no-cache", "--http", "0"],
            cwd=tmp_path,
            env=clean_env(tmp_path, {"CODEFLOW_MCP_TOKEN": token}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
    try:
        found = None
        for _ in range(600):  # the URL is on stderr once the server listens
            found = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", log.read_text())
            if found or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert found, log.read_text()
        url = found.group(1)
        assert token not in log.read_text()  # a token the user chose is not echoed
        async with httpx2.AsyncClient() as anonymous:
            refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert refused.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=120) as client:
            async with streamable_http_client(url, http_client=client) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    names = {t.name for t in (await session.list_tools()).tools}
                    assert names == BASE_TOOLS
                    await call(session, "execute", code="kept = 'over http'")
                    again = await call(session, "execute", code="print(kept)")
                    assert "over http" in texts(again)
    finally:
        proc.terminate()
        proc.wait(30)
