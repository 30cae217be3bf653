"""The pure loop with a scripted provider and an in-process executor."""

from __future__ import annotations

import asyncio

import pytest
from scripted import MemoryExecutor, ScriptedProvider

from codeflow_magic.flow import Flow, FlowOptions
from codeflow_magic.models import Finding


def block(code: str, tail: str = "") -> str:
    return f"Here you go.\n```python\n{code}\n```\n{tail}"


async def run(replies, request="do it", **opts):  # type: ignore[no-untyped-def]
    provider = ScriptedProvider(replies)
    executor = MemoryExecutor()
    flow = Flow(provider, executor, **opts.pop("flow_kwargs", {}))
    events = []
    record = await flow.run(request, FlowOptions(**opts), on_event=events.append)
    return record, provider, executor, events


async def test_first_attempt_success_records_outputs_and_metrics() -> None:
    record, _, _, events = await run([block("x = 6 * 7\nprint(x)")])
    assert record.success and record.stop_reason == "success"
    assert len(record.attempts) == 1
    assert record.outputs[0]["text"] == "42\n"
    assert record.metrics.llm_calls == 1
    assert record.metrics.input_tokens == 10
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finished"
    assert "delta" in kinds and "code" in kinds and "attempt" in kinds


async def test_runtime_error_is_fixed_and_fix_prompt_carries_the_error() -> None:
    record, provider, _, _ = await run(
        [
            block("print(undefined_name)"),
            block(
                "undefined_name = 1\nprint(undefined_name)", "Root cause: missing\nFix: define it"
            ),
        ]
    )
    assert record.success
    assert [a.success for a in record.attempts] == [False, True]
    err = record.attempts[0].error
    assert err is not None and err.category == "runtime" and err.ename == "NameError"
    assert err.line == 1 and err.source_line == "print(undefined_name)"
    fix_prompt = provider.requests[1].messages[0].content
    assert "NameError" in fix_prompt and "print(undefined_name)" in fix_prompt
    assert provider.requests[1].purpose == "fix"
    assert "Fix: define it" in record.attempts[1].explanation


async def test_gives_up_after_max_attempts() -> None:
    record, provider, _, _ = await run(
        [block("1/0"), block("[][1]"), block("{}['k']")], max_attempts=3
    )
    assert not record.success and record.stop_reason == "max_attempts"
    assert len(record.attempts) == 3 and len(provider.requests) == 3


async def test_repeated_code_stops_early() -> None:
    record, _, executor, _ = await run([block("1/0"), block("1/0"), block("x=1")], max_attempts=3)
    assert record.stop_reason == "repeated_code"
    assert len(record.attempts) == 1
    assert executor.executed.count("1/0\n") == 1


async def test_reply_without_code_is_an_error_attempt_not_a_crash() -> None:
    record, _, _, _ = await run(["I cannot help with that.", block("print('ok')")])
    assert record.success
    first = record.attempts[0].error
    assert first is not None and first.ename == "NoCodeBlock" and first.category == "syntax"


async def test_check_failure_is_logical_and_fixed() -> None:
    record, provider, _, _ = await run(
        [block("total = 41"), block("total = 42")], check="total == 42"
    )
    assert record.success
    err = record.attempts[0].error
    assert err is not None and err.category == "logical" and err.ename == "CheckFailed"
    assert "total == 42" in provider.requests[0].messages[0].content


async def test_quality_gate_low_score_is_logical() -> None:
    record, provider, _, _ = await run(
        [
            block("print(1)"),
            "Score: 3/10\nReason: prints the wrong thing",
            block("print(2)"),
            "Score: 9/10\nReason: fine",
        ],
        verify=True,
    )
    assert record.success
    assert record.attempts[0].error is not None and record.attempts[0].error.ename == "QualityGate"
    assert record.attempts[1].score == 9.0
    assert [r.purpose for r in provider.requests] == ["generate", "verify", "fix", "verify"]


async def test_token_budget_stops_the_loop() -> None:
    record, provider, _, _ = await run(
        [block("1/0"), block("2/0"), block("3/0")], max_attempts=3, token_budget=5
    )
    assert record.stop_reason == "token_budget"
    assert len(provider.requests) == 1


async def test_no_improve_makes_one_attempt() -> None:
    record, provider, _, _ = await run([block("1/0")], improve=False, max_attempts=3)
    assert not record.success and record.stop_reason == "no_improve"
    assert len(provider.requests) == 1


async def test_scanner_block_records_security_attempt_and_asks_again() -> None:
    def scanner(code: str, language: str) -> list[Finding]:
        if "rmtree" in code:
            return [Finding("destroy", "critical", "filesystem", 1, "delete the home directory")]
        return []

    def blocking(findings, policy):  # type: ignore[no-untyped-def]
        return [f for f in findings if f.severity == "critical"] if policy == "block" else []

    record, provider, executor, _ = await run(
        [block("import shutil\nshutil.rmtree('/tmp/nothing-here')"), block("print('safe')")],
        flow_kwargs={"scanner": scanner, "blocking": blocking},
    )
    assert record.success
    first = record.attempts[0]
    assert first.error is not None and first.error.category == "security"
    assert first.error.findings[0].rule == "destroy"
    assert not any("rmtree" in c for c in executor.executed)
    assert "delete the home directory" in provider.requests[1].messages[0].content


async def test_scan_off_runs_flagged_code() -> None:
    def scanner(code: str, language: str) -> list[Finding]:
        return [Finding("r", "critical", "process", 1, "bad")]

    record, _, executor, _ = await run(
        [block("print('x')")],
        scan_policy="off",
        flow_kwargs={"scanner": scanner, "blocking": lambda f, p: list(f)},
    )
    assert record.success and executor.executed


async def test_focus_robustness_keeps_improvement_only_when_it_succeeds() -> None:
    record, _, _, _ = await run([block("y = 1"), block("y = 1/0")], focus="robustness")
    assert record.success and record.final_code == "y = 1\n"
    assert record.attempts[-1].kind == "improve" and not record.attempts[-1].kept

    record, _, _, _ = await run([block("y = 1"), block("y = int('1')")], focus="robustness")
    assert record.final_code == "y = int('1')\n"


async def test_state_summary_goes_into_the_prompt() -> None:
    provider = ScriptedProvider([block("print(sales)")])
    executor = MemoryExecutor()
    executor.ns["sales"] = [1, 2, 3]
    await Flow(provider, executor).run("print sales", FlowOptions())
    assert "sales: list" in provider.requests[0].messages[0].content


async def test_redaction_applies_before_record() -> None:
    def redact(out):  # type: ignore[no-untyped-def]
        out = dict(out)
        if "text" in out:
            out["text"] = out["text"].replace("s3cr3t-value", "[REDACTED]")
        return out

    record, _, _, _ = await run(
        [block("print('s3cr3t' + '-value')")], flow_kwargs={"redact": redact}
    )
    assert "s3cr3t-value" not in str(record.outputs) and "[REDACTED]" in str(record.outputs)


@pytest.mark.parametrize("language", ["python", "auto"])
async def test_record_round_trips_through_json(language: str) -> None:
    from codeflow_magic.models import RunRecord

    record, _, _, _ = await run([block("1/0"), block("print(1)")], language=language)
    again = RunRecord.from_dict(record.to_dict())
    assert again.to_dict() == record.to_dict()


class _ColdExecutor(MemoryExecutor):
    """An executor that has not started yet and logs when its start begins."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.started = False

    async def start(self) -> None:
        if not self.started:
            self.log.append("executor start")
            self.started = True


class _LoggingProvider(ScriptedProvider):
    def __init__(self, replies: list[str], log: list[str], dispatch: bool) -> None:
        super().__init__(replies)
        self.log = log
        self.dispatch = dispatch

    async def complete(self, request, on_delta=None, on_dispatch=None):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.01)  # loading the SDK, building the request: other tasks run
        self.log.append("preparing request")
        return await super().complete(request, on_delta, on_dispatch if self.dispatch else None)


@pytest.mark.parametrize("dispatch", [True, False])
async def test_executor_starts_once_the_request_is_on_its_way(dispatch: bool) -> None:
    log: list[str] = []
    warmed: list[str] = []
    provider = _LoggingProvider([block("print(6 * 7)")], log, dispatch)
    flow = Flow(provider, _ColdExecutor(log), on_dispatch=lambda: warmed.append("warm"))
    record = await flow.run("do it", FlowOptions())
    assert record.success and record.outputs[0]["text"] == "42\n"
    # Never before the request is being prepared; without a dispatch signal, before the run.
    assert log == ["preparing request", "executor start"]
    assert warmed == ["warm"]
