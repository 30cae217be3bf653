"""Prompt caching: every request of a run opens with the same marked prefix, the Anthropic
provider sends it as a cached block, and the loopback server's accounting (Anthropic's rules)
shows what that saves. The uncached figure is the same run against a server whose cache never
keeps a prefix, side by side in one test."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from modelserver import TEST_API_KEY, ModelServer, Reply, billed_input
from scripted import MemoryExecutor

from codeflow_magic.flow import Flow, FlowOptions
from codeflow_magic.models import RunRecord
from codeflow_magic.providers.anthropic import AnthropicProvider
from codeflow_magic.providers.base import LLMRequest, Message

COLUMNS = [f"col_{i:02d}" for i in range(40)]
REQUEST = (
    "Load the survey export below into a DataFrame called survey and print the mean of every "
    "numeric column. The export's data dictionary (keep the names exactly):\n"
    + "\n".join(
        f"- {c}: answer to question {i + 1} of the household survey, recorded on a scale from 1 "
        f"to 7; missing answers are written as -9 and must be treated as missing"
        for i, c in enumerate(COLUMNS)
    )
)
"""A request with a data dictionary: a prefix well above the 1024-token cache minimum."""

FIXED = "import math\nsurvey = {'col_00': [1, 2]}\nprint({k: sum(v) / len(v) for k, v in survey.items()})"


def block(code: str, tail: str = "") -> str:
    return f"```python\n{code}\n```\n{tail}"


def script(server: ModelServer) -> None:
    """Three attempts: a runtime error, a result judged poor, then one judged fine."""
    server.enqueue(
        Reply(text=block("survey = load_export()")),
        Reply(text=block("survey = {}\nprint(survey)", "Root cause: undefined\nFix: stub")),
        Reply(text="Score: 3/10\nReason: prints an empty dict"),
        Reply(text=block(FIXED, "Root cause: empty\nFix: fill it")),
        Reply(text="Score: 9/10\nReason: answers the request"),
    )


def run_once(server: ModelServer) -> RunRecord:
    async def go() -> RunRecord:
        provider = AnthropicProvider(
            "claude-sonnet-5-5", api_key=TEST_API_KEY, base_url=server.url, max_retries=0
        )
        flow = Flow(provider, MemoryExecutor())
        try:
            options = FlowOptions(max_attempts=3, verify=True, early_execute=False)
            return await flow.run(REQUEST, options)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def billed(server: ModelServer) -> float:
    return float(sum(billed_input(r.usage) for r in server.requests))


def test_a_three_attempt_run_bills_at_most_45_percent_of_its_uncached_input() -> None:
    with ModelServer() as cached, ModelServer() as uncached:
        uncached.prompt_cache.min_tokens = 10**9  # no prefix is ever long enough: no caching
        script(cached)
        script(uncached)
        with_cache = run_once(cached)
        without = run_once(uncached)
        assert [r.usage["cache_read_input_tokens"] for r in uncached.requests] == [0] * 5
        # the same prompts went out either way
        assert [r.body["messages"] for r in cached.requests] == [
            r.body["messages"] for r in uncached.requests
        ]
        ratio = billed(cached) / billed(uncached)
    assert with_cache.success and len(with_cache.attempts) == 3
    assert [a.kind for a in with_cache.attempts] == ["generate", "fix", "fix"]
    print(f"billed input with caching / without: {ratio:.1%}")
    assert ratio <= 0.45, ratio
    # the run's own metrics agree with what the server reported
    usage = [r.usage for r in cached.requests]
    m = with_cache.metrics
    assert m.cache_write_tokens == sum(u["cache_creation_input_tokens"] for u in usage) > 0
    assert m.cache_read_tokens == sum(u["cache_read_input_tokens"] for u in usage) > 0
    assert m.input_tokens == without.metrics.input_tokens  # every prompt token, cached or not
    assert m.cost_usd < without.metrics.cost_usd
    assert with_cache.attempts[0].cache_write_tokens > 0
    assert with_cache.attempts[1].cache_read_tokens > 0
    data = with_cache.to_dict()
    back = RunRecord.from_dict(data).metrics
    assert (back.cache_write_tokens, back.cache_read_tokens) == (
        m.cache_write_tokens,
        m.cache_read_tokens,
    )
    assert back.cost_usd == round(m.cost_usd, 6)
    assert data["attempts"][2]["cache_read_tokens"] == with_cache.attempts[2].cache_read_tokens


def test_every_request_of_a_run_opens_with_the_same_marked_prefix() -> None:
    with ModelServer() as server:
        script(server)
        run_once(server)
        bodies = [r.body for r in server.requests]
    purposes = []
    prefixes = set()
    for body in bodies:
        (message,) = body["messages"]
        first = message["content"][0]
        assert first["cache_control"] == {"type": "ephemeral"}
        assert all("cache_control" not in b for b in message["content"][1:])
        prefixes.add((str(body["system"]), first["text"]))
        purposes.append(message["content"][-1]["text"][:40])
    assert len(prefixes) == 1  # generate, fix and verify: one system prompt, one prefix
    (_, prefix), *_ = prefixes
    assert prefix.startswith("Request:\nLoad the survey export") and REQUEST.strip() in prefix
    assert "survey = load_export()" not in prefix  # what changes per attempt comes after


def test_prefix_below_the_minimum_or_past_its_lifetime_is_not_read() -> None:
    with ModelServer(default="```python\nprint(1)\n```") as server:
        client = anthropic.Anthropic(base_url=server.url, api_key=TEST_API_KEY, max_retries=0)

        def ask(text: str, rest: str = "go") -> dict[str, Any]:
            content = [
                {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": rest},
            ]
            messages: Any = [{"role": "user", "content": content}]
            message = client.messages.create(model="m", max_tokens=64, messages=messages)
            return message.usage.model_dump()

        short = ask("x" * 400)
        assert short["cache_creation_input_tokens"] == 0 == short["cache_read_input_tokens"]
        first, second = ask("y" * 8000), ask("y" * 8000, "other")
        assert first["cache_creation_input_tokens"] == 2000 and first["input_tokens"] < 10
        assert second["cache_read_input_tokens"] == 2000
        assert second["cache_creation_input_tokens"] == 0
        server.prompt_cache.advance(301)  # five minutes since the last use: gone
        late = ask("y" * 8000)
        assert late["cache_read_input_tokens"] == 0 and late["cache_creation_input_tokens"] == 2000
        client.close()


def test_anthropic_provider_marks_the_stable_prefix_and_reads_cache_usage() -> None:
    prefix = "p" * 6000
    request = LLMRequest(
        system="sys",
        messages=(Message("user", prefix + "\n\nper attempt", stable=len(prefix)),),
        max_tokens=64,
    )

    async def twice(server: ModelServer) -> list[Any]:
        provider = AnthropicProvider("m", api_key=TEST_API_KEY, base_url=server.url)
        try:
            return [await provider.complete(request), await provider.complete(request)]
        finally:
            await provider.aclose()

    with ModelServer(default="ok") as server:
        first, second = asyncio.run(twice(server))
        content = server.requests[0].body["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": prefix, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "\n\nper attempt"},
    ]
    assert first.cache_write_tokens > 1024 and first.cache_read_tokens == 0
    assert second.cache_read_tokens == first.cache_write_tokens
    assert second.input_tokens == first.input_tokens  # all prompt tokens, cached or not
    # the recorded-response key is over the text, not over how it is marked
    plain = LLMRequest(
        system="sys", messages=(Message("user", prefix + "\n\nper attempt"),), max_tokens=64
    )
    assert request.cache_payload() == plain.cache_payload()


def test_builders_share_the_prefix_and_put_what_changed_after_it() -> None:
    from codeflow_magic import prompts
    from codeflow_magic.models import Attempt, AttemptError

    ground = prompts.Grounding(files="data.csv: 3 rows", environment="Python 3.11; pandas 3")
    start = prompts.Start("auto", "x: int", ground)
    generate = prompts.build_generate(
        "count rows", language="auto", state="x: int", check="n == 3", grounding=ground
    )
    failed = Attempt(1, "n = len(rows)", False, error=AttemptError("runtime", "NameError", "rows"))
    fix = prompts.build_fix(
        "count rows", language="python", failed=failed, earlier=(), output_text="",
        state="x: int\nn: int", check="n == 3", grounding=ground, start=start,
    )  # fmt: skip
    improve = prompts.build_improve(
        "count rows", language="python", focus="optimize", code="n = 3", output_text="",
        execution_s=0.1, start=start, check="n == 3",
    )  # fmt: skip
    verify = prompts.build_verify(
        "count rows", code="n = 3", output_text="3", start=start, check="n == 3"
    )
    (first,) = generate.messages
    prefix = first.content
    assert first.stable == len(prefix) and "Acceptance check" in prefix
    for req in (fix, improve, verify):
        assert req.system == generate.system
        (message,) = req.messages
        stable, rest = message.parts
        assert stable == prefix and rest.startswith("\n\n")
        # the environment line stays out of the recorded-response key, wherever it is
        assert "Python 3.11" not in str(req.cache_payload())
    tail = fix.messages[0].parts[1]
    assert "Language: Python 3" in tail  # chosen after the start: said after the prefix
    assert "n: int" in tail and "NameError" in tail
    assert "Score: N/10" in verify.messages[0].parts[1]
