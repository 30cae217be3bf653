"""`codeflow ask` end to end: real CLI process, real SDK, real kernel, loopback model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelserver import ModelServer, Reply

pytestmark = pytest.mark.kernel


def py(code: str, note: str = "") -> str:
    return f"Here is the code.\n```python\n{code}\n```\n{note}"


def fix(code: str) -> str:
    return py(code, "Root cause: the first version was wrong.\nFix: corrected it.")


@pytest.mark.parametrize(
    ("request_text", "first", "trigger", "second", "category", "extra"),
    [
        (
            "print the answer",
            "print(answer)",
            "NameError",
            "answer = 42\nprint(answer)",
            "runtime",
            [],
        ),
        (
            "dump a dict as json",
            "import jsonn\nprint(jsonn.dumps({'a': 1}))",
            "ModuleNotFoundError",
            "import json\nprint(json.dumps({'a': 1}))",
            "import",
            [],
        ),
        (
            "count to three",
            "for i in range(3)\n    print(i)",
            "SyntaxError",
            "for i in range(3):\n    print(i)",
            "syntax",
            [],
        ),
        (
            "set result to ten",
            "result = 9",
            "CheckFailed",
            "result = 10",
            "logical",
            ["--check", "result == 10"],
        ),
    ],
)
def test_fixes_a_broken_first_attempt_of_each_class(
    codeflow,
    server: ModelServer,
    request_text: str,
    first: str,
    trigger: str,
    second: str,
    category: str,
    extra: list[str],
) -> None:
    server.add_rule(contains=trigger, reply=fix(second))
    server.add_rule(contains=request_text, reply=py(first))
    res = codeflow("ask", request_text, "--format", "json", "--no-cache", *extra)
    assert res.code == 0, res.stderr
    record = res.json()
    assert record["success"] is True
    assert [a["success"] for a in record["attempts"]] == [False, True]
    err = record["attempts"][0]["error"]
    assert err["category"] == category
    assert err["ename"] and err["root_cause"]
    assert record["final_code"].strip() == second.strip()
    assert "corrected it" in record["attempts"][1]["explanation"]
    assert record["metrics"]["llm_calls"] == 2


def test_endless_loop_is_interrupted_as_environment_error(codeflow, server: ModelServer) -> None:
    server.add_rule(contains="TimeoutError", reply=fix("print('bounded')"))
    server.add_rule(contains="spin", reply=py("x = 1\nwhile True:\n    pass"))
    res = codeflow("ask", "spin forever", "--timeout", "3", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    first = record["attempts"][0]
    assert first["error"]["category"] == "environment"
    assert first["error"]["ename"] == "TimeoutError"
    assert first["execution_s"] < 30  # interrupted, not left running
    assert record["outputs"][0]["text"] == "bounded\n"


def test_mistyped_shell_command_is_fixed(codeflow, server: ModelServer) -> None:
    server.add_rule(
        contains="command not found", reply="```bash\nls -1 | sort\n```\nFix: ls, not lss"
    )
    server.add_rule(contains="list files", reply="```bash\nlss -1\n```")
    res = codeflow("ask", "list files here", "--language", "bash", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    assert record["language"] == "bash"
    err = record["attempts"][0]["error"]
    assert err["category"] == "environment" and "lss" in err["evalue"]
    assert record["attempts"][1]["success"]


def test_gives_up_within_max_attempts_with_status_1(codeflow, server: ModelServer) -> None:
    server.enqueue(py("1/0"), py("2/0"), py("3/0"), py("print('never asked')"))
    res = codeflow("ask", "divide", "--max-attempts", "3", "--format", "json", "--no-cache")
    assert res.code == 1
    record = res.json()
    assert record["success"] is False and record["stop_reason"] == "max_attempts"
    assert len(record["attempts"]) == 3
    assert len(server.requests) == 3


def test_matplotlib_figure_comes_back_as_png(codeflow, server: ModelServer) -> None:
    server.add_rule(
        contains="plot",
        reply=py(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 1])\nplt.title('t')\nplt.show()"
        ),
    )
    res = codeflow("ask", "plot three points", "--format", "json", "--no-cache")
    assert res.code == 0, res.stderr
    record = res.json()
    pngs = [o for o in record["outputs"] if "image/png" in o.get("data", {})]
    assert pngs and len(pngs[0]["data"]["image/png"]) > 1000


def test_formats_and_progress_stay_off_stdout(codeflow, server: ModelServer) -> None:
    server.add_rule(contains="greet", reply=py("print('hello')"))
    md = codeflow("ask", "greet me")
    assert md.code == 0, md.stderr
    assert "**✅ Execution Successful**" in md.stdout and "```python\nprint('hello')" in md.stdout
    assert "hello" in md.stdout and "**Performance:**" in md.stdout
    assert "codeflow:" in md.stderr and "codeflow:" not in md.stdout
    plain = codeflow("ask", "greet me", "--format", "plain")
    assert plain.stdout.startswith("SUCCESS after 1 attempt")
    js = codeflow("ask", "greet me", "--format", "json")
    record = js.json()
    assert set(record) >= {
        "request",
        "language",
        "model",
        "success",
        "final_code",
        "outputs",
        "attempts",
        "metrics",
    }
    assert set(record["metrics"]) >= {
        "generation_s",
        "execution_s",
        "improvement_s",
        "total_s",
        "input_tokens",
        "output_tokens",
        "llm_calls",
        "cache_hits",
    }
    attempt = record["attempts"][0]
    assert set(attempt) >= {
        "number",
        "code",
        "success",
        "outputs",
        "error",
        "explanation",
        "generation_s",
        "execution_s",
    }


def test_failure_markdown_names_error_type_and_root_cause(codeflow, server: ModelServer) -> None:
    server.add_rule(contains="broken", reply=py("print(nope)"))
    res = codeflow("ask", "broken thing", "--no-improve")
    assert res.code == 1
    assert "**❌ Execution Failed**" in res.stdout
    assert "**Error Type:** runtime" in res.stdout and "**Root Cause:**" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "request is empty"),
        (["ask", "x", "--max-attempts", "zero"], "not a whole number"),
        (["ask", "x", "--timeout", "-1"], "out of range; expected a number from 0.1"),
        (["ask", "x", "--backend", "cloud"], "invalid choice"),
        (["ask", "x", "--bogus"], "unrecognized arguments"),
        (["ask", "x", "improvement.max_attempts=many"], "improvement.max_attempts"),
        (["ask", "x", "generation.language=cobol"], "one of python, bash, auto"),
        (["ask", "x", "nosection.key=1"], "unknown setting"),
        (["ask"], "REQUEST"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_a_message(codeflow, args: list[str], message: str) -> None:
    res = codeflow(*args)
    assert res.code == 2
    assert message in res.stderr or message in res.stdout
    assert "Traceback" not in res.stderr


def test_seed_style_dotted_override_is_accepted(codeflow, server: ModelServer) -> None:
    server.enqueue(py("1/0"), py("print('ok')"))
    res = codeflow(
        "ask",
        "x",
        "--format",
        "json",
        "--no-cache",
        "flows.code_execution.improvement.max_attempts=1",
    )
    assert res.code == 1
    assert len(res.json()["attempts"]) == 1


def test_config_file_values_and_errors(codeflow, server: ModelServer, tmp_path: Path) -> None:
    (tmp_path / "codeflow.yaml").write_text("improvement:\n  max_attempts: 1\n")
    server.enqueue(py("1/0"), py("print('ok')"))
    res = codeflow("ask", "x", "--format", "json", "--no-cache")
    assert res.code == 1 and len(res.json()["attempts"]) == 1
    (tmp_path / "codeflow.yaml").write_text("improvement:\n  focus: fastest\n")
    res = codeflow("ask", "x")
    assert res.code == 2 and "improvement.focus" in res.stderr and "optimize" in res.stderr
    (tmp_path / "codeflow.yaml").write_text("improvement: [unclosed\n")
    res = codeflow("ask", "x")
    assert res.code == 2 and "not valid YAML" in res.stderr and "codeflow.yaml" in res.stderr
    (tmp_path / "codeflow.yaml").write_text("speed:\n  fast: true\n")
    res = codeflow("ask", "x")
    assert res.code == 2 and "unknown section 'speed'" in res.stderr


def test_provider_failures_have_their_own_status(codeflow, server: ModelServer) -> None:
    server.enqueue(Reply(status=401))
    res = codeflow("ask", "x", "--no-cache")
    assert res.code == 3 and "rejected" in res.stderr.lower()
    res = codeflow("ask", "x", "--no-cache", env={"ANTHROPIC_API_KEY": ""}, use_server=False)
    assert res.code == 3 and "ANTHROPIC_API_KEY" in res.stderr
    res = codeflow(
        "ask",
        "x",
        "--no-cache",
        env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
        use_server=False,
    )
    assert res.code == 5 and "reach" in res.stderr  # unavailable after retries, not refused
    assert "Traceback" not in res.stderr


def test_cache_hit_then_offline_replay_then_replay_miss(
    codeflow, server: ModelServer, tmp_path: Path
) -> None:
    server.add_rule(contains="cached request", reply=py("print(7 * 6)"))
    first = codeflow("ask", "cached request", "--format", "json")
    assert first.code == 0, first.stderr
    assert first.json()["metrics"]["cache_hits"] == 0
    assert len(server.requests) == 1
    entries = list((tmp_path / ".codeflow" / "cache").rglob("*.json"))
    assert len(entries) == 1
    second = codeflow("ask", "cached request", "--format", "json")
    assert second.json()["metrics"]["cache_hits"] == 1 and len(server.requests) == 1
    offline = codeflow(
        "ask",
        "cached request",
        "--format",
        "json",
        env={"CODEFLOW_CACHE": "replay"},
        use_server=False,
    )
    assert offline.code == 0, offline.stderr
    assert offline.json()["outputs"] == first.json()["outputs"]
    miss = codeflow("ask", "never asked before", env={"CODEFLOW_CACHE": "replay"}, use_server=False)
    assert miss.code == 3 and "no recorded response" in miss.stderr


def test_request_from_stdin(codeflow, server: ModelServer) -> None:
    server.add_rule(contains="from stdin", reply=py("print('piped')"))
    res = codeflow("ask", "-", "--format", "json", "--no-cache", input="a request from stdin\n")
    assert res.code == 0 and json.loads(res.stdout)["outputs"][0]["text"] == "piped\n"
