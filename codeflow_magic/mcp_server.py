"""`codeflow mcp`: codeflow's kernel, scanner, loop and notebook write-back as MCP tools.

Coding agents (Claude Code, Cursor, Jupyter AI) reach kernels through MCP servers. This one
is a thin map onto what codeflow already has: `execute` scans with the scanner and the policy
the flow uses, runs on the executor of one `CodeFlow` session (one persistent kernel per
server), classifies a failure as the loop does (`analysis.classify`) and redacts outputs;
`run_request` is `CodeFlow.arun`; `state` and `preview` are the flow's grounding probe;
`write_cell` is the notebook write-back under the lock `codeflow run` takes.

A call that outlives `--wait` seconds answers with its run id and goes on; `result(run_id)`
collects it. A client that gives up on a call (its own request timeout) does not stop the
run either. Every call, what it was sent and what it answered, is kept (redacted) in the
session record that `history()` shows.

The MCP SDK is imported only when the server starts, so `codeflow --help` does not pay for it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import CodeFlow
    from .config import Settings
    from .models import ExecutionResult, Finding, Output, RunRecord
    from .secrets import Redactor

SERVER_NAME = "codeflow"
AGENT_MODEL = "mcp-client"
"""The `model` of a run whose code the MCP client wrote (execute, run_cell): not codeflow's."""
TEXT_CHARS = 20_000
"""At most this much text of a call's outputs goes back to the client (middle trimmed)."""
IMAGE_MIMES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
DEFAULT_WAIT_S = 100.0
"""How long a call waits before it answers with a run id to poll (below the 120 s request
timeout several clients use)."""
PROGRESS_EVERY_S = 5.0

Progress = Callable[[float, float | None, str], Awaitable[None]]
"""`(progress, total, message)`: sends one MCP progress notification."""


# ------------------------------------------------------------------------------ tools


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    properties: dict[str, Any]
    required: tuple[str, ...] = ()
    read_only: bool = False
    notebook: bool = False

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": False,
        }


_WAIT = {
    "type": "number",
    "minimum": 0,
    "description": "seconds to wait for the outcome before answering with a run id to poll "
    "with `result` (default: the server's --wait)",
}
_CELL = {
    "cell_id": {"type": "string", "description": "the cell's id (see list_cells)"},
    "index": {"type": "integer", "minimum": 0, "description": "the cell's position"},
}

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "execute",
        "Run code on the session's persistent kernel (variables and imports stay between "
        "calls). The code is scanned first: a snippet the security policy blocks is not run "
        "and its findings come back. Returns text outputs, images as image content, and on "
        "failure the error with its class (syntax, runtime, import, environment...) and root "
        "cause. Past `timeout` the run is interrupted and the kernel's state is kept.",
        {
            "code": {"type": "string", "description": "the code to run"},
            "language": {"type": "string", "enum": ["python", "bash"], "default": "python"},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 86400,
                "description": "seconds before the run is interrupted "
                "(default: codeflow's execution.timeout)",
            },
            "wait": _WAIT,
        },
        ("code",),
    ),
    ToolSpec(
        "run_request",
        "Turn a plain-words request into working code with codeflow's own model and "
        "settings: generate, scan, run on the session's kernel, classify errors and fix, "
        "until it works or the attempts run out. Returns the run record (final code, "
        "outputs, every attempt).",
        {
            "request": {"type": "string", "description": "what the code should do"},
            "check": {"type": "string", "description": "Python run after the code; must pass"},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 50},
            "wait": _WAIT,
        },
        ("request",),
    ),
    ToolSpec(
        "state",
        "What the kernel holds (user variables with types, shapes and columns; example "
        "rows of DataFrames) and the environment (Python, installed data libraries).",
        {},
        read_only=True,
    ),
    ToolSpec(
        "preview",
        "A short preview of a data file relative to the kernel's working directory: kind, "
        "size, encoding, delimiter, header, row count and the first rows.",
        {"path": {"type": "string", "description": "the file, relative to the work dir"}},
        ("path",),
        read_only=True,
    ),
    ToolSpec(
        "history",
        "This session's runs (execute, run_request, run_cell: status, error, code) and the "
        "record of every call with what it was sent and answered, secrets redacted.",
        {"full": {"type": "boolean", "description": "whole run records instead of summaries"}},
        read_only=True,
    ),
    ToolSpec(
        "result",
        "The outcome of a run that was still going when its call answered (by run id).",
        {"run_id": {"type": "string"}, "wait": _WAIT},
        ("run_id",),
        read_only=True,
    ),
    ToolSpec(
        "list_cells",
        "The cells of the server's notebook: id, type, codeflow request or generated code, "
        "the last run's outcome, and the source.",
        {"max_chars": {"type": "integer", "minimum": 0, "description": "source per cell"}},
        read_only=True,
        notebook=True,
    ),
    ToolSpec(
        "write_cell",
        "Write code into the notebook as codeflow's write-back does: a `%%codeflow` request "
        "cell holding REQUEST, and below it a linked code cell with the code, with the run's "
        "history in the metadata (shown in the codeflow sidebar). Give `run_id` (an execute "
        "or run_request of this session) to write the code that ran; give `code` to write "
        "code that has not run (it is marked for the user's review). `cell_id` updates an "
        "existing request cell (or the code cell linked to it) instead of adding one.",
        {
            "request": {"type": "string", "description": "what the code does, in plain words"},
            "run_id": {"type": "string"},
            "code": {"type": "string"},
            "cell_id": {"type": "string", "description": "request or linked cell to update"},
            "index": {"type": "integer", "minimum": 0, "description": "where a new cell goes"},
        },
        ("request",),
        notebook=True,
    ),
    ToolSpec(
        "run_cell",
        "Run one notebook cell on the session's kernel and save its outputs into the "
        "notebook. A `%%codeflow` request cell runs its request through the generate-fix "
        "loop and writes the code back below it; a code cell is scanned and run like "
        "`execute`.",
        {**_CELL, "timeout": {"type": "number", "exclusiveMinimum": 0}, "wait": _WAIT},
        notebook=True,
    ),
)


# ------------------------------------------------------------------------------ replies


@dataclass
class Reply:
    """A tool's answer before it becomes MCP content: text blocks, images, structured data."""

    text: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: bool = False

    def joined(self) -> str:
        return "\n\n".join(t for t in self.text if t)


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def render_outputs(outputs: Sequence[Output], reply: Reply) -> None:
    """nbformat outputs into the reply: text (ANSI stripped, middle trimmed), images."""
    from .analysis import strip_ansi, trim_middle

    parts: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(_joined(out.get("text", "")))
        elif kind == "error":
            tb = "\n".join(out.get("traceback", ())) or f"{out.get('ename')}: {out.get('evalue')}"
            parts.append(tb + "\n")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data")
            if not isinstance(data, Mapping):
                continue
            image = next((m for m in IMAGE_MIMES if m in data), None)
            if image is not None:
                reply.images.append((image, _joined(data[image]).replace("\n", "")))
            elif "text/plain" in data:
                parts.append(_joined(data["text/plain"]) + "\n")
    text = strip_ansi("".join(parts))
    if text.strip():
        reply.text.append(trim_middle(text, TEXT_CHARS))


def without_images(obj: Any) -> Any:
    """A JSON-able copy with image payloads replaced by their size (for structured content)."""
    if isinstance(obj, Mapping):
        return {
            k: (
                f"<{k}: {len(_joined(v))} base64 chars>"
                if k in IMAGE_MIMES or k == "image/svg+xml"
                else without_images(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [without_images(v) for v in obj]
    return obj


def error_text(err: Any) -> str:
    """An AttemptError as the agent should read it: class, exception, root cause, line."""
    lines = [f"{err.category} error: {err.summary()}"]
    if err.root_cause:
        lines.append(f"root cause: {err.root_cause}")
    if err.line is not None:
        where = f"line {err.line}"
        lines.append(f"{where}: {err.source_line.strip()}" if err.source_line else where)
    return "\n".join(lines)


def findings_text(findings: Sequence[Finding], policy: str) -> str:
    from .security import format_findings

    return (
        f"Blocked by codeflow's security scanner (`{policy}` policy); nothing ran.\n"
        + format_findings(list(findings))
    )


# ------------------------------------------------------------------------------ session


@dataclass
class Job:
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
                raise _ToolError(f"unknown tool {name!r}")
            args = self._checked(spec, dict(arguments))
            handler: Callable[..., Awaitable[Reply]] = getattr(self, f"tool_{name}")
            reply = await handler(progress=progress, **args)
        except (_ToolError, CodeFlowError) as exc:
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
            raise _ToolError(
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
        from .models import FlowEvent

        pending: set[asyncio.Task[None]] = set()
        attempts = max_attempts or self.settings.improvement.max_attempts

        def on_event(event: FlowEvent) -> None:
            message = {
                "generating": f"attempt {event.attempt}: asking the model",
                "executing": f"attempt {event.attempt}: running",
                "install": f"installing {event.data.get('package')}",
                "attempt": f"attempt {event.attempt}: done",
            }.get(event.kind)
            if message is None or report is None:
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
            raise _ToolError(f"no run {run_id!r} in this session (see history)")
        return await self._collect(run_id, self.wait if wait is None else wait)

    # -- notebook --------------------------------------------------------------------------

    def _nb_path(self) -> Path:
        if self.notebook is None:
            raise _ToolError("this server has no notebook: start it with --notebook NB.ipynb")
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
                nb = read_notebook(path) if path.exists() else _new_notebook()
                answer = change(nb)
                nbformat.validate(nb)  # type: ignore[no-untyped-call]
                write_atomic(path, nbformat.writes(nb))  # type: ignore[no-untyped-call]
            return answer

        return await asyncio.to_thread(edit)

    async def _read(self) -> Any:
        def read() -> Any:
            from .nbfiles import read_notebook

            path = self._nb_path()
            return read_notebook(path) if path.exists() else _new_notebook()

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
            raise _ToolError("write_cell: give either run_id (a run of this session) or code")
        if not request.strip():
            raise _ToolError("write_cell: the request must say what the code does")
        if run_id is not None:
            if run_id not in self.runs:
                raise _ToolError(f"write_cell: no finished run {run_id!r} (see history)")
            record = dataclasses.replace(self.runs[run_id][1], request=request.strip())
            if not record.success:
                raise _ToolError(
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
        written = await self._edit(lambda nb: _write_back(nb, data, request, cell_id, index))
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
        position = _find_cell(nb, cell_id, index)
        cell = nb["cells"][position]
        the_id = str(cell.get("id", ""))
        if cell.get("cell_type") != "code":
            raise _ToolError(f"cell {the_id or position} is {cell.get('cell_type')}, not code")
        source = cell_source(cell)
        parts = split_request(source)
        if parts is not None:
            request = parts[1].strip()

            async def ask(run_id: str, report: Progress | None) -> Reply:
                record = await self._run_request(request, None, None, run_id, report)
                data = record.to_dict()
                written = await self._edit(lambda nb: _write_back(nb, data, None, the_id, None))
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
                await self._edit(lambda nb: _set_outputs(nb, the_id, position, outputs))
            return self._run_reply(record, "run_cell")

        return await self._job("run_cell", run, wait, progress)


class _ToolError(Exception):
    """A call the tool refuses (bad arguments, unknown run or cell): an error reply."""


def _new_notebook() -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _find_cell(nb: Any, cell_id: str | None, index: int | None) -> int:
    cells = nb["cells"]
    if cell_id is not None:
        for position, cell in enumerate(cells):
            if str(cell.get("id")) == cell_id:
                return position
        raise _ToolError(f"no cell with id {cell_id!r} (see list_cells)")
    if index is not None:
        if 0 <= index < len(cells):
            return index
        raise _ToolError(f"no cell at index {index}: the notebook has {len(cells)} cells")
    raise _ToolError("give cell_id or index")


def _write_back(
    nb: Any, record: dict[str, Any], request: str | None, cell_id: str | None, index: int | None
) -> dict[str, Any]:
    """Put `record` into `nb` as the magic's write-back does: the request cell (found by id,
    or through its linked code cell, or new) shows the record; its code goes below it."""
    import nbformat

    from .notebook import (
        MAGIC,
        META_KEY,
        apply_writeback,
        cell_source,
        ensure_cell_ids,
        new_cell_id,
        split_request,
    )
    from .report import record_bundle

    ensure_cell_ids(nb)
    cells = nb["cells"]
    if cell_id is not None:
        position = _find_cell(nb, cell_id, None)
        meta = cells[position].get("metadata", {}).get(META_KEY, {})
        origin = meta.get("generated_from") if isinstance(meta, Mapping) else None
        if origin:
            position = _find_cell(nb, str(origin), None)
        parts = split_request(cell_source(cells[position]))
        if parts is None or cells[position].get("cell_type") != "code":
            raise _ToolError(
                f"cell {cell_id} is no %%codeflow request cell nor code linked to one; "
                "leave cell_id out to add a new request cell"
            )
        if request is not None:  # the new request, under the cell's own magic line
            cells[position]["source"] = f"{MAGIC} {parts[0]}".rstrip() + f"\n{request.strip()}"
    else:
        cell = nbformat.v4.new_code_cell(source=f"{MAGIC}\n{(request or '').strip()}")  # type: ignore[no-untyped-call]
        existing = {str(c.get("id")) for c in cells}
        cell["id"] = new_cell_id()
        while cell["id"] in existing:
            cell["id"] = new_cell_id()
        position = len(cells) if index is None else min(index, len(cells))
        cells.insert(position, cell)
    target = cells[position]
    bundle = record_bundle(record)
    target["outputs"] = [
        nbformat.v4.new_output(  # type: ignore[no-untyped-call]
            "display_data",
            data=json.loads(json.dumps(bundle)),
            metadata={},  # plain JSON types
        )
    ]
    target["execution_count"] = None
    code_cell = apply_writeback(nb, position, record, mode="below")
    return {"request_cell": str(target["id"]), "code_cell": code_cell}


def _set_outputs(nb: Any, cell_id: str, position: int, outputs: list[Output]) -> None:
    """The outputs of a code cell just run (found again by id: the file may have changed)."""
    import nbformat

    if cell_id:
        position = _find_cell(nb, cell_id, None)
    cell = nb["cells"][position]
    cell["outputs"] = [nbformat.from_dict(dict(o)) for o in outputs]  # type: ignore[no-untyped-call]
    cell["execution_count"] = None


# ------------------------------------------------------------------------------ the server


def build_server(session: McpSession) -> Any:
    """The MCP server (the SDK's low-level `Server`) whose tools call into `session`."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from . import __version__

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=spec.name,
                    description=spec.description,
                    input_schema=spec.schema(),
                    annotations=types.ToolAnnotations(
                        read_only_hint=spec.read_only,
                        destructive_hint=False if spec.read_only else None,
                    ),
                )
                for spec in session.tools
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        async def progress(value: float, total: float | None, message: str) -> None:
            await ctx.session.report_progress(value, total, message)

        reply = await session.call(params.name, params.arguments or {}, progress)
        content: list[Any] = [types.TextContent(type="text", text=t) for t in reply.text if t]
        content += [
            types.ImageContent(type="image", data=data, mime_type=mime)
            for mime, data in reply.images
        ]
        return types.CallToolResult(
            content=content, structured_content=reply.data or None, is_error=reply.error
        )

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions="codeflow runs code on one persistent Jupyter kernel with a security "
        "scanner in front of it, classifies errors, and can turn plain-words requests into "
        "working code. Use `execute` for code you wrote, `run_request` to let codeflow write "
        "and fix it, `state`/`preview` to look before you write.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(session: McpSession) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(session)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await session.aclose()


TOKEN_ENV = "CODEFLOW_MCP_TOKEN"
"""The bearer token of the HTTP transport (a fresh random one, printed on stderr, when unset)."""


def require_token(app: Any, token: str) -> Any:
    """ASGI middleware: an HTTP request without `Authorization: Bearer TOKEN` gets a 401."""
    import hmac

    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong token\n"})
                return
        await app(scope, receive, send)

    return guarded


async def serve_http(session: McpSession, port: int, token: str, announce: bool) -> None:
    """Streamable HTTP on loopback only, every request carrying the bearer token."""
    import socket
    import sys

    import uvicorn

    host = "127.0.0.1"
    server = build_server(session)
    app = require_token(server.streamable_http_app(host=host), token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    url = f"http://{host}:{sock.getsockname()[1]}/mcp"
    print(f"codeflow mcp: streamable HTTP on {url}", file=sys.stderr, flush=True)
    if announce:
        print(f"codeflow mcp: token {token} (set {TOKEN_ENV} to choose it)", file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()
        await session.aclose()


# ------------------------------------------------------------------------------ the command


def cmd_mcp(args: argparse.Namespace) -> int:
    from .commands import cache_mode_from_args, settings_from_args
    from .errors import UsageError

    try:
        import mcp  # noqa: F401
    except ImportError:
        raise UsageError(
            "codeflow mcp needs the MCP SDK: pip install 'codeflow-magic[mcp]'"
        ) from None
    settings = settings_from_args(args)
    if args.notebook is not None and args.notebook.suffix != ".ipynb":
        raise UsageError(f"--notebook must be a .ipynb file: {args.notebook}")
    session = McpSession(
        settings,
        backend=args.backend,
        work_dir=args.work_dir,
        cache_mode=cache_mode_from_args(args),
        notebook=args.notebook,
        wait=args.wait,
    )
    if args.http is not None and not 0 <= args.http <= 65535:
        raise UsageError(f"--http: {args.http} is no port (0 to 65535)")
    if args.http is None:
        asyncio.run(serve_stdio(session))
        return 0
    import os
    import secrets

    token = os.environ.get(TOKEN_ENV, "")
    asyncio.run(serve_http(session, args.http, token or secrets.token_urlsafe(24), not token))
    return 0


def register(sub: Any) -> None:
    from .commands import add_flow_options

    p = sub.add_parser(
        "mcp",
        help="serve codeflow's kernel, scanner and loop to coding agents (MCP, stdio)",
        description="An MCP server on stdin/stdout: tools execute, run_request, state, "
        "preview, history, result (and list_cells, write_cell, run_cell with --notebook) on "
        "one persistent kernel per session, behind codeflow's security scanner.",
    )
    add_flow_options(p)
    p.add_argument("--notebook", type=Path, help="a notebook the notebook tools read and write")
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long a call waits before answering with a run id to poll "
        f"(default {DEFAULT_WAIT_S:g})",
    )
    p.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help=f"serve streamable HTTP on 127.0.0.1:PORT (0: any free port) instead of stdio; "
        f"clients send `Authorization: Bearer ${TOKEN_ENV}`",
    )
    p.set_defaults(func=cmd_mcp)


__all__ = ["TOOLS", "McpSession", "build_server", "register"]
