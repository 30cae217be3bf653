"""Rendering of runs and notebooks: status lines, the run-record bundle and notebook reports.

The HTML uses inline styles only and no script, because the same bundle must read well in
JupyterLab, classic Notebook, VS Code, nbconvert HTML and GitHub's notebook viewer, which strip
or ignore anything else. The history is a `<details>` element, closed by default.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .models import PLAN_MIME, RECORD_MIME, Metrics, PlanRecord, RunRecord
from .text import strip_ansi

TRACEBACK_LINES = 12
CODE_STYLE = (
    "background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:6px 8px;"
    "margin:4px 0;white-space:pre-wrap;font-family:monospace;font-size:12px;color:#24292f"
)
ERROR_STYLE = CODE_STYLE.replace("#f6f8fa", "#fff5f5").replace("#d0d7de", "#f3b4b4")


def dollars(value: float) -> str:
    """A cost in US dollars: cents would hide what one request costs, so small sums keep four
    decimals."""
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def _record(record: RunRecord | Mapping[str, Any]) -> RunRecord:
    return record if isinstance(record, RunRecord) else RunRecord.from_dict(dict(record))


def stored_record(record: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The run record as a notebook keeps it: small whatever the code printed or raised.

    The final outputs stay (`outputs`, the cell shows them too); each attempt keeps its code,
    error and timings but not its outputs, which only repeated the final ones or showed a
    failure the error already describes. Error messages and causes are clipped like in a
    fix prompt, so a megabyte exception message does not land in the file several times.
    """
    from .prompts import ERROR_CHARS, clip

    data = _record(record).to_dict()
    for attempt in data.get("attempts", ()):
        attempt["outputs"] = []
        err = attempt.get("error")
        if isinstance(err, dict):
            for key in ("evalue", "root_cause", "source_line"):
                if isinstance(err.get(key), str):
                    err[key] = clip(err[key], ERROR_CHARS)
    return data


def status_line(record: RunRecord | Mapping[str, Any]) -> str:
    """One compact line: outcome, attempts, time, tokens (and cache hits when any)."""
    rec = _record(record)
    n = len(rec.attempts)
    noun = "attempt" if n == 1 else "attempts"
    m = rec.metrics
    if rec.stop_reason == "awaiting_review":
        parts = ["awaiting review: nothing ran yet (approve to run it)"]
        findings = [f for a in rec.attempts for f in a.findings]
        if findings:
            parts.append(f"{len(findings)} scanner finding(s)")
        return " · ".join(parts)
    parts = [
        ("✅ succeeded" if rec.success else "❌ failed") + f" after {n} {noun}",
        seconds(m.total_s),
        f"{m.input_tokens + m.output_tokens} tokens",
    ]
    if m.cost_usd > 0:
        parts.append(dollars(m.cost_usd))
    if m.cache_hits:
        parts.append(f"{m.cache_hits} from cache")
    if not rec.success:
        err = rec.last_error
        if err is not None:
            parts.append(f"last error: {err.category} {err.summary()}"[:200])
        if rec.stop_reason and rec.stop_reason != "max_attempts":
            parts.append(f"stopped: {rec.stop_reason.replace('_', ' ')}")
    return " · ".join(parts)


def trim_traceback(text: str, lines: int = TRACEBACK_LINES) -> str:
    rows = strip_ansi(text).rstrip().splitlines()
    if len(rows) <= lines:
        return "\n".join(rows)
    return "\n".join(["…", *rows[-lines:]])


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _attempt_html(attempt: Mapping[str, Any]) -> str:
    ok = bool(attempt.get("success"))
    err = attempt.get("error") or {}
    head = f"Attempt {attempt.get('number')} ({_esc(attempt.get('kind', 'generate'))}): " + (
        '<span style="color:#1a7f37">✓ ok</span>'
        if ok
        else f'<span style="color:#cf222e">✗ {_esc(err.get("category", "error"))} error</span>'
    )
    facts = [
        f"generation {seconds(float(attempt.get('generation_s', 0)))}",
        f"execution {seconds(float(attempt.get('execution_s', 0)))}",
        f"tokens {int(attempt.get('input_tokens', 0))} in / {int(attempt.get('output_tokens', 0))} out",
    ]
    if attempt.get("cached"):
        facts.append("from cache")
    parts = [
        f'<div style="margin:6px 0 10px 0"><div style="font-weight:600">{head}</div>',
        f'<div style="color:#57606a;font-size:11px">{_esc(" · ".join(facts))}</div>',
        f'<pre style="{CODE_STYLE}">{_esc(attempt.get("code", ""))}</pre>',
    ]
    if err:
        summary = f"{err.get('ename', '')}: {err.get('evalue', '')}".strip(": ")
        parts.append(f'<div style="color:#cf222e">{_esc(summary)}</div>')
        tb = trim_traceback(str(err.get("traceback", "")))
        if tb:
            parts.append(f'<pre style="{ERROR_STYLE}">{_esc(tb)}</pre>')
        if err.get("root_cause"):
            parts.append(f"<div>Cause: {_esc(err['root_cause'])}</div>")
    if attempt.get("rolled_back"):
        parts.append(f"<div>{_esc(rollback_text(attempt))}</div>")
    findings = list(attempt.get("findings") or ()) + list((err or {}).get("findings") or ())
    if findings:
        items = "".join(
            f"<li>{_esc(f.get('severity'))} {_esc(f.get('rule'))}"
            f"{' line ' + _esc(f.get('line')) if f.get('line') else ''}: {_esc(f.get('message'))}</li>"
            for f in findings
        )
        parts.append(f'<div>Scanner findings:<ul style="margin:2px 0">{items}</ul></div>')
    if attempt.get("explanation"):
        parts.append(
            f'<div style="color:#57606a">Model: {_esc(str(attempt["explanation"])[:2000])}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def rollback_text(attempt: Mapping[str, Any]) -> str:
    """What the rollback after a failed attempt did, in one sentence."""
    kept = [str(k) for k in attempt.get("kept_changes") or ()]
    text = "Its changes to variables were undone"
    return text + (f"; not undone: {'; '.join(kept)}" if kept else "")


def record_html_status(record: RunRecord | Mapping[str, Any]) -> str:
    """The status line as HTML.

    The mark is a plain check or cross (in every common text font) rather than the emoji of
    the text line, which renders as an empty box where no emoji font is installed.
    """
    rec = _record(record)
    colour = "#1a7f37" if rec.success else "#cf222e"
    text = status_line(rec)
    words = text.split(" ", 1)[1] if text.startswith(("✅ ", "❌ ")) else text
    mark = "✓" if rec.success else "✗"
    if rec.stop_reason == "awaiting_review":
        colour, mark = "#9a6700", "…"
    return (
        f'<div class="codeflow-status" style="font-family:sans-serif;font-size:13px;'
        f'color:{colour};font-weight:600"><span aria-hidden="true">{mark}</span> '
        f"{_esc(words)}</div>"
    )


def record_html(record: RunRecord | Mapping[str, Any]) -> str:
    """Status line plus the collapsible attempt history (closed by default)."""
    rec = _record(record)
    data = rec.to_dict()
    m = rec.metrics
    phases = (
        f"generation {seconds(m.generation_s)} · execution {seconds(m.execution_s)}"
        f" · improvement {seconds(m.improvement_s)} · {m.llm_calls} model calls"
    )
    attempts = "".join(_attempt_html(a) for a in data["attempts"])
    errors = [a.error.ename for a in rec.attempts if a.error is not None]
    named = f"; errors: {', '.join(errors)}" if errors else ""
    status = record_html_status(rec)
    return (
        '<div class="codeflow-record" style="font-family:sans-serif;font-size:13px">'
        f"{status}"
        '<details style="margin-top:4px"><summary style="cursor:pointer;color:#57606a">'
        f"History: {len(rec.attempts)} attempt(s){_esc(named)} · model {_esc(rec.model)}"
        "</summary>"
        f'<div style="padding-left:12px"><div>Request: {_esc(rec.request)}</div>'
        f'<div style="color:#57606a;font-size:11px">{_esc(phases)}</div>'
        f"{attempts}</div></details></div>"
    )


def record_text(record: RunRecord | Mapping[str, Any]) -> str:
    """Plain-text fallback: status line and one line per attempt."""
    rec = _record(record)
    lines = [status_line(rec)]
    for attempt in rec.attempts:
        if attempt.success:
            lines.append(f"  attempt {attempt.number} ({attempt.kind}): ok")
        else:
            err = attempt.error
            what = f"{err.category} {err.summary()}" if err else "not run"
            lines.append(f"  attempt {attempt.number} ({attempt.kind}): {what}"[:300])
            if attempt.rolled_back:
                lines.append(f"    {rollback_text(attempt.to_dict())}"[:400])
    return "\n".join(lines)


def record_bundle(record: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """The one display_data bundle carrying a run and its status line.

    JupyterLab with the extension renders the machine record (status line and history);
    every other frontend (classic Notebook, VS Code, nbconvert, GitHub) picks the HTML or the
    text, which carry the same status line, so the status appears exactly once everywhere.
    """
    data = stored_record(record)
    rec = RunRecord.from_dict(data)
    return {
        RECORD_MIME: data,
        "text/html": record_html(rec),
        "text/plain": record_text(rec),
    }


def plan_status(plan: PlanRecord) -> str:
    """One line for a step plan: outcome, steps, time, tokens, cost."""
    m = plan.metrics
    ran = sum(1 for s in plan.steps if s.state == "ok")
    if plan.success:
        head = f"✓ plan of {len(plan.steps)} steps done"
    elif not plan.steps:
        head = f"✗ no usable plan: {plan.error or plan.stop_reason}"
    else:
        failed = next((s for s in plan.steps if s.state == "failed"), None)
        where = f"step {failed.number} failed" if failed else plan.stop_reason.replace("_", " ")
        head = f"✗ plan stopped: {where} ({ran} of {len(plan.steps)} steps ran)"
    parts = [head, seconds(m.total_s), f"{m.input_tokens + m.output_tokens} tokens"]
    if m.cost_usd > 0:
        parts.append(dollars(m.cost_usd))
    if m.cache_hits:
        parts.append(f"{m.cache_hits} from cache")
    return " · ".join(parts)


def plan_text(plan: PlanRecord) -> str:
    lines = [plan_status(plan)]
    for step in plan.steps:
        state = {"ok": "ok", "failed": "failed", "not_run": "not run"}.get(step.state, step.state)
        tries = len(step.record.attempts) if step.record else 0
        extra = f" after {tries} attempts" if tries > 1 else ""
        lines.append(f"  step {step.number} {step.title}: {state}{extra}")
    return "\n".join(lines)


def plan_html(plan: PlanRecord) -> str:
    colour = "#1a7f37" if plan.success else "#cf222e"
    rows = "".join(
        f"<li>Step {s.number}: {_esc(s.title)} · "
        f"{_esc({'ok': 'ok', 'failed': 'failed', 'not_run': 'not run'}.get(s.state, s.state))}"
        + (f"<div>{record_html(s.record)}</div>" if s.record else "")
        + "</li>"
        for s in plan.steps
    )
    return (
        '<div class="codeflow-plan" style="font-family:sans-serif;font-size:13px">'
        f'<div style="color:{colour};font-weight:600">{_esc(plan_status(plan))}</div>'
        f'<ol style="margin:4px 0;padding-left:18px;list-style:none">{rows}</ol></div>'
    )


def plan_bundle(plan: PlanRecord) -> dict[str, Any]:
    """The display_data bundle of a step plan (the notebook's write-back reads the JSON)."""
    return {
        PLAN_MIME: plan.to_dict(),
        "text/html": plan_html(plan),
        "text/plain": plan_text(plan),
    }


# ---------------------------------------------------------------- notebook outputs


def output_html(out: Mapping[str, Any]) -> str:
    """One nbformat output as self-contained HTML (images as data URIs)."""
    kind = out.get("output_type")
    if kind == "stream":
        style = ERROR_STYLE if out.get("name") == "stderr" else CODE_STYLE
        text = strip_ansi("".join(out.get("text", "")))
        return f'<pre style="{style}">{_esc(text)}</pre>'
    if kind == "error":
        tb = "\n".join(out.get("traceback", ())) or f"{out.get('ename')}: {out.get('evalue')}"
        return f'<pre style="{ERROR_STYLE}">{_esc(trim_traceback(tb, 40))}</pre>'
    data = out.get("data", {})
    if not isinstance(data, Mapping):
        return ""
    if RECORD_MIME in data:
        return ""  # the record is rendered by the report itself
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            b64 = "".join(data[mime]).replace("\n", "")
            return f'<img style="max-width:100%" src="data:{mime};base64,{b64}"/>'
    if "image/svg+xml" in data:
        import base64

        svg = "".join(data["image/svg+xml"]).encode()
        b64 = base64.b64encode(svg).decode()
        return f'<img style="max-width:100%" src="data:image/svg+xml;base64,{b64}"/>'
    if "text/html" in data:
        return f"<div>{''.join(data['text/html'])}</div>"
    if "text/plain" in data:
        return f'<pre style="{CODE_STYLE}">{_esc(strip_ansi("".join(data["text/plain"])))}</pre>'
    return ""


def output_markdown(out: Mapping[str, Any]) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return "```\n" + strip_ansi("".join(out.get("text", ""))).rstrip() + "\n```"
    if kind == "error":
        return f"```\n{out.get('ename')}: {out.get('evalue')}\n```"
    data = out.get("data", {})
    if not isinstance(data, Mapping) or RECORD_MIME in data:
        return ""
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            b64 = "".join(data[mime]).replace("\n", "")
            return f"![output](data:{mime};base64,{b64})"
    if "text/plain" in data:
        return "```\n" + strip_ansi("".join(data["text/plain"])).rstrip() + "\n```"
    return ""


def is_status_output(out: Mapping[str, Any]) -> bool:
    """The magic's own record display (left out of "the code's outputs")."""
    data = out.get("data")
    return isinstance(data, Mapping) and RECORD_MIME in data


# ---------------------------------------------------------------- notebook reports


@dataclass
class RequestRow:
    index: int
    request: str
    record: RunRecord | None
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class NotebookSummary:
    name: str
    cells: int
    code_cells: int
    rows: list[RequestRow]
    errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.rows if r.record is not None and r.record.success)

    def totals(self) -> dict[str, float]:
        keys = ("generation_s", "execution_s", "improvement_s", "total_s")
        out: dict[str, float] = dict.fromkeys(keys, 0.0)
        out.update(attempts=0, tokens=0, cache_hits=0, llm_calls=0, cost_usd=0.0)
        for row in self.rows:
            if row.record is None:
                continue
            m = row.record.metrics
            for key in keys:
                out[key] += float(getattr(m, key))
            out["attempts"] += len(row.record.attempts)
            out["tokens"] += m.input_tokens + m.output_tokens
            out["cache_hits"] += m.cache_hits
            out["llm_calls"] += m.llm_calls
            out["cost_usd"] += m.cost_usd
        return out


def summarize(nb: Any, name: str, errors: Sequence[str] = ()) -> NotebookSummary:
    from .notebook import find_plan, history

    rows: list[RequestRow] = []
    for item in history(nb):
        cell = nb["cells"][item["index"]]
        plan = find_plan(cell.get("outputs"))
        if plan is not None:  # a step plan: one row per step
            rows += _plan_rows(item["index"], item["request"], plan)
            continue
        data = item["record"]
        record = RunRecord.from_dict(data) if data else None
        if record is not None:  # the final attempt's outputs, whatever the cell shows
            outputs = [dict(o) for o in record.outputs]
        else:
            outputs = [dict(o) for o in cell.get("outputs", ()) if not is_status_output(o)]
        rows.append(RequestRow(item["index"], item["request"], record, outputs))
    code_cells = sum(1 for c in nb["cells"] if c.get("cell_type") == "code")
    return NotebookSummary(name, len(nb["cells"]), code_cells, rows, list(errors))


def _plan_rows(index: int, request: str, plan: Mapping[str, Any]) -> list[RequestRow]:
    """A plan's steps as report rows ("not run" for the steps after a failed one); a plan
    the model never gave is one row with a failed run that says why."""
    first = request.splitlines()[0][:80] if request else ""
    rows: list[RequestRow] = []
    for step in plan.get("steps", ()):
        data = step.get("record")
        record = RunRecord.from_dict(data) if isinstance(data, dict) else None
        label = f"{first} · step {step.get('number')}: {step.get('title', '')}"
        rows.append(
            RequestRow(index, label, record, [dict(o) for o in record.outputs] if record else [])
        )
    if not rows:
        error = str(plan.get("error") or "no plan")
        rows.append(
            RequestRow(
                index,
                f"{first} · plan",
                RunRecord(
                    request=request,
                    language="python",
                    model=str(plan.get("model", "")),
                    success=False,
                    final_code="",
                    outputs=(),
                    attempts=(),
                    metrics=Metrics.from_dict(plan.get("metrics", {})),
                    stop_reason=str(plan.get("stop_reason", "bad_plan")),
                    error=error,
                ),
            )
        )
    return rows


def _error_classes(record: RunRecord) -> str:
    classes = [a.error.category for a in record.attempts if a.error is not None]
    return ", ".join(classes) if classes else "none"


def _summary_table_html(summaries: Iterable[NotebookSummary]) -> str:
    head = (
        "<tr><th>Notebook</th><th>Cells</th><th>Requests</th><th>Succeeded</th>"
        "<th>Attempts</th><th>Generation</th><th>Execution</th><th>Improvement</th>"
        "<th>Total</th><th>Tokens</th><th>Cost</th><th>Cache hits</th></tr>"
    )
    rows = []
    for s in summaries:
        t = s.totals()
        rows.append(
            f"<tr><td>{_esc(s.name)}</td><td>{s.cells}</td><td>{len(s.rows)}</td>"
            f"<td>{s.succeeded}/{len(s.rows)}</td><td>{int(t['attempts'])}</td>"
            f"<td>{seconds(t['generation_s'])}</td><td>{seconds(t['execution_s'])}</td>"
            f"<td>{seconds(t['improvement_s'])}</td><td>{seconds(t['total_s'])}</td>"
            f"<td>{int(t['tokens'])}</td><td>{dollars(t['cost_usd'])}</td>"
            f"<td>{int(t['cache_hits'])}</td></tr>"
        )
    return f'<table style="{TABLE_STYLE}">{head}{"".join(rows)}</table>'


TABLE_STYLE = "border-collapse:collapse;font-size:13px;margin:8px 0"
TD_STYLE = "border:1px solid #d0d7de;padding:3px 8px;text-align:left;white-space:nowrap"
WRAP_TD = f'<td style="{TD_STYLE};white-space:normal">'
"""The request column wraps; numbers and short words stay on one line."""


def _result_mark(success: bool) -> str:
    colour, mark, word = ("#1a7f37", "✓", "ok") if success else ("#cf222e", "✗", "failed")
    return f'<span style="color:{colour};font-weight:600">{mark} {word}</span>'


def _style_table(markup: str) -> str:
    return markup.replace("<td>", f'<td style="{TD_STYLE}">').replace(
        "<th>", f'<th style="{TD_STYLE};background:#f6f8fa">'
    )


def notebook_report_html(summaries: Sequence[NotebookSummary], title: str = "codeflow run") -> str:
    """A self-contained HTML page: summary table, then per request code, outputs and history."""
    body = [f"<h1>{_esc(title)}</h1>", _style_table(_summary_table_html(summaries))]
    for s in summaries:
        body.append(f"<h2>{_esc(s.name)}</h2>")
        for err in s.errors:
            body.append(f'<pre style="{ERROR_STYLE}">{_esc(err)}</pre>')
        if s.rows:
            head = (
                "<tr><th>Cell</th><th>Request</th><th>Result</th><th>Attempts</th>"
                "<th>Error classes</th><th>Time</th><th>Tokens</th><th>Cache hits</th></tr>"
            )
            rows = []
            for r in s.rows:
                rec = r.record
                if rec is None:
                    rows.append(
                        f"<tr><td>{r.index + 1}</td>{WRAP_TD}{_esc(r.request[:120])}</td>"
                        "<td>not run</td><td></td><td></td><td></td><td></td><td></td></tr>"
                    )
                    continue
                m = rec.metrics
                rows.append(
                    f"<tr><td>{r.index + 1}</td>{WRAP_TD}{_esc(r.request[:120])}</td>"
                    f"<td>{_result_mark(rec.success)}</td><td>{len(rec.attempts)}</td>"
                    f"<td>{_esc(_error_classes(rec))}</td><td>{seconds(m.total_s)}</td>"
                    f"<td>{m.input_tokens + m.output_tokens}</td><td>{m.cache_hits}</td></tr>"
                )
            body.append(_style_table(f'<table style="{TABLE_STYLE}">{head}{"".join(rows)}</table>'))
        for r in s.rows:
            body.append(
                f"<h3>Cell {r.index + 1}: {_esc(r.request.splitlines()[0][:120] if r.request else '')}</h3>"
            )
            if r.record is None:
                body.append("<p>Not run.</p>")
                continue
            body.append(
                f'<h4>Final code</h4><pre style="{CODE_STYLE}">{_esc(r.record.final_code)}</pre>'
            )
            outs = "".join(output_html(o) for o in r.outputs)
            if outs:
                body.append(f"<h4>Outputs</h4>{outs}")
            body.append(record_html(r.record))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:1100px;margin:16px auto;padding:0 12px">'
        + "\n".join(body)
        + "</body></html>\n"
    )


def notebook_report_markdown(
    summaries: Sequence[NotebookSummary], title: str = "codeflow run"
) -> str:
    lines = [
        f"# {title}",
        "",
        "| Notebook | Cells | Requests | Succeeded | Attempts | Generation | Execution "
        "| Improvement | Total | Tokens | Cost | Cache hits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        t = s.totals()
        lines.append(
            f"| {s.name} | {s.cells} | {len(s.rows)} | {s.succeeded}/{len(s.rows)} "
            f"| {int(t['attempts'])} | {seconds(t['generation_s'])} | {seconds(t['execution_s'])} "
            f"| {seconds(t['improvement_s'])} | {seconds(t['total_s'])} | {int(t['tokens'])} "
            f"| {dollars(t['cost_usd'])} | {int(t['cache_hits'])} |"
        )
    for s in summaries:
        lines += ["", f"## {s.name}", ""]
        lines += [f"    {line}" for err in s.errors for line in err.splitlines()]
        for r in s.rows:
            first = r.request.splitlines()[0] if r.request else ""
            lines += ["", f"### Cell {r.index + 1}: {first}", ""]
            if r.record is None:
                lines.append("Not run.")
                continue
            rec = r.record
            lines += [status_line(rec), "", f"```{rec.language}", rec.final_code.rstrip(), "```"]
            for out in r.outputs:
                text = output_markdown(out)
                if text:
                    lines += ["", text]
            lines += ["", "<details><summary>History</summary>", ""]
            for a in rec.attempts:
                err = a.error
                what = (
                    "ok" if a.success else (f"{err.category} {err.summary()}" if err else "failed")
                )
                lines += [
                    f"**Attempt {a.number}** ({a.kind}): {what} · generation "
                    f"{seconds(a.generation_s)} · execution {seconds(a.execution_s)} · "
                    f"{a.input_tokens + a.output_tokens} tokens",
                    "",
                    f"```{a.language}",
                    a.code.rstrip(),
                    "```",
                    "",
                ]
            lines.append("</details>")
    return "\n".join(lines) + "\n"
