"""The MCP tools as a client sees them, and the shape of their answers.

What `codeflow mcp` advertises (names, descriptions, JSON schemas) and how a tool's answer
(`Reply`) is put together from a run's outputs, error and findings. Kept apart from the session
so the advertised contract and the reply formatting can be read (and tested) on their own;
nothing here imports the MCP SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Finding, Output

TEXT_CHARS = 20_000
"""At most this much text of a call's outputs goes back to the client (middle trimmed)."""
IMAGE_MIMES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")
DEFAULT_WAIT_S = 100.0
"""How long a call waits before it answers with a run id to poll (below the 120 s request
timeout several clients use)."""

Progress = Callable[[float, float | None, str], Awaitable[None]]
"""`(progress, total, message)`: sends one MCP progress notification."""


# ------------------------------------------------------------------------------ tools


@dataclass(frozen=True)
class ToolSpec:
    """One tool as advertised: `read_only` becomes the MCP hint, `notebook` needs --notebook."""

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
    """nbformat text fields may be a string or a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value)


def render_outputs(outputs: Sequence[Output], reply: Reply) -> None:
    """nbformat outputs into the reply: text (ANSI stripped, middle trimmed), images."""
    from .analysis import trim_middle
    from .text import strip_ansi

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
    """Why a snippet was refused: the agent must see that nothing ran, and what to change."""
    from .security import format_findings

    return (
        f"Blocked by codeflow's security scanner (`{policy}` policy); nothing ran.\n"
        + format_findings(list(findings))
    )


class ToolError(Exception):
    """A call the tool refuses (bad arguments, unknown run or cell): an error reply."""
