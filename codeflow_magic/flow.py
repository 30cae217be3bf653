"""The loop: generate -> scan -> execute -> analyse -> improve, until the code works.

Pure orchestration: it talks to a `Provider` and an `Executor` through their protocols and
knows nothing of IPython, the SDK, Docker or kernels. Front doors (CLI, magic, API) build the
ports and pass them in.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from . import analysis, context, prompts
from . import events as ev
from .errors import ProviderError, ProviderUnavailable
from .executors.base import Executor
from .executors.outputs import output_text_for_prompt
from .models import (
    Attempt,
    AttemptError,
    ExecutionResult,
    Finding,
    Metrics,
    Output,
    RunRecord,
    severity_rank,
)
from .planning import PlanRunner
from .providers.base import (
    LLMRequest,
    LLMResponse,
    Provider,
    StreamInterrupted,
    retry_notices,
)
from .providers.catalogue import price_for
from .rollback import Snapshots
from .runstate import (
    BlockingRule,
    EventCallback,
    FlowOptions,
    InstallConfirm,
    OutputRedactor,
    RunState,
    Scanner,
    check_code,
    norm_code,
)

__all__ = [
    "BlockingRule",
    "EventCallback",
    "Flow",
    "FlowOptions",
    "InstallConfirm",
    "OutputRedactor",
    "Scanner",
    "summarize_error",
]
"""`FlowOptions` and the callback types live in `runstate`; the flow is where users look."""

# Import names whose distribution is called differently.
DIST_NAMES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "skimage": "scikit-image",
}

_FRAMES = re.compile(r"(?m)^\w+: (?:DataFrame|Series) ")
"""A state summary line of a pandas DataFrame or Series (the probe adds example values)."""

_LIST_PACKAGES = (
    "import importlib.metadata as _m, json as _j\n"
    "print(_j.dumps(sorted({(d.metadata['Name'] or '').lower() for d in _m.distributions()})))\n"
    "del _m, _j\n"
)


class Flow(PlanRunner, Snapshots):
    """Runs requests against one provider and one executor (both long-lived)."""

    def __init__(
        self,
        provider: Provider,
        executor: Executor,
        *,
        scanner: Scanner | None = None,
        blocking: BlockingRule | None = None,
        findings_text: Callable[[Sequence[Finding]], str] | None = None,
        redact: OutputRedactor | None = None,
        confirm_install: InstallConfirm | None = None,
        fix_provider: Provider | None = None,
        on_dispatch: Callable[[], None] | None = None,
    ) -> None:
        self.provider = provider
        self.on_dispatch = on_dispatch
        """Called once per run when its first model request goes out (e.g. to warm imports)."""
        self.fix_provider = fix_provider or provider
        self.executor = executor
        self.scanner = scanner
        self.blocking = blocking
        self.findings_text = findings_text or (
            lambda fs: "\n".join(
                f"line {f.line}: [{f.severity}/{f.category}] {f.message}" for f in fs
            )
        )
        self.redact = redact
        self.confirm_install = confirm_install
        self._installed_cache: list[str] | None = None
        self._env_text: str | None = None
        """The environment line, asked of the kernel once (again after an install)."""
        self._env_stale = False

    # -- ports -------------------------------------------------------------------------------

    async def _complete(
        self,
        run: RunState,
        provider: Provider,
        req: LLMRequest,
        number: int,
        on_delta: Callable[[str], None] | None = None,
        on_cut: Callable[[], None] | None = None,
    ) -> LLMResponse:
        """Ask the model; an answer whose stream broke off is asked for once more.

        The SDK retries failures before an answer begins (with backoff), never a stream that
        breaks mid-message, although that is just as transient; a second break is final.
        `on_cut` lets the caller drop what the broken answer had started.
        """
        first: StreamInterrupted | None = None
        while True:
            try:
                with retry_notices(
                    lambda why: run.emit(ev.GeneratingEvent(number, phase=req.purpose, retry=why))
                ):
                    return await provider.complete(
                        req, on_delta=on_delta, on_dispatch=run.start_executor
                    )
            except StreamInterrupted as exc:
                if on_cut is not None:
                    on_cut()
                if first is not None:
                    raise StreamInterrupted(
                        f"{exc}; it had broken off once before, after {first.chars} "
                        "characters, and was asked for again",
                        chars=exc.chars,
                    ) from None
                first = exc
                run.emit(ev.GeneratingEvent(number, phase=req.purpose, retry=str(exc)))

    async def _ask(
        self,
        run: RunState,
        req: LLMRequest,
        number: int,
        language: str,
        *,
        allow_early: bool,
    ) -> tuple[LLMResponse, prompts.Extraction | None, asyncio.Task[ExecutionResult] | None, float]:
        """Ask the model; with `allow_early`, start executing at the closing fence."""
        provider = self.provider if req.purpose in ("generate", "plan") else self.fix_provider
        run.emit(ev.GeneratingEvent(number, phase=req.purpose))
        chunks: list[str] = []
        early: dict[str, object] = {}

        def on_delta(text: str) -> None:
            chunks.append(text)
            run.emit(ev.DeltaEvent(number, text=text))
            if not allow_early or "task" in early or ("`" not in text and "~" not in text):
                return
            ext = prompts.extract_code("".join(chunks), language, require_closed=True)
            if ext is None or any(norm_code(ext.code) == norm_code(a.code) for a in run.attempts):
                return
            if self._blocking_findings(run, ext.code, ext.language):
                return
            early["code"] = ext.code
            early["task"] = asyncio.ensure_future(
                self._execute(run, ext.code, ext.language, number)
            )

        def drop_early() -> None:
            task = early.pop("task", None)
            if isinstance(task, asyncio.Task):
                task.cancel()
            early.clear()
            chunks.clear()

        started = time.perf_counter()
        try:
            response = await self._complete(run, provider, req, number, on_delta, drop_early)
        except BaseException:
            drop_early()
            raise
        elapsed = time.perf_counter() - started
        run.llm_calls += 1
        self._charge(run, response)
        if response.model:
            run.answered_by = response.model
        for warning in response.extra.get("warnings", ()):
            if isinstance(warning, str) and warning not in run.warnings:
                run.warnings.append(warning)
                run.emit(ev.WarningEvent(number, message=warning))
        ext = prompts.extract_code(response.text, language)
        task = early.get("task")
        if isinstance(task, asyncio.Task):
            if ext is not None and ext.code == early.get("code"):
                return response, ext, task, elapsed
            # The finished reply disagrees with what started early (cannot happen with the
            # first-block rule, but never report the wrong run): wait and discard it.
            try:
                await task
            except Exception:
                pass
        return response, ext, None, elapsed

    async def _execute(
        self, run: RunState, code: str, language: str, number: int
    ) -> ExecutionResult:
        await self.executor.start()  # idempotent; waits if the kernel is still starting
        if run.opts.rollback and run.txn is None:
            run.txn = await self._begin(run)
        run.emit(ev.ExecutingEvent(number, language=language))
        result = await self.executor.execute(
            code,
            language=language,
            timeout=run.opts.timeout,
            on_output=lambda out: run.emit(ev.OutputEvent(number, output=self._redact_one(out))),
        )
        result = self._redacted(result)
        run.emit(ev.ExecutedEvent(number, status=result.status, duration_s=result.duration_s))
        return result

    def _redact_one(self, output: Output) -> Output:
        return self.redact(output) if self.redact else output

    def _redacted(self, result: ExecutionResult) -> ExecutionResult:
        if self.redact is None:
            return result
        outputs = tuple(self.redact(o) for o in result.outputs)
        probe = self.redact(
            {
                "output_type": "error",
                "ename": result.ename,
                "evalue": result.evalue,
                "traceback": list(result.traceback),
            }
        )
        return replace(
            result,
            outputs=outputs,
            evalue=str(probe.get("evalue", result.evalue)),
            traceback=tuple(probe.get("traceback", result.traceback)),
        )

    def _findings(self, code: str, language: str) -> list[Finding]:
        if self.scanner is None:
            return []
        return list(self.scanner(code, language))

    def _blocking_findings(self, run: RunState, code: str, language: str) -> list[Finding]:
        if run.opts.scan_policy == "off" or self.scanner is None or self.blocking is None:
            return []
        return list(self.blocking(self._findings(code, language), run.opts.scan_policy))

    async def _state(self, run: RunState, budget: int | None = None) -> str:
        limit = run.opts.state_chars if budget is None else min(budget, run.opts.state_chars)
        if limit <= 0 or not self.executor.started:
            return ""  # a kernel that has not started yet has no user state to describe
        try:
            return (await self.executor.describe_state(limit))[:limit]
        except Exception:
            return ""

    async def _grounding(self, run: RunState) -> tuple[str, prompts.Grounding]:
        """The state summary (with example values) and what the model should see besides.

        When the request names files the kernel is started and waited for: the preview is
        worth more than overlapping the start with the model's latency. Otherwise a kernel
        that has not started yet has nothing to describe, and the first prompt goes without.
        The probe runs only when it has something to add: files not yet previewed, the
        environment not yet known, DataFrames or Series in the state.
        """
        opts = run.opts
        notebook = context.notebook_text(opts.notebook, opts.notebook_chars)
        if run.files and run.previews is None:
            try:
                await run.executor_ready()
            except Exception:
                pass  # the start failure surfaces where the code runs
        if not self.executor.started or (
            not run.files and not getattr(self.executor, "has_state", True)
        ):
            return "", prompts.Grounding(notebook=notebook)
        state = await self._state(run)
        frame_chars = opts.state_chars // 2 if _FRAMES.search(state) else 0
        spec: dict[str, object] = {
            "env": opts.environment and self._env_text is None,
            "env_fresh": self._env_stale,
        }
        if frame_chars:
            spec["frame_chars"] = frame_chars
        if run.previews is None and run.files:
            spec.update(
                files=list(run.files),
                max_files=opts.preview_max_files,
                max_bytes=opts.preview_bytes,
                seconds=opts.preview_seconds,
            )
        answer: dict[str, object] = {}
        if spec["env"] or frame_chars or "files" in spec:
            answer = await self._probe(spec, opts.preview_seconds * len(run.files) + 10)
        if run.previews is None:
            files = answer.get("files") if run.files else None
            entries = [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
            run.previews = self._redact_text(context.files_text(entries, opts.preview_chars))
        env = answer.get("env")
        if isinstance(env, dict):
            self._env_text = context.env_text(env)
            self._env_stale = False
        frames = answer.get("frames")
        examples = self._redact_text(frames) if isinstance(frames, str) else ""
        if examples:
            examples = "Example values:\n" + examples
            if len(state) + len(examples) + 1 > opts.state_chars:
                state = await self._state(run, opts.state_chars - len(examples) - 1)
            state = (state.rstrip() + "\n" + examples).strip()
        environment = (self._env_text or "") if opts.environment else ""
        return state[: max(0, opts.state_chars)], prompts.Grounding(
            files=run.previews, environment=environment, notebook=notebook
        )

    async def _probe(self, spec: dict[str, object], timeout: float) -> dict[str, object]:
        """Run the grounding probe in the kernel; a probe that fails leaves the prompt as is."""
        try:
            result = await self.executor.run_snippet(context.probe_snippet(spec), timeout)
        except Exception:
            return {}
        return context.parse_probe(result.outputs) if result.ok else {}

    def _redact_text(self, text: str) -> str:
        """Text from the kernel, redacted as outputs are (a preview may show a key)."""
        if not text or self.redact is None:
            return text
        out = self.redact({"output_type": "stream", "name": "stdout", "text": text})
        return str(out.get("text", text))

    async def _installed_packages(self) -> list[str]:
        if self._installed_cache is None:
            result = await self.executor.run_snippet(_LIST_PACKAGES, 30)
            names: list[str] = []
            for out in result.outputs:
                if out.get("output_type") == "stream":
                    import json

                    try:
                        names = json.loads(str(out.get("text", "")).strip().splitlines()[-1])
                    except (ValueError, IndexError):
                        names = []
            self._installed_cache = names
        return self._installed_cache

    async def _alternatives(self, module: str) -> list[str]:
        import difflib

        installed = await self._installed_packages()
        wanted = DIST_NAMES.get(module, module).lower()
        close = difflib.get_close_matches(wanted, installed, n=5, cutoff=0.6)
        prefix = [n for n in installed if n.startswith(wanted[:3])][:5]
        seen: list[str] = []
        for name in close + prefix:
            if name not in seen:
                seen.append(name)
        return seen[:8]

    # -- the loop ----------------------------------------------------------------------------

    async def run(
        self,
        request: str,
        options: FlowOptions | None = None,
        *,
        on_event: EventCallback | None = None,
        run_id: str | None = None,
        model: str = "",
        backend: str = "",
    ) -> RunRecord:
        opts = options or FlowOptions()
        run = RunState(self, request, opts, on_event)
        started = time.perf_counter()
        run_id = run_id or uuid.uuid4().hex[:12]
        run.run_id = run_id
        run.emit(ev.StartEvent(0, request=request, max_attempts=opts.max_attempts, run_id=run_id))
        stop_reason = "max_attempts"
        language = opts.language
        failure: ProviderError | None = None
        try:
            stop_reason = await self._loop(run)
        except ProviderError as exc:  # the model could not be asked: end with what we have
            failure = exc
            stop_reason = (
                "provider_unavailable" if isinstance(exc, ProviderUnavailable) else "provider_error"
            )
        finally:
            if run.start_task is not None and not run.start_task.done():
                run.start_task.cancel()
        final = self._final_attempt(run.attempts)
        success = failure is None and final is not None and final.success
        if success:
            stop_reason = "success"
        token, run.txn = run.txn, None
        undo_key = run_id if await self._end(run, token, run_id if success else "") else ""
        if final is not None:
            language = final.language
        record = RunRecord(
            request=request,
            language=language,
            model=run.answered_by or model or getattr(self.provider, "model", ""),
            success=success,
            final_code=final.code if final else "",
            outputs=final.outputs if final else (),
            attempts=tuple(run.attempts),
            metrics=Metrics(
                generation_s=run.generation_s,
                execution_s=run.execution_s,
                improvement_s=run.improvement_s,
                total_s=time.perf_counter() - started,
                input_tokens=sum(a.input_tokens for a in run.attempts),
                output_tokens=sum(a.output_tokens for a in run.attempts),
                llm_calls=run.llm_calls,
                cache_hits=run.cache_hits,
                cache_write_tokens=sum(a.cache_write_tokens for a in run.attempts),
                cache_read_tokens=sum(a.cache_read_tokens for a in run.attempts),
                cost_usd=sum(a.cost_usd for a in run.attempts),
            ),
            run_id=run_id,
            stop_reason=stop_reason,
            backend=backend or getattr(self.executor, "name", ""),
            check=opts.check,
            focus=opts.focus,
            error=str(failure) if failure is not None else None,
            warnings=tuple(run.warnings),
            undo_key=undo_key if success else "",
        )
        run.emit(ev.FinishedEvent(0, record=record.to_dict()))
        if failure is not None:
            # Raised rather than returned, so that no caller mistakes it for an ordinary
            # failed run; the record keeps the attempts made before it.
            failure.record = record
            raise failure
        return record

    @staticmethod
    def _final_attempt(attempts: Sequence[Attempt]) -> Attempt | None:
        for attempt in reversed(attempts):
            if attempt.success and attempt.kept:
                return attempt
        return attempts[-1] if attempts else None

    def _budget_stop(self, run: RunState) -> str | None:
        """The stop reason of a spent budget (tokens or dollars), None while both last."""
        if run.opts.token_budget > 0 and run.tokens >= run.opts.token_budget:
            return "token_budget"
        if run.opts.max_cost_usd > 0 and run.cost >= run.opts.max_cost_usd:
            return "cost_budget"
        return None

    def _cost(self, run: RunState, response: LLMResponse) -> float:
        """What one answer cost; a recorded replay was paid for when it was recorded."""
        if response.cached:
            return 0.0
        price = price_for(response.model, run.opts.prices)
        if price is None:
            return 0.0
        return price.cost(
            response.input_tokens,
            response.output_tokens,
            response.cache_write_tokens,
            response.cache_read_tokens,
        )

    def _charge(self, run: RunState, response: LLMResponse) -> None:
        run.cache_hits += int(response.cached)
        run.tokens += response.input_tokens + response.output_tokens
        run.cost += self._cost(run, response)

    async def _loop(self, run: RunState) -> str:
        opts = run.opts
        language = opts.language
        number = 0
        extra_tokens = (0, 0)
        while number < opts.max_attempts:
            spent = self._budget_stop(run)
            if spent is not None:
                return spent
            number += 1
            last = run.attempts[-1] if run.attempts else None
            if last is not None:
                await run.executor_ready()
            state, ground = await self._grounding(run)
            if run.start is None:
                run.start = prompts.Start(opts.language, state, ground)
            if last is None or last.error is None:
                req = prompts.build_generate(
                    run.request,
                    language=language,
                    state=state,
                    check=opts.check,
                    max_tokens=opts.max_tokens,
                    temperature=opts.temperature,
                    grounding=ground,
                )
            else:
                req = await self._fix_request(run, last, state, language, ground)
            # Early execution needs a started kernel; if it is still starting, `_execute`
            # waits for it inside the task, which still overlaps with the rest of the reply.
            reviewed = number == 1 and opts.approved_code is not None
            ext: prompts.Extraction | None
            early_task: asyncio.Task[ExecutionResult] | None
            if reviewed:
                response, ext, early_task, gen_s = self._approved(run, language)
            else:
                early = opts.early_execute and (opts.review == "off" or number > 1)
                response, ext, early_task, gen_s = await self._ask(
                    run, req, number, language, allow_early=early
                )
            if number == 1:
                run.generation_s += gen_s
            else:
                run.improvement_s += gen_s
            tokens = (
                response.input_tokens + extra_tokens[0],
                response.output_tokens + extra_tokens[1],
            )
            extra_tokens = (0, 0)
            explanation = response.text if ext is None else ext.explanation
            kind = opts.given_kind if reviewed else "generate" if number == 1 else "fix"
            base = Attempt(
                number=number,
                code="",
                success=False,
                language=language
                if language != "auto"
                else prompts.auto_language_hint(run.request),
                kind=kind,
                explanation=explanation,
                generation_s=gen_s,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                cache_write_tokens=response.cache_write_tokens,
                cache_read_tokens=response.cache_read_tokens,
                cost_usd=self._cost(run, response),
                cached=response.cached,
                cache_key=response.cache_key,
            )
            if ext is None:
                attempt = replace(base, error=analysis.no_code_error(response.text))
                self._record(run, attempt)
                if not opts.improve:
                    return "no_improve"
                continue
            if language == "auto":
                language = ext.language
            code = ext.code
            base = replace(base, code=code, language=ext.language)
            run.emit(ev.CodeEvent(number, code=code, language=ext.language))
            if any(norm_code(code) == norm_code(a.code) for a in run.attempts):
                if early_task is not None:
                    await early_task
                return "repeated_code"
            findings = self._findings(code, ext.language) if opts.scan_policy != "off" else []
            blocked = (
                list(self.blocking(findings, opts.scan_policy))
                if self.blocking and findings
                else []
            )
            if findings:
                run.emit(ev.ScanEvent(number, findings=tuple(f.to_dict() for f in findings)))
            base = replace(base, findings=tuple(findings))
            if blocked:
                attempt = replace(base, error=analysis.security_error(blocked, opts.scan_policy))
                self._record(run, attempt)
                if not opts.improve:
                    return "no_improve"
                continue
            if number == 1 and not reviewed and self._held_for_review(opts, findings):
                self._record(run, base)  # written, scanned, not run: the user decides
                return "awaiting_review"
            await run.executor_ready()
            result = (
                await early_task
                if early_task is not None
                else await self._execute(run, code, ext.language, number)
            )
            attempt, verify_tokens = await self._judge(run, base, result)
            extra_tokens = verify_tokens
            if not attempt.success:
                attempt = await self._rollback(run, attempt)
            self._record(run, attempt)
            if attempt.success:
                await self._improve_or_keep(run, attempt)
                return "success"
            if attempt.error and attempt.error.category == "import" and number < opts.max_attempts:
                reran = await self._maybe_install(run, attempt, number + 1)
                if reran is not None:
                    number += 1
                    if not reran.success:
                        reran = await self._rollback(run, reran)
                    self._record(run, reran)
                    if reran.success:
                        await self._improve_or_keep(run, reran)
                        return "success"
                    if (
                        reran.error
                        and attempt.error
                        and reran.error.summary() == attempt.error.summary()
                    ):
                        return "repeated_error"
            if not opts.improve:
                return "no_improve"
        return "max_attempts"

    @staticmethod
    def _held_for_review(opts: FlowOptions, findings: Sequence[Finding]) -> bool:
        if opts.review == "always":
            return True
        return opts.review == "risky" and any(
            severity_rank(f.severity) >= severity_rank("medium") for f in findings
        )

    @staticmethod
    def _approved(
        run: RunState, language: str
    ) -> tuple[LLMResponse, prompts.Extraction, None, float]:
        """The code the user approved, in place of a model's answer (nothing is asked)."""
        code = run.opts.approved_code or ""
        if language == "auto":
            language = prompts.auto_language_hint(run.request)
        why = "Approved after review." if run.opts.given_kind == "approved" else ""
        ext = prompts.Extraction(code=code, language=language, explanation=why)
        return LLMResponse(text="", model=""), ext, None, 0.0

    def _record(self, run: RunState, attempt: Attempt) -> None:
        run.attempts.append(attempt)
        run.emit(ev.AttemptEvent(attempt.number, record=attempt.to_dict()))

    async def _fix_request(
        self,
        run: RunState,
        last: Attempt,
        state: str,
        language: str,
        ground: prompts.Grounding | None = None,
    ) -> LLMRequest:
        err = last.error
        assert err is not None
        alternatives: list[str] = []
        substitutes: list[str] = []
        if err.category == "import":
            module = analysis.missing_module(err.evalue)
            if module:
                try:
                    installed = await self._installed_packages()
                    substitutes = context.substitutes(module, installed)
                    alternatives = await self._alternatives(module.split(".")[0])
                except Exception:
                    alternatives = []
        return prompts.build_fix(
            run.request,
            language=language,
            failed=last,
            earlier=run.attempts[:-1],
            output_text=output_text_for_prompt(list(last.outputs), run.opts.prompt_output_chars),
            state=state,
            check=run.opts.check,
            alternatives=alternatives,
            findings_text=self.findings_text(err.findings) if err.findings else "",
            max_tokens=run.opts.max_tokens,
            temperature=run.opts.temperature,
            grounding=ground,
            substitutes=substitutes,
            start=run.start,
        )

    async def _judge(
        self, run: RunState, base: Attempt, result: ExecutionResult
    ) -> tuple[Attempt, tuple[int, int]]:
        """Classify the run, then apply the acceptance check and the quality gate."""
        run.execution_s += result.duration_s
        attempt = replace(base, outputs=result.outputs, execution_s=result.duration_s)
        if not result.ok:
            err = analysis.classify(result, base.code, base.language)
            return replace(attempt, error=err), (0, 0)
        if run.opts.check:
            check = await self.executor.execute(
                check_code(run.opts.check), language="python", timeout=run.opts.timeout
            )
            check = self._redacted(check)
            run.execution_s += check.duration_s
            attempt = replace(attempt, execution_s=attempt.execution_s + check.duration_s)
            if not check.ok:
                if check.status in ("timeout", "died"):
                    err = analysis.classify(check, run.opts.check, "python")
                else:
                    evalue = f"{check.ename}: {check.evalue}" if check.evalue else check.ename
                    err = analysis.check_failed(evalue, "\n".join(check.traceback))
                return replace(attempt, error=err), (0, 0)
        elif run.opts.sanity != "off":
            evidence = analysis.sanity_evidence(result.outputs, run.request)
            if evidence:
                attempt = replace(attempt, sanity=evidence)
                run.emit(
                    ev.SanityEvent(base.number, evidence=tuple(evidence), mode=run.opts.sanity)
                )
                if run.opts.sanity == "fix":
                    return replace(attempt, error=analysis.sanity_failed(evidence)), (0, 0)
                note = "the result may be wrong: " + "; ".join(evidence)
                if note not in run.warnings:
                    run.warnings.append(note)
        if run.opts.verify:
            text = output_text_for_prompt(list(result.outputs), run.opts.prompt_output_chars)
            req = prompts.build_verify(
                run.request,
                code=base.code,
                output_text=text,
                start=run.start,
                check=run.opts.check,
            )
            started = time.perf_counter()
            response = await self._complete(run, self.fix_provider, req, base.number)
            run.improvement_s += time.perf_counter() - started
            run.llm_calls += 1
            self._charge(run, response)
            score, reason = prompts.parse_score(response.text)
            attempt = replace(
                attempt,
                score=score,
                input_tokens=attempt.input_tokens + response.input_tokens,
                output_tokens=attempt.output_tokens + response.output_tokens,
                cache_write_tokens=attempt.cache_write_tokens + response.cache_write_tokens,
                cache_read_tokens=attempt.cache_read_tokens + response.cache_read_tokens,
                cost_usd=attempt.cost_usd + self._cost(run, response),
            )
            if score is not None and score < run.opts.quality_threshold:
                err = analysis.quality_failed(score, run.opts.quality_threshold, reason)
                return replace(attempt, error=err), (0, 0)
        return replace(attempt, success=True), (0, 0)

    async def _maybe_install(self, run: RunState, attempt: Attempt, number: int) -> Attempt | None:
        """For `install_missing`, install the missing package and re-run with no model call."""
        mode = run.opts.install_missing
        err = attempt.error
        if mode == "off" or err is None or not getattr(self.executor, "supports_install", False):
            return None
        module = analysis.missing_module(err.evalue)
        if not module:
            return None
        package = DIST_NAMES.get(module.split(".")[0], module.split(".")[0])
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", package):
            return None
        if mode == "ask" and (self.confirm_install is None or not self.confirm_install(package)):
            return None
        run.emit(ev.InstallEvent(number, package=package))
        installed = await self.executor.install(package, timeout=max(run.opts.timeout or 0, 300))
        run.execution_s += installed.duration_s
        self._installed_cache = None
        self._env_text = None
        self._env_stale = True
        if not installed.ok:
            return None
        result = await self._execute(run, attempt.code, attempt.language, number)
        base = replace(
            attempt,
            number=number,
            kind="install",
            error=None,
            explanation=f"installed `{package}` and ran the same code again",
            generation_s=0.0,
            input_tokens=0,
            output_tokens=0,
            cache_write_tokens=0,
            cache_read_tokens=0,
            cost_usd=0.0,
            cached=False,
            cache_key=None,
            execution_s=installed.duration_s,
        )
        judged, _ = await self._judge(run, base, result)
        return judged

    async def _improve_or_keep(self, run: RunState, good: Attempt) -> None:
        """Try the improvement; a model that cannot be asked leaves the working code standing."""
        try:
            await self._improve_once(run, good)
        except ProviderError as exc:
            run.emit(ev.ImproveSkippedEvent(good.number + 1, error=str(exc)))

    async def _improve_once(self, run: RunState, good: Attempt) -> None:
        """With focus optimize/robustness, try one improvement; keep it only if it is better."""
        focus = run.opts.focus
        if (
            focus not in ("optimize", "robustness")
            or not run.opts.improve
            or self._budget_stop(run) is not None
        ):
            return
        number = good.number + 1
        req = prompts.build_improve(
            run.request,
            language=good.language,
            focus=focus,
            code=good.code,
            output_text=output_text_for_prompt(list(good.outputs), run.opts.prompt_output_chars),
            execution_s=good.execution_s,
            max_tokens=run.opts.max_tokens,
            temperature=run.opts.temperature,
            start=run.start,
            check=run.opts.check,
        )
        response, ext, _, gen_s = await self._ask(
            run, req, number, good.language, allow_early=False
        )
        run.improvement_s += gen_s
        base = Attempt(
            number=number,
            code=ext.code if ext else "",
            success=False,
            language=ext.language if ext else good.language,
            kind="improve",
            explanation=ext.explanation if ext else response.text,
            generation_s=gen_s,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cache_write_tokens=response.cache_write_tokens,
            cache_read_tokens=response.cache_read_tokens,
            cost_usd=self._cost(run, response),
            cached=response.cached,
            cache_key=response.cache_key,
        )
        if ext is None:
            self._record(
                run, replace(base, error=analysis.no_code_error(response.text), kept=False)
            )
            return
        if norm_code(ext.code) == norm_code(good.code):
            self._record(run, replace(base, success=True, kept=False, outputs=good.outputs))
            return
        blocked = self._blocking_findings(run, ext.code, ext.language)
        if blocked:
            err = analysis.security_error(blocked, run.opts.scan_policy)
            self._record(run, replace(base, error=err, kept=False))
            return
        # The improvement runs on the working attempt's state; if it is not kept, that
        # state comes back (its own snapshot, inside the run's).
        inner = await self._begin(run) if run.opts.rollback and run.txn is not None else None
        result = await self._execute(run, ext.code, ext.language, number)
        judged, _ = await self._judge(run, base, result)
        keep = judged.success
        if keep and focus == "optimize":
            keep = (
                judged.execution_s < good.execution_s * 0.9
                and (good.execution_s - judged.execution_s) > 0.002
            )
        if not keep:
            judged = await self._rollback(run, judged, inner)
        await self._end(run, inner)
        self._record(run, replace(judged, kept=keep))


def summarize_error(error: AttemptError | None) -> str:
    return "" if error is None else f"{error.category}: {error.summary()}"
