"""Text renderings of one run record: markdown (the seeds' response shape), plain and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .models import Output, PlanRecord, RunRecord
from .report import dollars, plan_text
from .text import joined

FORMATS = ("markdown", "json", "plain")

RESULT_CHARS = 8000


def outputs_text(outputs: Sequence[Output], limit: int = RESULT_CHARS) -> str:
    """What a person reads of the outputs in a terminal: text, with rich parts named."""
    parts: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(joined(out.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            rich = [m for m in data if m != "text/plain"]
            if "text/plain" in data and not any(m.startswith("image/") for m in rich):
                parts.append(joined(data["text/plain"]).rstrip("\n") + "\n")
            for mime in rich:
                size = len(joined(data[mime]))
                parts.append(f"[{mime} output, {size:,} bytes]\n")
        elif kind == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}\n")
    text = "".join(parts)
    if len(text) > limit:
        text = (
            text[: limit // 2]
            + f"\n... [{len(text) - limit:,} characters not shown] ...\n"
            + text[-limit // 2 :]
        )
    return text


def to_json(record: RunRecord, indent: int | None = 2) -> str:
    return json.dumps(record.to_dict(), indent=indent, ensure_ascii=False)


def _lang_name(language: str) -> str:
    return "Bash" if language == "bash" else "Python"


def to_markdown(record: RunRecord, *, history: bool = True, metrics: bool = True) -> str:
    lines: list[str] = []
    fence = "bash" if record.language == "bash" else "python"
    fixes = max(0, len([a for a in record.attempts if a.kind != "generate"]))
    if record.success:
        lines.append("**✅ Execution Successful**")
        if fixes:
            lines.append(f"\n**✅ Success after {fixes} improvement attempt(s)!**")
        lines.append(f"\n**Generated {_lang_name(record.language)} Code:**")
    else:
        err = record.last_error
        lines.append("**❌ Execution Failed**")
        if err is not None:
            lines.append(f"\n**Error:** {err.summary()}")
            lines.append(f"\n**Error Type:** {err.category}")
            if err.root_cause:
                lines.append(f"**Root Cause:** {err.root_cause}")
        lines.append(f"**Improvement Attempts:** {fixes}")
        lines.append(f"**Stopped because:** {record.stop_reason.replace('_', ' ')}")
        if record.error:
            lines.append(f"**Cause:** {record.error}")
        lines.append(f"\n**Last {_lang_name(record.language)} Code:**")
    lines.append(f"```{fence}\n{record.final_code.rstrip()}\n```")
    result = outputs_text(record.outputs)
    if result.strip():
        lines.append("\n**Execution Result:**")
        lines.append(f"```\n{result.rstrip()}\n```")
    if history and len(record.attempts) > 1:
        lines.append("\n**Improvement History:**")
        for attempt in record.attempts:
            lines.append(f"**Attempt {attempt.number}** ({attempt.kind}):")
            if attempt.error is not None:
                lines.append(f"- **Error:** [{attempt.error.category}] {attempt.error.summary()}")
            elif attempt.success:
                kept = "" if attempt.kept else " (not kept)"
                lines.append(f"- **Result:** succeeded{kept}")
            fix = _fix_line(attempt.explanation)
            if fix:
                lines.append(f"- **Fix:** {fix}")
    if metrics:
        m = record.metrics
        lines.append("\n**Performance:**")
        lines.append(f"- Generation: {m.generation_s:.2f}s")
        lines.append(f"- Execution: {m.execution_s:.2f}s")
        if m.improvement_s:
            lines.append(f"- Improvement: {m.improvement_s:.2f}s")
        lines.append(f"- Total: {m.total_s:.2f}s")
        cached = f", {m.cache_hits} from cache" if m.cache_hits else ""
        lines.append(
            f"- Tokens: {m.input_tokens:,} in / {m.output_tokens:,} out ({m.llm_calls} model calls{cached})"
        )
        if m.cache_read_tokens or m.cache_write_tokens:
            lines.append(
                f"- Prompt cache: {m.cache_read_tokens:,} tokens read / "
                f"{m.cache_write_tokens:,} written"
            )
        lines.append(f"- Cost: {dollars(m.cost_usd)}")
    return "\n".join(lines) + "\n"


def _fix_line(explanation: str) -> str:
    from .prompts import parse_explanation

    root, fix = parse_explanation(explanation)
    if fix:
        return fix
    return root


def to_plain(record: RunRecord, *, history: bool = True, metrics: bool = True) -> str:
    lines: list[str] = []
    status = "SUCCESS" if record.success else "FAILED"
    lines.append(f"{status} after {len(record.attempts)} attempt(s) [{record.language}]")
    err = record.last_error
    if not record.success and err is not None:
        lines.append(f"error: {err.category}: {err.summary()}")
        if err.root_cause:
            lines.append(f"root cause: {err.root_cause}")
    if record.error:
        lines.append(f"stopped: {record.stop_reason.replace('_', ' ')}: {record.error}")
    lines.append("--- code ---")
    lines.append(record.final_code.rstrip())
    result = outputs_text(record.outputs)
    if result.strip():
        lines.append("--- result ---")
        lines.append(result.rstrip())
    if history and len(record.attempts) > 1:
        lines.append("--- history ---")
        for a in record.attempts:
            what = f"{a.error.category}: {a.error.summary()}" if a.error else "ok"
            lines.append(f"attempt {a.number} ({a.kind}): {what}")
    if metrics:
        m = record.metrics
        lines.append(
            f"--- time {m.total_s:.2f}s (generation {m.generation_s:.2f}s, execution "
            f"{m.execution_s:.2f}s, improvement {m.improvement_s:.2f}s); tokens "
            f"{m.input_tokens} in / {m.output_tokens} out; cost {dollars(m.cost_usd)}"
        )
    return "\n".join(lines) + "\n"


def render(record: RunRecord, fmt: str, *, history: bool = True, metrics: bool = True) -> str:
    if fmt == "json":
        return to_json(record) + "\n"
    if fmt == "plain":
        return to_plain(record, history=history, metrics=metrics)
    return to_markdown(record, history=history, metrics=metrics)


def render_plan(plan: PlanRecord, fmt: str, *, history: bool = True, metrics: bool = True) -> str:
    """A step plan: JSON as the record is, or each step's run as `render` shows a run."""
    import json

    if fmt == "json":
        return json.dumps(plan.to_dict(), indent=2, default=str) + "\n"

    parts = [plan_text(plan)]
    for step in plan.steps:
        heading = f"Step {step.number}: {step.title}"
        parts.append(f"## {heading}" if fmt == "markdown" else heading)
        if step.prose:
            parts.append(step.prose)
        if step.record is None:
            parts.append(f"(not run)\n{step.code}")
            continue
        parts.append(render(step.record, fmt, history=history, metrics=metrics).rstrip())
    return "\n\n".join(parts) + "\n"
