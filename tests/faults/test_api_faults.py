# IPython's shell and display publisher carry no type hints.
# mypy: disable-error-code="no-untyped-call"
"""Model API faults end to end: the real `codeflow` CLI, the magic in a real IPython shell and
the Python API, against the loopback model server injecting each fault.

Exit statuses: 0 success, 1 the code never worked, 2 usage, 3 the model could not be asked
(no or rejected key, bad request, replay miss), 4 backend, 5 the model API stayed unavailable
after retries. A run the model API cuts short keeps the attempts made before it.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from modelserver import ModelServer, Reply

from codeflow_magic.api import CodeFlow
from codeflow_magic.config import load_settings
from codeflow_magic.errors import AuthenticationError, ProviderUnavailable
from codeflow_magic.magic import _LOADED, CodeflowMagics
from codeflow_magic.models import RECORD_MIME
from codeflow_magic.text import strip_ansi

CODEFLOW = [sys.executable, "-m", "codeflow_magic.cli"]
KEY_ADVICE = (
    "export ANTHROPIC_API_KEY=",
    "CODEFLOW_CACHE=replay",
    "--cache-mode replay",
    "--model openai:<model>",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


def py(code: str, note: str = "") -> str:
    return f"Here is the code.\n```python\n{code}\n```\n{note}"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def clean_env(extra: dict[str, str], home: Path) -> dict[str, str]:
    """The outer environment without any model credential, base URL or codeflow setting."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_"))
    }
    env["HOME"] = str(home)  # no credentials profile of the machine's user
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env.update(extra)
    return env


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


class Runner(Protocol):
    def __call__(
        self, *args: str, env: dict[str, str] | None = None, use_server: bool = True
    ) -> Result: ...


@pytest.fixture
def codeflow(tmp_path: Path, server: ModelServer) -> Runner:
    """Run `codeflow ARGS...` as a real process in tmp_path, against the server by default."""

    def run(*args: str, env: dict[str, str] | None = None, use_server: bool = True) -> Result:
        base = server.env() if use_server else {}
        proc = subprocess.run(
            [*CODEFLOW, *args],
            cwd=tmp_path,
            env=clean_env({**base, **(env or {})}, tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def no_traceback(res: Result) -> None:
    """codeflow's own messages carry no traceback (the generated code's may, in the record)."""
    assert "Traceback" not in res.stderr, res.stderr


# --- the attempts so far are kept and shown --------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", ["json", "markdown", "plain"])
def test_fix_request_meets_a_persistent_529_keeps_the_first_attempt(
    codeflow: Runner, server: ModelServer, fmt: str
) -> None:
    server.add_rule(contains="NameError", reply=Reply(status=529, text="Overloaded"))
    server.add_rule(contains="print the answer", reply=py("print(answer)"))
    res = codeflow("ask", "print the answer", "--format", fmt, "--no-cache")
    assert res.code == 5, res.stderr
    no_traceback(res)
    cause = f"the model API at {server.url} is unavailable: 529 overloaded_error: Overloaded"
    assert f"codeflow: {cause} (gave up after 4 tries)" in res.stderr
    # the first request, then the fix request with the SDK's three retries
    assert [r.fault for r in server.requests] == [None] + ["status 529"] * 4
    assert [r.retry_count for r in server.requests[1:]] == [0, 1, 2, 3]
    if fmt == "json":
        record = res.json()
        assert record["success"] is False
        assert record["stop_reason"] == "provider_unavailable"
        assert record["error"] == f"{cause} (gave up after 4 tries)"
        (attempt,) = record["attempts"]
        assert attempt["code"].strip() == "print(answer)"
        assert attempt["error"]["ename"] == "NameError"
        assert record["final_code"] == attempt["code"]
    elif fmt == "markdown":
        assert "**❌ Execution Failed**" in res.stdout
        assert "**Error:** NameError: name 'answer' is not defined" in res.stdout
        assert "**Stopped because:** provider unavailable" in res.stdout
        assert f"**Cause:** {cause}" in res.stdout
        assert "```python\nprint(answer)\n```" in res.stdout
    else:
        assert res.stdout.startswith("FAILED after 1 attempt(s)")
        assert f"stopped: provider unavailable: {cause}" in res.stdout
        assert "error: runtime: NameError" in res.stdout


@pytest.mark.kernel
def test_fix_request_refused_with_400_is_a_provider_error_at_once(
    codeflow: Runner, server: ModelServer
) -> None:
    server.add_rule(contains="NameError", reply=Reply(status=400, text="prompt is too long"))
    server.add_rule(contains="print the answer", reply=py("print(answer)"))
    res = codeflow("ask", "print the answer", "--format", "json", "--no-cache")
    assert res.code == 3, res.stderr
    no_traceback(res)
    record = res.json()
    assert record["stop_reason"] == "provider_error" and len(record["attempts"]) == 1
    assert record["error"] == (
        f"the model server at {server.url} answered 400 invalid_request_error: prompt is too long"
    )
    assert f"codeflow: {record['error']}" in res.stderr
    assert len(server.requests) == 2  # no retry of a request the API refused


@pytest.mark.kernel
def test_a_first_request_that_never_gets_through_exits_5_with_an_empty_record(
    codeflow: Runner, server: ModelServer
) -> None:
    server.add_rule(contains="", reply=Reply(fault="reset"))
    text = codeflow("ask", "print the answer", "--no-cache")
    assert text.code == 5 and text.stdout == ""  # nothing ran: no record to show in words
    assert (
        f"codeflow: cannot reach the model server at {server.url}: connection reset "
        "(gave up after 4 tries)" in text.stderr
    )
    no_traceback(text)
    data = codeflow("ask", "print the answer", "--no-cache", "--format", "json")
    assert data.code == 5
    record = data.json()  # a JSON reader always gets one record per run
    assert record["attempts"] == [] and record["stop_reason"] == "provider_unavailable"
    assert "connection reset" in record["error"]
    assert len(server.requests) == 8


@pytest.mark.kernel
def test_a_timeout_that_persists_names_the_wait(codeflow: Runner, server: ModelServer) -> None:
    server.add_rule(contains="", reply=Reply(fault="hang"))
    res = codeflow(
        "ask", "print the answer", "--no-cache", "--format", "json", "generation.timeout=1"
    )
    assert res.code == 5, res.stderr
    assert res.json()["error"] == (
        f"cannot reach the model server at {server.url}: no answer within 1 s "
        "(gave up after 4 tries)"
    )
    assert len(server.requests) == 4


@pytest.mark.kernel
def test_an_improvement_the_api_refuses_leaves_the_working_code_standing(
    codeflow: Runner, server: ModelServer
) -> None:
    server.enqueue(py("print(sum(range(10)))"))
    server.add_rule(contains="", reply=Reply(status=529))  # the improvement request
    res = codeflow("ask", "sum to nine", "--focus", "optimize", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    assert record["success"] is True and record["stop_reason"] == "success"
    assert record["error"] is None and len(record["attempts"]) == 1
    assert record["outputs"][0]["text"] == "45\n"
    assert [r.fault for r in server.requests] == [None] + ["status 529"] * 4


# --- transient faults: retried, then invisible ------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("fault", ["429", "reset", "hang", "500"])
def test_a_transient_fault_is_retried_by_the_sdk(
    codeflow: Runner, server: ModelServer, fault: str
) -> None:
    first = {
        "429": Reply(status=429, retry_after=1),
        "reset": Reply(fault="reset"),
        "hang": Reply(fault="hang"),
        "500": Reply(status=500),
    }[fault]
    server.enqueue(first, py("print(6 * 7)"))
    res = codeflow(
        "ask", "six times seven", "--format", "json", "--no-cache", "generation.timeout=1"
    )
    assert res.code == 0, res.stderr
    record = res.json()
    assert len(record["attempts"]) == 1 and record["outputs"][0]["text"] == "42\n"
    assert [r.retry_count for r in server.requests] == [0, 1]
    # the progress on stderr says that the request went out again, and why
    why = {
        "429": "answered 429 Too Many Requests, asked to wait 1 s",
        "500": "answered 500 Internal Server Error",
        "reset": "got no answer",
        "hang": "got no answer",
    }[fault]
    (retry_line,) = [line for line in res.stderr.splitlines() if "again" in line]
    assert "generating again" in retry_line and why in retry_line, res.stderr
    assert "(retry 1)" in retry_line
    if fault == "429":  # the SDK waited what the API asked for, as the server saw it
        before, retry = server.requests
        assert before.answered_at is not None
        assert retry.received_at - before.answered_at >= 1.0


@pytest.mark.kernel
@pytest.mark.parametrize("fault", ["cut", "cut_start"])
def test_a_broken_stream_is_asked_for_once_more(
    codeflow: Runner, server: ModelServer, fault: str
) -> None:
    # the broken answer already holds a complete code block, which may start early: it must
    # not be what the record reports
    broken = py("print('from the broken answer')", "It prints a line. " * 12)
    server.enqueue(Reply(text=broken, fault=fault), py("print('from the whole answer')"))
    res = codeflow("ask", "print a line", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    assert len(record["attempts"]) == 1
    assert record["final_code"].strip() == "print('from the whole answer')"
    assert [o.get("text") for o in record["outputs"]] == ["from the whole answer\n"]
    assert [r.fault for r in server.requests] == [fault, None]
    assert server.requests[0].body == server.requests[1].body  # the same request again


@pytest.mark.kernel
def test_a_stream_broken_twice_is_unavailable_naming_the_characters(
    codeflow: Runner, server: ModelServer
) -> None:
    server.add_rule(contains="", reply=Reply(chunks=["```python\n", "print(1", ")\n"], fault="cut"))
    res = codeflow("ask", "print one", "--format", "json", "--no-cache")
    assert res.code == 5, res.stderr
    no_traceback(res)
    record = res.json()
    assert record["attempts"] == [] and record["stop_reason"] == "provider_unavailable"
    assert record["error"] == (
        f"the answer from the model server at {server.url} ended mid-message after 10 "
        "characters: the server closed the connection; it had broken off once before, after "
        "10 characters, and was asked for again"
    )
    assert record["error"] in res.stderr
    assert len(server.requests) == 2


# --- answers without code --------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("fault", "root_cause"),
    [("empty", "the reply was empty"), ("prose", "the reply was prose only: 'I would add")],
)
def test_an_answer_without_code_is_an_attempt_and_the_model_is_asked_again(
    codeflow: Runner, server: ModelServer, fault: str, root_cause: str
) -> None:
    server.enqueue(Reply(fault=fault), py("print(1 + 2)"))
    res = codeflow("ask", "add one and two", "--format", "json")  # the cache is on (rw)
    assert res.code == 0, res.stderr
    record = res.json()
    first, second = record["attempts"]
    assert first["error"]["ename"] == "NoCodeBlock" and first["code"] == ""
    assert first["error"]["root_cause"].startswith(root_cause)
    assert second["kind"] == "fix" and second["success"] is True
    assert record["outputs"][0]["text"] == "3\n"
    assert [r.fault for r in server.requests] == [fault, None]
    # the fix request told the model what was wrong with its answer
    assert "NoCodeBlock" in server.requests[1].all_text
    # an empty answer is not recorded (it would replay the fault); words without code are
    assert (first["cache_key"] is None) == (fault == "empty")


# --- a missing API key -----------------------------------------------------------------------


def test_missing_key_says_how_to_go_on_and_sends_nothing(
    codeflow: Runner, server: ModelServer, tmp_path: Path
) -> None:
    env = {"ANTHROPIC_BASE_URL": server.url}  # reachable, so a request would be seen
    res = codeflow("ask", "print hello", env=env, use_server=False)  # cache mode rw, empty
    assert res.code == 3 and res.stdout == ""
    no_traceback(res)
    for advice in KEY_ADVICE:
        assert advice in res.stderr, advice
    data = codeflow("ask", "print hello", "--format", "json", env=env, use_server=False)
    assert data.code == 3
    record = data.json()
    assert record["stop_reason"] == "provider_error" and record["attempts"] == []
    assert "export ANTHROPIC_API_KEY=" in record["error"]
    assert server.requests == []
    assert list((tmp_path / ".codeflow" / "cache").rglob("*.json")) == []


@pytest.mark.kernel
def test_the_other_provider_the_message_names_works_without_an_anthropic_key(
    codeflow: Runner, server: ModelServer
) -> None:
    server.add_rule(contains="print hello", reply=py("print('hello')"))
    res = codeflow(
        "ask",
        "print hello",
        "--model",
        "openai:local-model",
        "--format",
        "json",
        env={"OPENAI_BASE_URL": server.openai_url},
        use_server=False,
    )
    assert res.code == 0, res.stderr
    assert res.json()["outputs"][0]["text"] == "hello\n"
    (req,) = server.requests
    assert req.api == "openai" and req.body["model"] == "local-model"


# --- batch and the Python API ----------------------------------------------------------------


@pytest.mark.kernel
def test_batch_gives_the_failed_request_its_record_and_the_others_run(
    codeflow: Runner, server: ModelServer, tmp_path: Path
) -> None:
    server.add_rule(contains="[b]", reply=Reply(status=529))
    server.add_rule(contains="[a]", reply=py("print('a done')"))
    server.add_rule(contains="[c]", reply=py("print('c done')"))
    (tmp_path / "requests.txt").write_text("[a] print a\n[b] print b\n[c] print c\n")
    res = codeflow("batch", "requests.txt", "--parallel", "2", "--quiet", "--no-cache")
    assert res.code == 5, res.stderr
    no_traceback(res)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    a, b, c = lines
    assert a["success"] and a["outputs"][0]["text"] == "a done\n" and a["error"] is None
    assert c["success"] and c["outputs"][0]["text"] == "c done\n"
    assert b["success"] is False and b["stop_reason"] == "provider_unavailable"
    assert b["request"] == "[b] print b" and b["attempts"] == []
    assert "529 overloaded_error" in b["error"] and "gave up after 4 tries" in b["error"]


@pytest.mark.kernel
def test_python_api_raises_with_the_partial_record_attached(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in clean_env(server.env(), tmp_path).items():
        monkeypatch.setenv(key, value)
    server.add_rule(contains="NameError", reply=Reply(status=503))
    server.add_rule(contains="print the answer", reply=py("print(answer)"))
    settings = load_settings(work_dir=tmp_path)
    with CodeFlow(settings, work_dir=tmp_path, backend="kernel", cache_mode="off") as cf:
        with pytest.raises(ProviderUnavailable) as info:
            cf.run("print the answer")
    record = info.value.record
    assert record is not None and not record.success
    assert record.stop_reason == "provider_unavailable" and record.error == str(info.value)
    assert len(record.attempts) == 1 and record.attempts[0].error is not None
    assert record.attempts[0].error.ename == "NameError"
    assert "503 api_error" in str(info.value) and info.value.exit_status == 5


# --- a seeded storm of random faults -----------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.slow
def test_random_faults_never_lose_a_request_or_leave_a_traceback(
    codeflow: Runner, server: ModelServer, tmp_path: Path
) -> None:
    server.set_faults(
        0.35, seed=14, kinds=["reset", "cut", "cut_start", "empty", "prose", "429", "529", "500"]
    )
    n = 8
    for i in range(n):
        server.add_rule(contains=f"[r{i}]", reply=py(f"print('request {i} ok')"))
    (tmp_path / "requests.txt").write_text("".join(f"[r{i}] print it\n" for i in range(n)))
    res = codeflow(
        "batch", "requests.txt", "--parallel", "2", "--quiet", "--no-cache", "--max-attempts", "3"
    )
    no_traceback(res)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(n))
    causes = re.compile(
        r"unavailable: (429|529|500) |connection reset|ended mid-message after \d+ characters"
    )
    for i, line in enumerate(lines):
        if line["success"]:
            assert line["outputs"][-1]["text"] == f"request {i} ok\n"
            assert line["error"] is None
        elif line["error"] is not None:
            assert line["stop_reason"] == "provider_unavailable"
            assert causes.search(line["error"]), line["error"]
        else:  # three answers without code in a row
            assert all(a["error"]["ename"] == "NoCodeBlock" for a in line["attempts"])
    expected = (
        5
        if any(line["error"] for line in lines)
        else 1
        if not all(line["success"] for line in lines)
        else 0
    )
    assert res.code == expected, res.stderr
    # seed 14 faults five of the first eight requests (empty, prose, cut, 529, 429), and
    # there are at least eight: the storm really hit, whatever order the requests came in
    faults = [r.fault for r in server.requests if r.fault]
    assert len(faults) >= 5


# --- the magic -------------------------------------------------------------------------------


class RecordingPublisher(DisplayPublisher):
    """Keeps every display call so a test can see what the cell showed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def publish(  # type: ignore[override]
        self, data: dict[str, Any], metadata: Any = None, source: Any = None, **kw: Any
    ) -> None:
        self.calls.append(data)

    def clear_output(self, wait: bool = False) -> None:
        pass


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext codeflow_magic", store_history=False)
    yield sh
    sh.run_cell("%unload_ext codeflow_magic", store_history=False)


@pytest.fixture
def cell_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ModelServer
) -> Iterator[ModelServer]:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "OPENAI_", "CODEFLOW_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    yield server


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, str, list[dict[str, Any]]]:
    """Run a cell; returns its result, what it wrote to stderr, and what it displayed."""
    recorder = RecordingPublisher(shell=shell)
    saved_pub, saved_err = shell.display_pub, sys.stderr
    err = io.StringIO()
    shell.display_pub, sys.stderr = recorder, err
    try:
        result = shell.run_cell(source, store_history=False)
    finally:
        shell.display_pub, sys.stderr = saved_pub, saved_err
    return result, err.getvalue(), recorder.calls


def test_magic_without_a_key_shows_the_advice_and_no_traceback(
    shell: InteractiveShell,
    cell_env: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", cell_env.url)
    result, stderr, shown = run_cell(shell, "%%codeflow\nprint hello")
    # The CLI's class (exit status 3), not a UsageError: the user typed nothing wrong.
    assert isinstance(result.error_in_exec, AuthenticationError)
    for advice in KEY_ADVICE:
        assert advice in str(result.error_in_exec), advice
    # IPython shows an exception where it shows tracebacks (stdout; an error message in a
    # kernel): here one line under the exception's own name.
    shown_text = capsys.readouterr().out
    assert shown_text.startswith("AuthenticationError: no API key"), shown_text
    assert "Traceback" not in shown_text + stderr
    # Nothing ran, but the request is recorded as failed with its cause (the sidebar and the
    # notebook metadata show it like any other outcome).
    (record,) = [data[RECORD_MIME] for data in shown if RECORD_MIME in data]
    assert record["attempts"] == [] and record["stop_reason"] == "provider_error"
    assert "export ANTHROPIC_API_KEY=" in record["error"]
    assert cell_env.requests == []


def test_magic_shows_the_attempts_before_the_model_api_failed(
    shell: InteractiveShell,
    magics_loaded: CodeflowMagics,
    cell_env: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in cell_env.env().items():
        monkeypatch.setenv(key, value)
    cell_env.add_rule(contains="NameError", reply=Reply(status=529))
    cell_env.add_rule(contains="show the total", reply=py("print(total_amount)"))
    result, stderr, shown = run_cell(shell, "%%codeflow --no-cache\nshow the total")
    assert isinstance(result.error_in_exec, ProviderUnavailable)  # as the CLI says: status 5
    message = str(result.error_in_exec)
    assert "529 overloaded_error" in message and "gave up after 4 tries" in message
    # the cell shows the failed attempt's own error as a plain cell would, then the cause in
    # one line: no traceback of codeflow itself
    assert "NameError: name 'total_amount' is not defined" in strip_ansi(stderr)
    cause = capsys.readouterr().out
    assert cause.endswith(f"ProviderUnavailable: {message}\n"), cause
    assert "codeflow_magic" not in stderr + cause
    (record,) = [data[RECORD_MIME] for data in shown if RECORD_MIME in data]
    assert record["stop_reason"] == "provider_unavailable" and record["error"] == message
    assert [a["error"]["ename"] for a in record["attempts"]] == ["NameError"]
    assert "attempt 1 (generate): runtime NameError" in next(
        data["text/plain"] for data in shown if RECORD_MIME in data
    )
    assert magics_loaded.history[-1].stop_reason == "provider_unavailable"


@pytest.fixture
def magics_loaded(shell: InteractiveShell) -> CodeflowMagics:
    return _LOADED[id(shell)]
