"""One `codeflow mcp` session: the tools' implementations on one CodeFlow (one kernel).

A call runs as a job of its own (`_job`), so a call that outlives its wait answers with a run
id and the run goes on; every run and call is recorded, redacted, for `history`. The MCP SDK
is not imported here: the session is plain asyncio, and `mcp_server` maps it onto the SDK.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .mcp_notebook import find_cell, new_notebook, set_outputs, write_back
from .mcp_tools import (
    DEFAULT_WAIT_S,
    TOOLS,
    Progress,
    Reply,
    ToolError,
    ToolSpec,
    error_text,
    findings_text,
    render_outputs,
    without_images,
)

if TYPE_CHECKING:
    from .api import CodeFlow
    from .config import Settings
    from .models import ExecutionResult, Output, RunRecord
    from .secrets import Redactor

AGENT_MODEL = "mcp-client"
"""The `model` of a run whose code the MCP client wrote (execute, run_cell): not codeflow's."""
PROGRESS_EVERY_S = 5.0
"""Seconds between progress notifications while code runs (clients show them as liveness)."""


@dataclass
class Job:
    """A run started by a call; kept apart from the call so it can outlive it."""

    run_id: str
    tool: str
    task: asyncio.Task[Reply]
    started: float


class McpSession:
    """One server session: a CodeFlow (provider, executor: one kernel), runs, calls, jobs."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: str | None = None,
        work_dir: Path | None = None,
        cache_mode: str | None = None,
        notebook: Path | None = None,
        wait: float = DEFAULT_WAIT_S,
    ) -> None:
        from .api import CodeFlow
        from .secrets import Redactor

        self.settings = settings
        self.cf: CodeFlow = CodeFlow(
            settings, work_dir=work_dir, backend=backend, cache_mode=cache_mode
        )
        self.notebook = notebook.resolve() if notebook is not None else None
        self.wait = wait
        self.redactor: Redactor = Redactor.from_env(extra_names=list(settings.execution.secret_env))
        self.lock = asyncio.Lock()
        """One run at a time on the kernel; later calls queue."""
        self.runs: dict[str, tuple[str, RunRecord]] = {}
        self.calls: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}

    @property
    def tools(self) -> list[ToolSpec]:
        return [t for t in TOOLS if self.notebook is not None or not t.notebook]

    async def aclose(self) -> None:
        for job in self.jobs.values():
            job.task.cancel()
        await self.cf.aclose()

    # -- dispatch --------------------------------------------------------------------------

    async def call(
        self, name: str, arguments: Mapping[str, Any], progress: Progress | None = None
    ) -> Reply:
        """Run tool `name`; every failure becomes an error reply, and the call is recorded."""
        from .errors import CodeFlowError

        began = time.time()
        spec = next((t for t in self.tools if t.name == name), None)
        try:
            if spec is None:
                raise ToolError(f"unknown tool {name!r}")
            args = self._checked(spec, dict(arguments))
            handler: Callable[..., Awaitable[Reply]] = getattr(self, f"tool_{name}")
            reply = await handler(progress=progress, **args)
        except (ToolError, CodeFlowError) as exc:
            reply = Reply(text=[str(exc)], error=True)
        except Exception as exc:
            reply = Reply(text=[f"codeflow mcp: {type(exc).__name__}: {exc}"], error=True)
        reply.text = [self.redactor.redact(t) for t in reply.text]  # nothing secret goes back
        self.calls.append(
            {
                "tool": name,
                "arguments": self.redactor.redact_obj(dict(arguments)),
                "answer": reply.joined()[:2000],
                "images": len(reply.images),
                "is_error": reply.error,
                "run_id": reply.data.get("run_id"),
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
                "duration_s": round(time.time() - began, 3),
            }
        )
        return reply

    @staticmethod
    def _checked(spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.validate(args, spec.schema())
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path)
            raise ToolError(
                f"{spec.name}: bad arguments{f' ({where})' if where else ''}: {exc.message}"
            ) from None
        return args

    async def _job(
        self,
        tool: str,
        work: Callable[[str, Progress | None], Awaitable[Reply]],
        wait: float | None,
        progress: Progress | None,
    ) -> Reply:
        """Start `work` as a run of its own and wait up to `wait` seconds for it.

        The run is a task apart from the call: when the call answers early (or the client
        cancels it) the run goes on, and `result(run_id)` collects it.
        """
        run_id = uuid.uuid4().hex[:12]
        live = {"on": True}

        async def report(value: float, total: float | None, message: str) -> None:
            if progress is not None and live["on"]:
                try:
                    await progress(value, total, message)
                except Exception:
                    live["on"] = False  # the call is over; progress has nowhere to go

        task = asyncio.ensure_future(work(run_id, report))
        self.jobs[run_id] = Job(run_id, tool, task, time.time())
        try:
            return await self._collect(run_id, self.wait if wait is None else wait)
        finally:
            live["on"] = False

    async def _collect(self, run_id: str, wait: float) -> Reply:
        job = self.jobs[run_id]
        done, _ = await asyncio.wait({job.task}, timeout=wait)
        if job.task in done:
            reply = job.task.result()
            reply.data.setdefault("run_id", run_id)
            return reply
        elapsed = time.time() - job.started
        return Reply(
            text=[
                f"{job.tool} is still running after {elapsed:.0f} s (run id {run_id}). It goes "
                f"on; call `result` with run_id={run_id!r} for its outcome."
            ],
            data={"run_id": run_id, "status": "running"},
        )

    # -- execute ---------------------------------------------------------------------------

    async def tool_execute(
        self,
        code: str,
        language: str = "python",
        timeout: float | None = None,
        wait: float | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        async def work(run_id: str, report: Progress | None) -> Reply:
            record = await self._execute(code, language, timeout, run_id, report)
            return self._run_reply(record, "execute")

        return await self._job("execute", work, wait, progress)

    async def _execute(
        self,
        code: str,
        language: str,
        timeout: float | None,
        run_id: str,
        report: Progress | None,
    ) -> RunRecord:
        """Scan, run, classify, redact: one attempt, recorded as a run of the MCP client
        (its request is empty until `write_cell` gives it one)."""
        from . import analysis
        from .models import Attempt, Metrics, RunRecord
        from .security import blocking_findings, scan_code

        policy = self.settings.execution.scan
        findings = scan_code(code, language)
        blocked = [] if policy == "off" else blocking_findings(findings, policy)
        limit = float(timeout if timeout is not None else self.settings.execution.timeout)
        if blocked:
            refused = analysis.security_error(blocked, policy)
            attempt = Attempt(1, code, False, language, error=refused, findings=tuple(findings))
            record = RunRecord(
                "", language, AGENT_MODEL, False, code, (), (attempt,), Metrics(),
                run_id=run_id, stop_reason="security_blocked", backend=self.cf.backend,
            )  # fmt: skip
            self.runs[run_id] = ("execute", record)
            return record
        count = {"outputs": 0}

        def on_output(_: Output) -> None:
            count["outputs"] += 1

        async with self.lock:
            executor = self.cf.executor
            await executor.start()
            began = time.monotonic()
            ticker = asyncio.ensure_future(self._tick(report, began, limit, count))
            try:
                result = await executor.execute(
                    code, language=language, timeout=limit, on_output=on_output
                )
            finally:
                ticker.cancel()
        result = self._redacted(result)
        error = None if result.ok else analysis.classify(result, code, language)
        attempt = Attempt(
            1, code, result.ok, language, outputs=result.outputs, error=error,
            execution_s=result.duration_s, findings=tuple(findings),
        )  # fmt: skip
        stop = "success" if result.ok else ("timeout" if result.status == "timeout" else "failed")
        record = RunRecord(
            "", language, AGENT_MODEL, result.ok, code, result.outputs, (attempt,),
            Metrics(execution_s=result.duration_s, total_s=result.duration_s),
            run_id=run_id, stop_reason=stop, backend=self.cf.backend,
        )  # fmt: skip
        self.runs[run_id] = ("execute", record)
        return record

    @staticmethod
    async def _tick(
        report: Progress | None, began: float, limit: float, count: dict[str, int]
    ) -> None:
        """A progress notification every few seconds while code runs (elapsed of the limit)."""
        if report is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - began
            await report(
                elapsed, limit, f"running: {elapsed:.0f} s, {count['outputs']} outputs so far"
            )

    def _redacted(self, result: ExecutionResult) -> ExecutionResult:
        if not self.redactor:
            return result
        r = self.redactor
        return dataclasses.replace(
            result,
            outputs=tuple(r.redact_output(o) for o in result.outputs),
            evalue=r.redact(result.evalue),
            traceback=tuple(r.redact(t) for t in result.traceback),
        )

    def _run_reply(self, record: RunRecord, tool: str) -> Reply:
        """A run as the client reads it: status line, code (for generated runs), outputs,
        the classified error or the blocking findings; the record as structured content."""
        reply = Reply(error=not record.success)
        attempt = record.attempts[-1] if record.attempts else None
        err = None if record.success else record.last_error  # a fixed error is in the record
        if record.stop_reason == "security_blocked" and err is not None and tool != "run_request":
            reply.text.append(findings_text(err.findings, self.settings.execution.scan))
        elif tool == "execute" or tool == "run_cell":
            took = attempt.execution_s if attempt else 0.0
            if record.success:
                reply.text.append(f"ok ({took:.2f} s)")
            elif record.stop_reason == "timeout":
                said = err.evalue if err else ""
                kept = (
                    "; the kernel was restarted: its state is lost"
                    if "state lost" in said
                    else "; the kernel's state is kept"
                )
                reply.text.append(f"timeout: the run was stopped after {took:.1f} s{kept}")
        else:
            status = "succeeded" if record.success else f"failed ({record.stop_reason})"
            reply.text.append(
                f"run {status} after {len(record.attempts)} attempt(s); "
                f"{record.metrics.llm_calls} model call(s), {record.metrics.total_s:.1f} s"
            )
            if record.error:
                reply.text.append(f"stopped: {record.error}")
            if record.final_code:
                fence = "bash" if record.language == "bash" else "python"
                reply.text.append(f"```{fence}\n{record.final_code.rstrip()}\n```")
        render_outputs(record.outputs, reply)
        if err is not None and record.stop_reason != "security_blocked":
            reply.text.append(error_text(err))
        data = self.redactor.redact_obj(without_images(record.to_dict()))
        reply.data = {
            "run_id": record.run_id,
            "status": "ok" if record.success else record.stop_reason,
            "error": err.to_dict() if err is not None else None,
            "record": data,
        }
        if err is not None and err.findings:
            reply.data["findings"] = [f.to_dict() for f in err.findings]
        return reply

    # -- run_request -----------------------------------------------------------------------

    async def tool_run_request(
        self,
        request: str,
        check: str | None = None,
        max_attempts: int | None = None,
        wait: float | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        async def work(run_id: str, report: Progress | None) -> Reply:
            record = await self._run_request(request, check, max_attempts, run_id, report)
            return self._run_reply(record, "run_request")

        return await self._job("run_request", work, wait, progress)

    async def _run_request(
        self,
        request: str,
        check: str | None,
        max_attempts: int | None,
        run_id: str,
        report: Progress | None,
    ) -> RunRecord:
        from .events import FlowEvent, activity_line, initial_state, reduce

        pending: set[asyncio.Task[None]] = set()
        attempts = max_attempts or self.settings.improvement.max_attempts

        state = initial_state(attempts)

        def on_event(event: FlowEvent) -> None:
            nonlocal state
            state = reduce(state, event)
            if state.last_kind in ("delta", "finished") or report is None:
                return  # a notification per streamed chunk would flood the client
            message = activity_line(state, event.attempt, attempts)
            if message is None:
                return
            task = asyncio.ensure_future(report(float(event.attempt), float(attempts), message))
            pending.add(task)
            task.add_done_callback(pending.discard)

        async with self.lock:
            record = await self.cf.arun(
                request, check=check, max_attempts=max_attempts, on_event=on_event, run_id=run_id
            )
        record = self._redacted_record(record)
        self.runs[run_id] = ("run_request", record)
        return record

    def _redacted_record(self, record: RunRecord) -> RunRecord:
        from .models import RunRecord

        if not self.redactor:
            return record
        return RunRecord.from_dict(self.redactor.redact_obj(record.to_dict()))

    # -- state, preview ----------------------------------------------------------------------

    async def _probe(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        from . import context

        async with self.lock:
            executor = self.cf.executor
            await executor.start()
            result = await executor.run_snippet(context.probe_snippet(spec), timeout)
        return context.parse_probe(result.outputs) if result.ok else {}

    async def tool_state(self, progress: Progress | None = None) -> Reply:
        from . import context

        gen = self.settings.generation
        async with self.lock:
            executor = self.cf.executor
            await executor.start()
            summary = await executor.describe_state(gen.state_chars)
        answer = await self._probe({"env": True, "frame_chars": gen.state_chars // 2}, 30)
        env = answer.get("env")
        environment = context.env_text(env) if isinstance(env, Mapping) else ""
        frames = answer.get("frames") if isinstance(answer.get("frames"), str) else ""
        text = [
            f"backend: {self.cf.backend}; work dir: {self.cf.work_dir}",
            "Variables:\n" + (summary.strip() or "(none)"),
        ]
        if frames:
            text.append("Example values:\n" + str(frames).strip())
        if environment:
            text.append("Environment: " + environment)
        redacted = [self.redactor.redact(t) for t in text]
        return Reply(
            text=redacted,
            data={
                "backend": self.cf.backend,
                "work_dir": str(self.cf.work_dir),
                "variables": self.redactor.redact(summary),
                "environment": environment,
                "env": env if isinstance(env, Mapping) else None,
            },
        )

    async def tool_preview(self, path: str, progress: Progress | None = None) -> Reply:
        from . import context

        gen = self.settings.generation
        seconds = max(gen.preview_seconds, 2.0)
        spec = {
            "files": [path],
            "max_files": 1,
            "max_bytes": gen.preview_bytes,
            "seconds": seconds,
        }
        answer = await self._probe(spec, seconds + 10)
        files = answer.get("files")
        entries = [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
        if not entries:
            return Reply(
                text=[f"{path}: no such file under the work dir {self.cf.work_dir}"], error=True
            )
        text = self.redactor.redact(context.files_text(entries, max(gen.preview_chars, 3000)))
        return Reply(text=[text], data={"files": self.redactor.redact_obj(entries)})

    # -- history, result -----------------------------------------------------------------------

    async def tool_history(self, full: bool = False, progress: Progress | None = None) -> Reply:
        runs: list[dict[str, Any]] = []
        lines: list[str] = []
        for run_id, (tool, record) in self.runs.items():
            err = record.last_error
            row: dict[str, Any] = {
                "run_id": run_id,
                "tool": tool,
                "request": record.request,
                "success": record.success,
                "status": "ok" if record.success else record.stop_reason,
                "attempts": len(record.attempts),
                "error": err.summary() if err else None,
                "category": err.category if err else None,
                "code": record.final_code[:2000],
            }
            if full:
                row["record"] = without_images(record.to_dict())
            runs.append(row)
            what = record.request or (record.final_code.strip().splitlines() or [""])[0][:80]
            lines.append(
                f"{run_id} {tool}: {row['status']}"
                + (f" ({row['category']}: {row['error']})" if err else "")
                + (f" - {what}" if what else "")
            )
        for job in self.jobs.values():
            if not job.task.done():
                runs.append({"run_id": job.run_id, "tool": job.tool, "status": "running"})
                lines.append(f"{job.run_id} {job.tool}: running")
        return Reply(
            text=[self.redactor.redact("\n".join(lines)) or "no runs yet"],
            data={"runs": self.redactor.redact_obj(runs), "calls": list(self.calls)},
        )

    async def tool_result(
        self, run_id: str, wait: float | None = None, progress: Progress | None = None
    ) -> Reply:
        if run_id not in self.jobs:
            raise ToolError(f"no run {run_id!r} in this session (see history)")
        return await self._collect(run_id, self.wait if wait is None else wait)

    # -- notebook --------------------------------------------------------------------------

    def _nb_path(self) -> Path:
        if self.notebook is None:
            raise ToolError("this server has no notebook: start it with --notebook NB.ipynb")
        return self.notebook

    async def _edit(self, change: Callable[[Any], Any]) -> Any:
        """Read, change and write the notebook atomically, under the lock `codeflow run`
        holds (waiting for it if a run has it); a missing notebook starts empty."""

        def edit() -> Any:
            import nbformat

            from .nbfiles import notebook_locks, read_notebook, remove_stale_temps, write_atomic

            path = self._nb_path()
            with notebook_locks({path: path}, wait=True):
                remove_stale_temps(path)
                nb = read_notebook(path) if path.exists() else new_notebook()
                answer = change(nb)
                nbformat.validate(nb)  # type: ignore[no-untyped-call]
                write_atomic(path, nbformat.writes(nb))  # type: ignore[no-untyped-call]
            return answer

        return await asyncio.to_thread(edit)

    async def _read(self) -> Any:
        def read() -> Any:
            from .nbfiles import read_notebook

            path = self._nb_path()
            return read_notebook(path) if path.exists() else new_notebook()

        return await asyncio.to_thread(read)

    async def tool_list_cells(
        self, max_chars: int = 2000, progress: Progress | None = None
    ) -> Reply:
        from .notebook import META_KEY, cell_source, is_generated_cell, is_request_cell

        nb = await self._read()
        rows: list[dict[str, Any]] = []
        lines: list[str] = []
        for index, cell in enumerate(nb["cells"]):
            meta = cell.get("metadata", {}).get(META_KEY, {})
            kind = (
                "request"
                if is_request_cell(cell)
                else "generated"
                if is_generated_cell(cell)
                else str(cell.get("cell_type"))
            )
            source = cell_source(cell)
            row = {
                "index": index,
                "id": cell.get("id"),
                "cell_type": cell.get("cell_type"),
                "kind": kind,
                "source": source[:max_chars],
                "codeflow": dict(meta) if isinstance(meta, Mapping) else None,
                "outputs": len(cell.get("outputs", ()) or ()),
            }
            rows.append(row)
            facts = [f"[{index}] id={row['id']} {kind}"]
            if kind == "request" and isinstance(meta, Mapping) and meta:
                facts.append(f"success={meta.get('success')} linked={meta.get('linked_cell_id')}")
            if kind == "generated" and isinstance(meta, Mapping):
                facts.append(f"from={meta.get('generated_from')}")
            lines.append(" ".join(facts) + "\n" + source[:max_chars])
        return Reply(
            text=["\n\n".join(lines) or "the notebook has no cells"],
            data={"notebook": str(self._nb_path()), "cells": rows},
        )

    async def tool_write_cell(
        self,
        request: str,
        run_id: str | None = None,
        code: str | None = None,
        cell_id: str | None = None,
        index: int | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        from .models import RunRecord

        if (run_id is None) == (code is None):
            raise ToolError("write_cell: give either run_id (a run of this session) or code")
        if not request.strip():
            raise ToolError("write_cell: the request must say what the code does")
        if run_id is not None:
            if run_id not in self.runs:
                raise ToolError(f"write_cell: no finished run {run_id!r} (see history)")
            record = dataclasses.replace(self.runs[run_id][1], request=request.strip())
            if not record.success:
                raise ToolError(
                    f"write_cell: run {run_id} did not succeed; write code that works, or pass "
                    "`code` to leave it for the user's review"
                )
        else:
            assert code is not None
            from .models import Metrics

            record = RunRecord(
                request.strip(), "python", AGENT_MODEL, False, code, (), (), Metrics(),
                run_id=uuid.uuid4().hex[:12], stop_reason="awaiting_review",
            )  # fmt: skip
        data = self.redactor.redact_obj(record.to_dict())
        written = await self._edit(lambda nb: write_back(nb, data, request, cell_id, index))
        return Reply(
            text=[
                f"wrote request cell {written['request_cell']} and code cell "
                f"{written['code_cell']} into {self._nb_path().name}"
                + (" (awaiting the user's review: not run)" if code is not None else "")
            ],
            data={**written, "run_id": record.run_id, "notebook": str(self._nb_path())},
        )

    async def tool_run_cell(
        self,
        cell_id: str | None = None,
        index: int | None = None,
        timeout: float | None = None,
        wait: float | None = None,
        progress: Progress | None = None,
    ) -> Reply:
        from .notebook import cell_source, split_request

        nb = await self._read()
        position = find_cell(nb, cell_id, index)
        cell = nb["cells"][position]
        the_id = str(cell.get("id", ""))
        if cell.get("cell_type") != "code":
            raise ToolError(f"cell {the_id or position} is {cell.get('cell_type')}, not code")
        source = cell_source(cell)
        parts = split_request(source)
        if parts is not None:
            request = parts[1].strip()

            async def ask(run_id: str, report: Progress | None) -> Reply:
                record = await self._run_request(request, None, None, run_id, report)
                data = record.to_dict()
                written = await self._edit(lambda nb: write_back(nb, data, None, the_id, None))
                reply = self._run_reply(record, "run_request")
                reply.text.insert(1, f"written back: code cell {written['code_cell']}")
                return reply

            return await self._job("run_cell", ask, wait, progress)
        language, code = "python", source
        if source.lstrip().startswith("%%bash"):
            language, code = "bash", source.lstrip().partition("\n")[2]

        async def run(run_id: str, report: Progress | None) -> Reply:
            record = await self._execute(code, language, timeout, run_id, report)
            outputs = list(record.outputs)
            if record.stop_reason != "security_blocked":  # a refused cell keeps its outputs
                await self._edit(lambda nb: set_outputs(nb, the_id, position, outputs))
            return self._run_reply(record, "run_cell")

        return await self._job("run_cell", run, wait, progress)
