"""`%%codeflow` through a real IPython InteractiveShell and the loopback model server."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from modelserver import ModelServer, Reply

from codeflow_magic.magic import _LOADED, CodeflowMagics
from codeflow_magic.models import RECORD_MIME

PY = "```python\n{}\n```"


class RecordingPublisher(DisplayPublisher):
    """Keeps every display call so a test can see ids, updates and clears."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: Any = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kw: Any,
    ) -> None:
        self.calls.append({"data": data, "transient": transient or {}, "update": update})

    def clear_output(self, wait: bool = False) -> None:
        self.calls.append({"clear": True, "wait": wait})


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext codeflow_magic", store_history=False)
    yield sh
    sh.run_cell("%unload_ext codeflow_magic", store_history=False)


@pytest.fixture()
def magics(shell: InteractiveShell) -> CodeflowMagics:
    return _LOADED[id(shell)]


@pytest.fixture()
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: InteractiveShell
) -> Iterator[ModelServer]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CODEFLOW_CACHE", raising=False)
    monkeypatch.delenv("CODEFLOW_OVERRIDES", raising=False)
    with ModelServer() as srv:
        for key, value in srv.env().items():
            monkeypatch.setenv(key, value)
        yield srv
    shell.run_line_magic("config", "CodeflowImprovement.max_attempts = 3")


def run(shell: InteractiveShell, source: str) -> Any:
    result = shell.run_cell(source, store_history=False)
    return result


def test_generated_code_sees_and_leaves_variables_and_fix_replaces_failure(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule("NameError", PY.format("y = x * 2\nprint('y is', y)"))
    server.add_rule("double x", PY.format("y = x * 2\nprint('y is', yy)"))
    shell.rl_next_input = None
    run(shell, "x = 21")
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        result = run(shell, "%%codeflow\ndouble x into y and print it")
    finally:
        sys.stdout = saved
    assert result.error_in_exec is None
    record = magics.history[-1]
    assert record.success and len(record.attempts) == 2
    assert record.attempts[0].error is not None and record.attempts[0].error.ename == "NameError"
    assert shell.user_ns["y"] == 42
    # only the final attempt's output is shown; the failed attempt's traceback is not
    assert "y is 42" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    shown, _, history = out.getvalue().partition("✅ succeeded after 2 attempts")
    assert "name 'yy' is not defined" not in shown  # only in the history, below the status
    assert "attempt 1 (generate): runtime NameError" in history
    # write-back without a frontend: a set_next_input payload with the final code
    assert shell.rl_next_input == "y = x * 2\nprint('y is', y)"
    # the kernel state went into the prompt: the model was told about x
    assert "x: int = 21" in server.requests[0].all_text


def test_progress_is_one_display_updated_in_place(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    slow = Reply(chunks=["Plan:\n", "```python\n", "z = 5\n", "z * 2\n", "```\n"], chunk_delay=0.3)
    server.add_rule("ten", slow)
    recorder = RecordingPublisher(shell=shell)
    saved = shell.display_pub
    shell.display_pub = recorder
    try:
        result = run(shell, "%%codeflow --no-writeback\nmake ten")
    finally:
        shell.display_pub = saved
    assert result.error_in_exec is None
    progress = [
        c
        for c in recorder.calls
        if "jp-codeflow-progress" in str(c.get("data", {}).get("text/html"))
    ]
    ids = {c["transient"].get("display_id") for c in progress}
    assert len(ids) == 1 and None not in ids
    assert len(progress) >= 3 and all(c["update"] for c in progress[1:])
    assert len(progress) < 40  # throttled, not one per streamed piece
    clear_at = next(i for i, c in enumerate(recorder.calls) if c.get("clear"))
    after = recorder.calls[clear_at + 1 :]
    # final outputs as a plain cell shows them: the execute_result value, then the record,
    # which carries the one status line (no status output of its own: it would show twice)
    assert after[0]["data"]["text/plain"] == "10"
    assert len(after) == 2 and RECORD_MIME in after[1]["data"]
    assert after[1]["data"]["text/plain"].startswith("✅ succeeded after 1 attempt")
    html = after[1]["data"]["text/html"]
    assert (
        "succeeded after 1 attempt" in html and "<details" in html and "<details open" not in html
    )
    assert shell.user_ns["z"] == 5


def test_config_magic_changes_max_attempts(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule("always broken", PY.format("raise ValueError('nope')"))
    shell.rl_next_input = None
    run(shell, "%config CodeflowImprovement.max_attempts = 1")
    run(shell, "%%codeflow\nalways broken")
    record = magics.history[-1]
    assert not record.success and len(record.attempts) == 1
    assert len(server.requests) == 1
    assert shell.rl_next_input is None  # nothing is written back for a failed run


def test_quoted_check_and_dotted_override(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule("check is false", PY.format("w = 'a b'"))
    server.add_rule("make w", PY.format("w = 'ab'"))
    run(shell, "%%codeflow --check \"w == 'a b'\" improvement.max_attempts=2\nmake w")
    record = magics.history[-1]
    assert record.check == "w == 'a b'"
    assert record.success and len(record.attempts) == 2
    assert shell.user_ns["w"] == "a b"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--max-attempts=abc", "--max-attempts"),
        ("--backend mars", "--backend"),
        ("improvement.nonsense=1", "improvement.nonsense"),
        ("--timeout -3", "--timeout"),
    ],
)
def test_bad_arguments_give_one_line_and_no_request(
    shell: InteractiveShell, server: ModelServer, line: str, message: str
) -> None:
    result = run(shell, f"%%codeflow {line}\nprint hello")
    assert isinstance(result.error_in_exec, UsageError)
    text = str(result.error_in_exec)
    assert message in text and "\n" not in text
    assert server.requests == []


def test_empty_request_is_a_usage_error(shell: InteractiveShell, server: ModelServer) -> None:
    result = run(shell, "%%codeflow\n   \n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "empty" in str(result.error_in_exec)


def test_help_lists_the_options(magics: CodeflowMagics) -> None:
    doc = magics.codeflow_cell.__doc__ or ""
    for option in (
        "--max-attempts",
        "--replace",
        "--no-writeback",
        "--check",
        "section.name=value",
    ):
        assert option in doc


def test_line_magic_status_history_and_bad_subcommand(
    shell: InteractiveShell,
    magics: CodeflowMagics,
    server: ModelServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.add_rule("say hi", PY.format("print('hi')"))
    run(shell, "%%codeflow\nsay hi")
    capsys.readouterr()
    run(shell, "%codeflow status")
    status = capsys.readouterr().out
    assert "backend:   inline" in status
    assert str(Path.cwd() / ".codeflow" / "cache") in status
    run(shell, "%codeflow history 1")
    history = capsys.readouterr().out
    assert history.startswith(f"{len(magics.history)}. say hi") and "✓ succeeded" in history
    assert not any(mark in history for mark in "✅❌⏳")  # no emoji font needed
    result = run(shell, "%codeflow frobnicate")
    assert isinstance(result.error_in_exec, UsageError)


def test_timeout_interrupts_and_keeps_state(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule("TimeoutError", PY.format("spin_done = True"))
    server.add_rule(
        "spin", PY.format("spin_started = True\nimport time\nwhile True:\n    time.sleep(0.01)")
    )
    shell.user_ns.pop("spin_started", None)
    run(shell, "%%codeflow --timeout 1 --no-writeback execution.rollback=off\nspin")
    record = magics.history[-1]
    assert record.attempts[0].error is not None
    assert record.attempts[0].error.category == "environment"
    assert record.success and not record.attempts[0].rolled_back
    # without rollback the interrupted attempt's variables stay, as in a plain cell
    assert shell.user_ns["spin_started"] is True and shell.user_ns["spin_done"] is True
    # with rollback (the default) the interrupted attempt leaves nothing behind
    del shell.user_ns["spin_started"], shell.user_ns["spin_done"]
    run(shell, "%%codeflow --timeout 1 --no-writeback\nspin")
    record = magics.history[-1]
    assert record.success and record.attempts[0].rolled_back
    assert "spin_started" not in shell.user_ns and shell.user_ns["spin_done"] is True


def test_bash_request_runs_in_the_shell_cwd(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("one\ntwo\nthree\n")
    server.add_rule("count", "```bash\nwc -l < notes.txt\n```")
    shell.rl_next_input = None
    run(shell, "%%codeflow --language bash\ncount the lines of notes.txt")
    record = magics.history[-1]
    assert record.success
    text = "".join(o.get("text", "") for o in record.outputs if o.get("output_type") == "stream")
    assert text.strip() == "3"
    assert shell.rl_next_input == "%%bash\nwc -l < notes.txt"
    assert os.getcwd() == str(tmp_path)


def test_progress_shows_a_retry_and_its_reason() -> None:
    """During an outage the cell says the request is being sent again, and why."""
    from codeflow_magic.models import FlowEvent
    from codeflow_magic.progress import Progress

    progress = Progress("count to three", 3)
    progress.on_event(FlowEvent("generating", 1, {"phase": "generate"}))
    assert progress.phase == "asking the model"
    why = "the model API answered 529 <none>; sending the request again (retry 1)"
    progress.on_event(FlowEvent("generating", 1, {"phase": "generate", "retry": why}))
    assert progress.phase == f"asking the model again: {why}"
    progress.on_event(FlowEvent("generating", 2, {"phase": "fix"}))
    assert progress.phase == "asking the model for a fix"


def test_a_failed_attempt_leaves_the_notebook_state_as_it_was(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    run(shell, "import pandas as pd\ntxn_df = pd.DataFrame({'a': [1, 2, 3]})\ntxn_n = 3")
    server.add_rule("half-done", PY.format("txn_df['c'] = txn_df['a'] * 10\nprint(len(txn_df))"))
    server.add_rule(
        "Request:\ngrow txn_df",
        PY.format(
            "txn_df['b'] = 0\ntxn_df.drop(index=[0], inplace=True)\ntxn_n = 0\ntxn_tmp = 1\n"
            "raise ValueError('half-done')"
        ),
    )
    run(shell, "%%codeflow --no-writeback\ngrow txn_df")
    record = magics.history[-1]
    assert record.success and record.attempts[0].rolled_back
    df = shell.user_ns["txn_df"]
    assert list(df.columns) == ["a", "c"] and len(df) == 3
    assert shell.user_ns["txn_n"] == 3 and "txn_tmp" not in shell.user_ns
    # the fix prompt said what happened to the failed attempt's changes
    assert "changes to the variables were undone" in server.requests[-1].all_text

    # every attempt fails: the namespace is as before the request
    server.add_rule(
        "Request:\nbreak txn_df",
        PY.format("txn_df.drop(columns=['a'], inplace=True)\ntxn_n = -1\nraise KeyError('gone')"),
    )
    run(shell, "%%codeflow --no-writeback --max-attempts 2\nbreak txn_df")
    assert not magics.history[-1].success
    assert list(shell.user_ns["txn_df"].columns) == ["a", "c"] and shell.user_ns["txn_n"] == 3


def test_review_runs_nothing_until_approved_and_undo_restores(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule(
        "Request:\nset the marker", PY.format("print('MARK-R')\nrev_marker = rev_base + 1")
    )
    run(shell, "rev_base = 41")
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        run(shell, "%%codeflow --review --no-writeback\nset the marker")
    finally:
        sys.stdout = saved
    record = magics.history[-1]
    assert record.stop_reason == "awaiting_review" and not record.success
    assert "rev_marker" not in shell.user_ns
    assert "MARK-R" not in out.getvalue().splitlines()  # shown as code, never run
    assert "awaiting review" in out.getvalue() and "rev_marker = rev_base + 1" in out.getvalue()
    number = len(magics.history)
    calls = len(server.requests)

    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        run(shell, f"%codeflow approve {number}")
    finally:
        sys.stdout = saved
    approved = magics.history[-1]
    approved_number = len(magics.history)
    assert approved.success and approved.attempts[0].kind == "approved"
    assert shell.user_ns["rev_marker"] == 42 and "MARK-R" in out.getvalue().splitlines()
    assert len(server.requests) == calls  # approval asks the model nothing
    again = run(shell, f"%codeflow approve {number}")
    assert isinstance(again.error_in_exec, UsageError)  # approved once only

    run(shell, "rev_base = 0")
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        run(shell, f"%codeflow undo {approved_number}")
    finally:
        sys.stdout = saved
    assert "rev_marker" not in shell.user_ns  # the approved run's variable is gone
    assert shell.user_ns["rev_base"] == 0  # changed later by the user: left alone
    assert "removed rev_marker" in out.getvalue()
    twice = run(shell, f"%codeflow undo {approved_number}")
    assert isinstance(twice.error_in_exec, UsageError)  # undone once only


def test_risky_review_holds_only_code_with_findings(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    server.add_rule("Request:\nplain sum", PY.format("risky_sum = 1 + 2"))
    server.add_rule(
        "Request:\nfetch the page",
        PY.format("import urllib.request\nurllib.request.urlopen('http://example.com/data.csv')"),
    )
    run(shell, "%%codeflow --no-writeback execution.review=risky\nplain sum")
    assert magics.history[-1].success and shell.user_ns["risky_sum"] == 3
    run(
        shell,
        "%%codeflow --no-writeback execution.review=risky execution.scan=warn\nfetch the page",
    )
    held = magics.history[-1]
    assert held.stop_reason == "awaiting_review"
    assert held.attempts[0].findings


def test_steps_run_in_order_in_the_notebook_shell(
    shell: InteractiveShell, magics: CodeflowMagics, server: ModelServer
) -> None:
    plan = (
        "## Make\n```python\nstep_values = [1, 2]\nprint('made')\n```\n"
        "## Double\n```python\nstep_double = [v * 2 for v in step_valuez]\n```\n"
        "## Show\n```python\nprint('double', step_double)\n```\n"
    )
    server.add_rule(
        "name 'step_valuez' is not defined",
        PY.format("step_double = [v * 2 for v in step_values]"),
    )
    server.add_rule("Request:\ndouble two numbers", plan)
    shell.rl_next_input = None
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        result = run(shell, "%%codeflow --steps\ndouble two numbers")
    finally:
        sys.stdout = saved
    assert result.error_in_exec is None
    record = magics.plans[-1]
    assert record.success and [s.state for s in record.steps] == ["ok", "ok", "ok"]
    assert [len(s.record.attempts) for s in record.steps if s.record] == [1, 2, 1]
    assert record.steps[1].record and record.steps[1].record.attempts[0].kind == "plan"
    assert shell.user_ns["step_double"] == [2, 4]
    lines = out.getvalue().splitlines()
    assert lines.index("made") < lines.index("double [2, 4]")
    assert "plan of 3 steps done" in out.getvalue()
    # without a frontend the steps' code comes back as the next input, in order
    assert shell.rl_next_input is not None
    assert shell.rl_next_input.index("step_values = [1, 2]") < shell.rl_next_input.index(
        "print('double', step_double)"
    )
    bad = run(shell, "%%codeflow --steps --max-steps 99\ndouble two numbers")
    assert isinstance(bad.error_in_exec, UsageError)
