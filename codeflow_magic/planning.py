"""Step plans on the flow's side: ask for a plan, run each step through the normal loop.

A mixin of `Flow` (the loop's own methods do the work: grounding, asking, running); pure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from . import events as ev
from . import plan as plan_mod
from . import prompts
from .errors import ProviderError
from .models import (
    LANGUAGES,
    Attempt,
    AttemptError,
    FlowEvent,
    Metrics,
    PlanRecord,
    RunRecord,
    StepRecord,
)
from .runstate import EventCallback, FlowOptions, RunState

if TYPE_CHECKING:
    import asyncio

    from .executors.base import Executor
    from .models import ExecutionResult
    from .providers.base import LLMRequest, LLMResponse, Provider


class PlanRunner:
    """`Flow.plan`: one request as a plan of steps."""

    if TYPE_CHECKING:  # provided by Flow
        provider: Provider
        executor: Executor

        async def _grounding(self, run: RunState) -> tuple[str, prompts.Grounding]: ...

        async def _ask(
            self, run: RunState, req: LLMRequest, number: int, language: str, *, allow_early: bool
        ) -> tuple[
            LLMResponse,
            prompts.Extraction | None,
            asyncio.Task[ExecutionResult] | None,
            float,
        ]: ...

        def _cost(self, run: RunState, response: LLMResponse) -> float: ...

        async def run(
            self,
            request: str,
            options: FlowOptions | None = None,
            *,
            on_event: EventCallback | None = None,
            run_id: str | None = None,
            model: str = "",
            backend: str = "",
        ) -> RunRecord: ...

    async def plan(
        self,
        request: str,
        options: FlowOptions | None = None,
        *,
        max_steps: int = plan_mod.DEFAULT_MAX_STEPS,
        on_event: EventCallback | None = None,
        run_id: str | None = None,
        model: str = "",
        backend: str = "",
    ) -> PlanRecord:
        """One request as a plan of steps: ask for the plan, then run each step's code through
        the normal loop (scan, execute, classify, fix), earlier steps as context, stopping at a
        step that still fails. Budgets cover the whole plan."""
        opts = options or FlowOptions()
        run = RunState(self, request, opts, on_event)  # type: ignore[arg-type]
        run_id = run_id or uuid.uuid4().hex[:12]
        run.run_id = run_id
        started = time.perf_counter()
        run.emit(ev.PlanStartEvent(0, request=request, max_steps=max_steps, run_id=run_id))
        state, ground = await self._grounding(run)
        req = prompts.build_plan(
            request,
            language=opts.language,
            state=state,
            grounding=ground,
            max_steps=max_steps,
            max_tokens=opts.max_tokens,
            temperature=opts.temperature,
        )
        response, _, _, gen_s = await self._ask(run, req, 0, opts.language, allow_early=False)
        answered_by = run.answered_by or model or getattr(self.provider, "model", "")
        plan_metrics = Metrics(
            generation_s=gen_s,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            llm_calls=1,
            cache_hits=int(response.cached),
            cache_write_tokens=response.cache_write_tokens,
            cache_read_tokens=response.cache_read_tokens,
            cost_usd=self._cost(run, response),
        )

        def record(steps: Sequence[StepRecord], stop: str, error: str | None = None) -> PlanRecord:
            runs = [s.record.metrics for s in steps if s.record is not None]
            total = _sum_metrics([plan_metrics, *runs], time.perf_counter() - started)
            plan = PlanRecord(
                request=request,
                model=answered_by,
                success=stop == "success",
                steps=tuple(steps),
                metrics=total,
                run_id=run_id,
                stop_reason=stop,
                error=error,
                plan_text=response.text,
            )
            run.emit(ev.PlanFinishedEvent(0, plan=plan.to_dict()))
            return plan

        try:
            steps = plan_mod.parse_plan(response.text, opts.language)
            plan_mod.check_steps(steps, max_steps)
        except plan_mod.PlanError as exc:
            return record((), "bad_plan", str(exc))
        run.emit(
            ev.PlanEvent(0, steps=tuple({"number": s.number, "title": s.title} for s in steps))
        )
        done: list[StepRecord] = []
        context = list(opts.notebook)
        stop = "success"
        error: str | None = None
        spent_tokens = response.input_tokens + response.output_tokens
        spent_cost = plan_metrics.cost_usd
        for step in steps:
            base = StepRecord(step.number, step.title, step.prose, step.code, step.language)
            if stop == "success":
                stop = self._plan_budget_stop(opts, spent_tokens, spent_cost)
            if stop != "success":
                done.append(base)
                run.emit(ev.StepEvent(step.number, state="not_run", title=step.title))
                continue
            run.emit(ev.StepEvent(step.number, state="running", title=step.title))
            step_opts = replace(
                opts,
                language=step.language,
                approved_code=step.code,
                given_kind="plan",
                review="off",
                notebook=tuple(context),
                token_budget=max(1, opts.token_budget - spent_tokens) if opts.token_budget else 0,
                max_cost_usd=max(1e-9, opts.max_cost_usd - spent_cost)
                if opts.max_cost_usd
                else 0.0,
            )
            if step.language not in LANGUAGES:
                result = self._unknown_language_run(request, step, run_id)
            else:
                try:
                    result = await self.run(
                        plan_mod.step_request(request, step, len(steps)),
                        step_opts,
                        on_event=_tagged(on_event, step.number),
                        run_id=f"{run_id}-{step.number}",
                        model=model,
                        backend=backend,
                    )
                except ProviderError as exc:
                    if exc.record is None:
                        raise
                    result, error = exc.record, str(exc)
            spent_tokens += result.metrics.input_tokens + result.metrics.output_tokens
            spent_cost += result.metrics.cost_usd
            state = "ok" if result.success else "failed"
            done.append(replace(base, state=state, record=result))
            run.emit(ev.StepEvent(step.number, state=state, title=step.title))
            context = [("code", result.final_code), ("markdown", plan_mod.step_markdown(step))]
            context += list(step_opts.notebook)
            if not result.success:
                stop = result.stop_reason if error else "step_failed"
        return record(done, stop, error)

    @staticmethod
    def _plan_budget_stop(opts: FlowOptions, tokens: int, cost: float) -> str:
        if opts.token_budget > 0 and tokens >= opts.token_budget:
            return "token_budget"
        if opts.max_cost_usd > 0 and cost >= opts.max_cost_usd:
            return "cost_budget"
        return "success"

    @staticmethod
    def _unknown_language_run(request: str, step: plan_mod.Step, run_id: str) -> RunRecord:
        """A step in a language codeflow cannot run: one failed attempt that says so."""
        error = AttemptError(
            category="environment",
            ename="UnknownLanguage",
            evalue=f"step {step.number} is written in {step.language!r}; codeflow runs "
            + " and ".join(LANGUAGES),
        )
        attempt = Attempt(
            number=1, code=step.code, success=False, language=step.language, kind="plan",
            error=error,
        )  # fmt: skip
        return RunRecord(
            request=request,
            language=step.language,
            model="",
            success=False,
            final_code=step.code,
            outputs=(),
            attempts=(attempt,),
            metrics=Metrics(),
            run_id=f"{run_id}-{step.number}",
            stop_reason="max_attempts",
        )


def _tagged(on_event: EventCallback | None, step: int) -> EventCallback | None:
    """A step's own events, marked with the step's number for progress displays."""
    if on_event is None:
        return None
    callback = on_event

    def forward(event: FlowEvent) -> None:
        callback(ev.in_step(event, step))

    return forward


def _sum_metrics(parts: Sequence[Metrics], total_s: float) -> Metrics:
    return Metrics(
        generation_s=sum(m.generation_s for m in parts),
        execution_s=sum(m.execution_s for m in parts),
        improvement_s=sum(m.improvement_s for m in parts),
        total_s=total_s,
        input_tokens=sum(m.input_tokens for m in parts),
        output_tokens=sum(m.output_tokens for m in parts),
        llm_calls=sum(m.llm_calls for m in parts),
        cache_hits=sum(m.cache_hits for m in parts),
        cache_write_tokens=sum(m.cache_write_tokens for m in parts),
        cache_read_tokens=sum(m.cache_read_tokens for m in parts),
        cost_usd=sum(m.cost_usd for m in parts),
    )
