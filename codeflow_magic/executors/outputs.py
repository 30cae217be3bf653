"""Kernel messages to nbformat outputs, output caps and prompt text.

Pure functions and one small state machine (`OutputCollector`) so that the rules — how streams
merge, what a flood leaves behind, what the model gets to read — are testable without a kernel.
The collector stays memory-bounded while a flood streams in: past the head budget only a tail
window of stream text is kept, so `print('x' * 10**8)` never sits in memory twice.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import Output

__all__ = [
    "OutputCollector",
    "cap_text",
    "drop_marker",
    "output_text_for_prompt",
    "strip_ansi",
]

_ANSI_RE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]            # CSI: colours, cursor moves
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\) # OSC: titles, hyperlinks
    | \x1b[@-Z\\-_]                     # two-byte escapes
    """,
    re.VERBOSE,
)

_OUTPUT_MSG_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})


def strip_ansi(text: str) -> str:
    """Remove terminal colour and control sequences (IPython tracebacks are full of them)."""
    return _ANSI_RE.sub("", text)


def drop_marker(dropped: int) -> str:
    """The line that stands where output was cut out."""
    return f"... [codeflow: {dropped:,} characters dropped] ..."


_MARKER_RE = re.compile(r"\.\.\. \[codeflow: ([\d,]+) characters dropped\] \.\.\.")


def marked_drops(outputs: Iterable[Mapping[str, Any]]) -> int:
    """Characters that a cap upstream (the kernel's own) reported dropping in stream text."""
    total = 0
    for out in outputs:
        if out.get("output_type") == "stream":
            for m in _MARKER_RE.finditer(_join(out.get("text", ""))):
                total += int(m.group(1).replace(",", ""))
    return total


def cap_text(text: str, max_chars: int) -> tuple[str, int]:
    """Keep the head and the tail of `text` within about `max_chars`; returns (text, dropped).

    The head shows how a run started, the tail how it ended (usually where the error is), so
    both survive and the middle goes.
    """
    if max_chars <= 0:
        return ("", len(text)) if text else ("", 0)
    if len(text) <= max_chars:
        return text, 0
    head_len = max_chars // 2
    tail_len = max_chars - head_len
    dropped = len(text) - head_len - tail_len
    head, tail = text[:head_len], text[len(text) - tail_len :]
    sep_before = "" if not head or head.endswith("\n") else "\n"
    return f"{head}{sep_before}{drop_marker(dropped)}\n{tail}", dropped


def _join(value: Any) -> str:
    """nbformat allows multi-line strings as lists of lines."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def _size_label(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{n_bytes / (1024 * 1024):.1f} MB"


def _binary_size(payload: str) -> int:
    """Decoded size of a base64 payload (or its text size when it is not base64)."""
    compact = "".join(payload.split())
    try:
        return len(base64.b64decode(compact, validate=True))
    except (binascii.Error, ValueError):
        return len(payload.encode("utf-8", "replace"))


def _rich_text(data: Mapping[str, Any]) -> str:
    """One rich output as prompt text: placeholders for images and markup, then text/plain."""
    parts: list[str] = []
    plain = _join(data["text/plain"]) if "text/plain" in data else None
    for mime, value in data.items():
        if mime == "text/plain":
            continue
        text = _join(value) if not isinstance(value, Mapping) else ""
        if mime.startswith("image/"):
            size = _binary_size(text) if mime != "image/svg+xml" else len(text.encode())
            parts.append(f"[{mime}, {_size_label(size)}]")
        elif mime in ("text/markdown", "text/latex") and plain is None:
            parts.append(text)
        elif isinstance(value, Mapping) or mime.endswith("json"):
            parts.append(f"[{mime}]")
        else:
            parts.append(f"[{mime}, {len(text):,} chars]")
    if plain is not None:
        parts.append(plain)
    return "\n".join(parts)


def output_text_for_prompt(outputs: Iterable[Mapping[str, Any]], max_chars: int) -> str:
    """Outputs as plain text a model can read, head and tail kept within `max_chars`.

    Images become `[image/png, 23.4 KB]` (base64 is noise to a model and costly), HTML becomes
    `[text/html, N chars]` followed by its text/plain, errors become `ename: evalue`.
    """
    pieces: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            pieces.append(_join(out.get("text")))
        elif kind in ("display_data", "execute_result"):
            text = _rich_text(out.get("data") or {})
            if text:
                pieces.append(text if text.endswith("\n") else text + "\n")
        elif kind == "error":
            ename, evalue = str(out.get("ename", "")), str(out.get("evalue", ""))
            pieces.append(f"{ename}: {evalue}\n" if evalue else f"{ename}\n")
    text = strip_ansi("".join(pieces))
    return cap_text(text, max_chars)[0]


def output_from_msg(msg_type: str, content: Mapping[str, Any]) -> Output:
    """An nbformat v4 output dict from an iopub message's content.

    Written here rather than imported from nbformat: importing nbformat pulls in jsonschema and
    its format checkers, seconds of start-up on a loaded machine, on every codeflow start.
    """
    if msg_type == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": list(content.get("traceback", [])),
        }
    out: Output = {
        "output_type": msg_type,
        "data": dict(content.get("data", {})),
        "metadata": dict(content.get("metadata", {})),
    }
    if msg_type == "execute_result":
        out["execution_count"] = content.get("execution_count")
    elif msg_type != "display_data":
        raise ValueError(f"not an output message: {msg_type}")
    return out


@dataclass
class _Stream:
    """A stream output under construction: chunks, not one growing string (no quadratic joins)."""

    name: str
    chunks: deque[str] = field(default_factory=deque)
    size: int = 0
    tail: bool = False

    def add(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)

    def drop_front(self, n: int) -> int:
        """Drop up to `n` characters from the start; returns how many were dropped."""
        done = 0
        while self.chunks and done < n:
            first = self.chunks[0]
            take = min(len(first), n - done)
            if take == len(first):
                self.chunks.popleft()
            else:
                self.chunks[0] = first[take:]
            done += take
        self.size -= done
        return done

    def text(self) -> str:
        return "".join(self.chunks)


_Entry = _Stream | Output


class OutputCollector:
    """Turns iopub messages of one execution into nbformat outputs, with a stream-text cap.

    Stream text counts against `max_chars`: the first half is kept as it comes, the rest of
    the budget is a sliding window over the newest text. `on_output` (if given) sees each new
    output as it arrives (stream text chunk by chunk); stream text past the head budget is not
    passed on live (one notice says so), but its tail is in the final outputs. Display updates
    and clears only change the final outputs.
    """

    def __init__(
        self,
        max_chars: int = 200_000,
        on_output: Callable[[Output], None] | None = None,
    ) -> None:
        self.max_chars = max(0, max_chars)
        self.head_budget = self.max_chars // 2
        self.tail_budget = self.max_chars - self.head_budget
        self.on_output = on_output
        self._reset()

    def _reset(self) -> None:
        self._entries: list[_Entry] = []
        self._head_chars = 0
        self._tail_chars = 0
        self._overflow = False
        self._cut = 0  # index in _entries where the drop marker belongs
        self.dropped_chars = 0
        self._display_ids: dict[str, list[Output]] = {}
        self._clear_pending = False

    # -- feeding -------------------------------------------------------------------------

    def feed(self, msg: Mapping[str, Any]) -> None:
        """Apply one iopub message (messages of other types are ignored)."""
        msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
        content: Mapping[str, Any] = msg.get("content", {})
        if msg_type == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self._reset()
            return
        if msg_type == "update_display_data":
            self._update_display(content)
            return
        if msg_type not in _OUTPUT_MSG_TYPES:
            return
        if self._clear_pending:
            self._reset()
        if msg_type == "stream":
            self._add_stream(str(content.get("name", "stdout")), str(content.get("text", "")))
            return
        node = output_from_msg(msg_type, content)
        out: Output = dict(node)
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id and msg_type == "display_data":
            self._display_ids.setdefault(str(display_id), []).append(out)
        self._entries.append(out)
        self._emit(out)

    def _emit(self, out: Output) -> None:
        if self.on_output is not None:
            self.on_output(out)

    def _update_display(self, content: Mapping[str, Any]) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        targets = self._display_ids.get(str(display_id), []) if display_id else []
        for out in targets:  # changed in place; not re-sent live, a display would duplicate it
            out["data"] = dict(content.get("data") or {})
            out["metadata"] = dict(content.get("metadata") or {})

    def _last_stream(self, name: str, tail: bool) -> _Stream | None:
        if self._entries:
            last = self._entries[-1]
            if isinstance(last, _Stream) and last.name == name and last.tail == tail:
                return last
        return None

    def _append_stream(self, name: str, text: str, tail: bool) -> None:
        entry = self._last_stream(name, tail)
        if entry is None:
            entry = _Stream(name=name, tail=tail)
            self._entries.append(entry)
        entry.add(text)

    def _add_stream(self, name: str, text: str) -> None:
        if not text:
            return
        if not self._overflow:
            room = self.head_budget - self._head_chars
            if len(text) <= room:
                self._head_chars += len(text)
                self._append_stream(name, text, tail=False)
                self._emit({"output_type": "stream", "name": name, "text": text})
                return
            head, text = text[:room], text[room:]
            if head:
                self._head_chars += len(head)
                self._append_stream(name, head, tail=False)
                self._emit({"output_type": "stream", "name": name, "text": head})
            self._overflow = True
            self._cut = len(self._entries)
            self._emit(
                {
                    "output_type": "stream",
                    "name": name,
                    "text": "\n... [codeflow: output too long; only its end is kept] ...\n",
                }
            )
        self._append_stream(name, text, tail=True)
        self._tail_chars += len(text)
        self._trim_tail()

    def _trim_tail(self) -> None:
        excess = self._tail_chars - self.tail_budget
        index = self._cut
        while excess > 0 and index < len(self._entries):
            entry = self._entries[index]
            if isinstance(entry, _Stream) and entry.tail:
                gone = entry.drop_front(excess)
                excess -= gone
                self._tail_chars -= gone
                self.dropped_chars += gone
                if entry.size == 0 and entry is not self._entries[-1]:
                    del self._entries[index]
                    continue
            index += 1

    # -- result --------------------------------------------------------------------------

    def outputs(self) -> tuple[Output, ...]:
        """The final outputs: consecutive same-name streams merged, marker where text went."""
        result: list[Output] = []
        for index, entry in enumerate(self._entries):
            if index == self._cut and self.dropped_chars:
                self._merge_stream(result, self._marker_name(index), self._marker_text(result))
            if isinstance(entry, _Stream):
                if entry.size:
                    self._merge_stream(result, entry.name, entry.text())
            else:
                result.append(entry)
        if self._cut >= len(self._entries) and self.dropped_chars:
            self._merge_stream(result, self._marker_name(self._cut), self._marker_text(result))
        return tuple(result)

    def _marker_name(self, index: int) -> str:
        for entry in self._entries[index:]:
            if isinstance(entry, _Stream):
                return entry.name
        return "stdout"

    def _marker_text(self, result: list[Output]) -> str:
        prev = result[-1] if result else None
        needs_newline = (
            prev is not None
            and prev.get("output_type") == "stream"
            and not str(prev.get("text", "")).endswith("\n")
        )
        return ("\n" if needs_newline else "") + drop_marker(self.dropped_chars) + "\n"

    @staticmethod
    def _merge_stream(result: list[Output], name: str, text: str) -> None:
        if result and result[-1].get("output_type") == "stream" and result[-1]["name"] == name:
            result[-1] = {**result[-1], "text": result[-1]["text"] + text}
        else:
            result.append({"output_type": "stream", "name": name, "text": text})

    @property
    def stream_chars(self) -> int:
        """Stream characters currently held (bounded by `max_chars`)."""
        return self._head_chars + self._tail_chars
