"""The model SDK is imported off the request path: on one thread, started early, which every
user waits for instead of importing the SDK alongside it.

Whether `anthropic` is imported yet can only be checked in a fresh interpreter, so the tests of
the import itself run a small script in a subprocess against the loopback model server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from modelserver import ModelServer

import codeflow_magic.providers as providers
from codeflow_magic.config import load_settings
from codeflow_magic.errors import UsageError
from codeflow_magic.providers import dispatch, sdk
from codeflow_magic.providers.anthropic import AnthropicProvider, warm_up
from codeflow_magic.providers.base import LLMRequest, Message

ROOT = Path(__file__).resolve().parents[2]


def _script(server: ModelServer, tmp_path: Path, *code: str) -> dict[str, Any]:
    """Run the `code` pieces in a fresh interpreter with the server's key and URL; its last printed line
    is JSON. A hang (an import-lock deadlock) ends the script with its threads' stacks."""
    prelude = "import faulthandler\nfaulthandler.dump_traceback_later(90, exit=True)\n"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    env.update(server.env())
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", prelude + "\n".join(textwrap.dedent(c) for c in code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


REQUEST = """
    from codeflow_magic.providers.anthropic import AnthropicProvider
    from codeflow_magic.providers.base import LLMRequest, Message

    async def ask(text):
        provider = AnthropicProvider("claude-test")
        try:
            request = LLMRequest(system="s", messages=(Message("user", text),), max_tokens=64)
            return (await provider.complete(request)).text
        finally:
            await provider.aclose()
"""


def test_the_warm_up_thread_imports_the_sdk_and_a_request_after_it_works(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.add_rule(contains="after the warm-up", reply="answered after the warm-up")
    code = (
        """
        import asyncio, json, sys, threading
        import codeflow_magic.providers as providers
        before = "anthropic" in sys.modules
        future = providers.preload_sdk("anthropic")
        names = [t.name for t in threading.enumerate()]
        sdk = future.result(timeout=120)
        spare = "anthropic" in providers.dispatch._SPARES
        """,
        REQUEST,
        """
        text = asyncio.run(ask("a request after the warm-up"))
        print(json.dumps({
            "before": before, "names": names, "module": sdk.__name__,
            "same": providers.load_sdk("anthropic") is sdk, "spare": spare, "text": text,
        }))
        """,
    )
    out = _script(model_server, tmp_path, *code)
    assert out["before"] is False  # nothing of codeflow's imports the SDK by itself
    assert "codeflow-import-anthropic" in out["names"]
    assert out["module"] == "anthropic" and out["same"] is True
    assert out["spare"] is True  # the first client's HTTP client was made ahead
    assert out["text"] == "answered after the warm-up"
    # The warm-up's request went to a transport in memory, not to the network.
    assert len(model_server.requests) == 1


def test_a_request_started_while_the_import_runs_waits_for_it_without_deadlock(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.add_rule(
        contains="during the import", reply="answered during the import", times=None
    )
    code = (
        """
        import asyncio, json, sys, threading
        import codeflow_magic.providers as providers
        providers.preload_sdk("anthropic")
        loading = providers.sdk_loading("anthropic")
        """,
        REQUEST,
        """
        async def main():
            # Two requests and a direct import of an SDK submodule on another thread, all
            # while the import thread is still at work.
            side = asyncio.to_thread(lambda: providers.load_sdk("anthropic").types.Message)
            return await asyncio.gather(
                ask("first request during the import"),
                ask("second request during the import"),
                side,
            )
        first, second, message = asyncio.run(main())
        print(json.dumps({"loading": loading, "texts": [first, second],
                          "message": message.__name__}))
        """,
    )
    out = _script(model_server, tmp_path, *code)
    assert out["loading"] is True  # the requests really started before the import ended
    assert out["texts"] == ["answered during the import"] * 2
    assert out["message"] == "Message"


def test_a_request_given_up_during_the_import_leaves_it_to_the_next_one(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.add_rule(contains="after the interrupt", reply="answered after the interrupt")
    code = (
        """
        import asyncio, json
        import codeflow_magic.providers as providers
        """,
        REQUEST,
        """
        async def main():
            waiting = asyncio.ensure_future(providers.aload_sdk("anthropic"))
            await asyncio.sleep(0.05)
            loading = providers.sdk_loading("anthropic")
            waiting.cancel()  # as a cell interrupted while the SDK is still loading
            try:
                await waiting
            except asyncio.CancelledError:
                pass
            return loading, await ask("the request after the interrupt")
        loading, text = asyncio.run(main())
        print(json.dumps({"loading": loading, "text": text}))
        """,
    )
    out = _script(model_server, tmp_path, *code)
    assert out == {"loading": True, "text": "answered after the interrupt"}


def test_loading_the_extension_starts_the_sdk_import_unless_only_recordings_are_used(
    model_server: ModelServer, tmp_path: Path
) -> None:
    code = (
        """
        import json, os, sys
        from IPython.core.interactiveshell import InteractiveShell
        from codeflow_magic.providers import sdk
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "codeflow_magic")
        started = sorted(sdk._SDKS)
        loaded = [m for m in ("codeflow_magic.api", "codeflow_magic.flow") if m in sys.modules]
        if started:
            sdk._SDKS["anthropic"].result(timeout=120)
        print(json.dumps({"started": started, "loaded": loaded}))
        """,
    )
    out = _script(model_server, tmp_path, *code)
    assert out["started"] == ["anthropic"]
    assert out["loaded"] == ["codeflow_magic.api", "codeflow_magic.flow"]

    (tmp_path / "codeflow.yaml").write_text("cache:\n  mode: replay\n")
    out = _script(model_server, tmp_path, *code)
    assert out["started"] == []  # replay asks no model: no SDK to load


# -- in this process (the SDK is already imported here) -------------------------------------------


def test_providers_of_settings_name_the_sdks_a_run_may_need(tmp_path: Path) -> None:
    settings = load_settings(work_dir=tmp_path)
    assert providers.providers_of(settings) == ["anthropic"]
    assert providers.providers_of(settings, cache_mode="replay") == []
    mixed = load_settings(
        ["generation.model=openai:local", "improvement.model=anthropic:claude-x"],
        work_dir=tmp_path,
    )
    assert providers.providers_of(mixed) == ["openai", "anthropic"]


def test_a_failed_sdk_import_is_reported_where_needed_and_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from codeflow_magic.providers.openai_compat import MISSING_PACKAGE, _import_openai

    monkeypatch.delitem(sdk._SDKS, "openai", raising=False)
    monkeypatch.setitem(providers.SDK_MODULES, "openai", "codeflow_no_such_sdk")
    with pytest.raises(UsageError, match="needs the openai package"):
        _import_openai()
    assert MISSING_PACKAGE
    monkeypatch.setitem(providers.SDK_MODULES, "openai", "openai")
    assert _import_openai().__name__ == "openai"  # once installed, the next try imports it


def test_the_warm_up_leaves_one_http_client_for_the_first_sdk_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anthropic

    monkeypatch.setattr(dispatch, "_SPARES", {})
    warm_up(anthropic)
    spare = dispatch._SPARES["anthropic"][1]
    assert dispatch.http_client_kwargs(anthropic)["http_client"] is spare
    again = dispatch.http_client_kwargs(anthropic)["http_client"]
    assert again is not spare  # taken once
    assert again.event_hooks["request"] == [dispatch.on_request]

    warm_up(anthropic)
    spare = dispatch._SPARES["anthropic"][1]
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # the spare was made without it
    assert dispatch.http_client_kwargs(anthropic)["http_client"] is not spare
    assert "anthropic" not in dispatch._SPARES


async def test_a_warmed_up_provider_still_asks_the_real_server(model_server: ModelServer) -> None:
    import asyncio

    import anthropic

    await asyncio.to_thread(warm_up, anthropic)  # as on the import thread: a loop of its own
    model_server.add_rule(contains="real question", reply="real answer")
    provider = AnthropicProvider("claude-test", api_key="k", base_url=model_server.url)
    try:
        response = await provider.complete(
            LLMRequest(system="s", messages=(Message("user", "a real question"),), max_tokens=64)
        )
    finally:
        await provider.aclose()
    assert response.text == "real answer"
    assert [r.last_user for r in model_server.requests] == ["a real question"]


@pytest.mark.parametrize("how", ["environment", "option", "settings"])
def test_a_replay_only_flow_never_imports_the_sdk(
    model_server: ModelServer, tmp_path: Path, how: str
) -> None:
    """Replayed answers need no model: seconds of CPU spent importing the SDK beside the
    notebook's cells would only slow the replay down, whichever way replay was chosen."""
    code = f"""
        import json, os, sys, threading, time
        how = {how!r}
        if how == "environment":
            os.environ["CODEFLOW_CACHE"] = "replay"
        from codeflow_magic.api import CodeFlow
        from codeflow_magic.config import load_settings
        settings = load_settings(["cache.mode=replay"] if how == "settings" else [])
        flow = CodeFlow(settings, work_dir=".", cache_mode="replay" if how == "option" else None)
        time.sleep(0.3)
        names = [t.name for t in threading.enumerate()]
        flow.close()
        print(json.dumps({{"names": names, "sdk": "anthropic" in sys.modules}}))
    """
    out = _script(model_server, tmp_path, code)
    assert out["sdk"] is False
    assert not [n for n in out["names"] if n.startswith("codeflow-import")], out["names"]
    # A flow that may ask the model starts the import at once.
    live = _script(
        model_server,
        tmp_path,
        """
        import json, threading
        from codeflow_magic.api import CodeFlow
        from codeflow_magic.config import load_settings
        flow = CodeFlow(load_settings([]), work_dir=".")
        names = [t.name for t in threading.enumerate()]
        flow.close()
        print(json.dumps({"names": names}))
        """,
    )
    assert "codeflow-import-anthropic" in live["names"]


def test_an_exiting_process_waits_for_codeflow_import_threads(tmp_path: Path) -> None:
    """A daemon thread still importing when the interpreter finalizes dies holding the import
    lock, and the exit then hangs for good; codeflow's import threads are waited for instead."""
    marker = tmp_path / "imported"
    code = textwrap.dedent(
        f"""
        import time
        from codeflow_magic.providers.sdk import import_in_background

        def slow_import():
            time.sleep(0.5)
            import codeflow_magic.security  # a real import, still running at exit
            open({str(marker)!r}, "w").write("done")

        import_in_background(slow_import, name="codeflow-test-import")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "done"  # the exit waited for the thread to finish
