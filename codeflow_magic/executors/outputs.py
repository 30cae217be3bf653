"""Kernel messages to nbformat outputs, output caps and prompt text.

Pure functions and one small state machine (`OutputCollector`) so that the rules — how streams
merge, what a flood leaves behind, what the model gets to read — are testable without a kernel.
The collector stays memory-bounded while a flood streams in: past the head budget only a tail
window of stream text is kept, so `print('x' * 10**8)` never sits in memory twice. Stream text is
kept the way a terminal (and JupyterLab) shows it: a carriage return rewrites its line, so 100,000
progress updates leave one line. Rich outputs (images, HTML, JSON) have a budget of their own
(`rich_budget`), and text that cannot be written as UTF-8 (lone surrogates from bytes decoded
with `surrogateescape`) becomes U+FFFD, so every kept output can be saved in a notebook.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import Output
from ..text import joined, strip_ansi

__all__ = [
    "BytesToText",
    "OutputCollector",
    "cap_text",
    "clean_text",
    "drop_marker",
    "output_text_for_prompt",
    "rich_budget",
    "rich_drop_note",
    "strip_ansi",
]

_OUTPUT_MSG_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})


def drop_marker(dropped: int) -> str:
    """The line that stands where output was cut out."""
    return f"... [codeflow: {dropped:,} characters dropped] ..."


RICH_FACTOR = 10
"""Rich outputs (figures, HTML, JSON) of one execution may take this many times
`execution.max_output_chars`: a plot is legitimately bigger than a screen of text, a 50 MB
image is not."""


def rich_budget(max_chars: int) -> int:
    """Characters the rich outputs of one execution may take."""
    return RICH_FACTOR * max(0, max_chars)


def rich_drop_note(mime: str, chars: int, budget: int, count: int = 1) -> str:
    """The text that stands where rich outputs were left out."""
    what = f"{mime} output" if count == 1 else f"{count:,} outputs"
    return (
        f"[codeflow: {what} of {chars:,} characters dropped: over the {budget:,}-character "
        f"budget for displays ({RICH_FACTOR} x execution.max_output_chars)]"
    )


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace lone surrogates with U+FFFD.

    Bytes decoded with `surrogateescape` (file names, `os.fsdecode`) carry them; they cannot be
    encoded as UTF-8, so a notebook or a JSON reply holding one could not be written.
    """
    return _SURROGATE_RE.sub("\ufffd", text) if _SURROGATE_RE.search(text) else text


class BytesToText(io.RawIOBase):
    """A `sys.stdout.buffer` for streams that only take text.

    Jupyter's output streams have no binary buffer, so code that writes bytes fails there with
    an AttributeError although it works in a terminal. Bytes are decoded as UTF-8 as they come
    (a character split across writes is completed by the next write); bytes that are not UTF-8
    become U+FFFD, as a terminal shows them.
    """

    def __init__(self, write_text: Callable[[str], object]) -> None:
        super().__init__()
        self._write_text = write_text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        text = self._decoder.decode(chunk)
        if text:
            self._write_text(text)
        return len(chunk)

    def close(self) -> None:
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._write_text(rest)
        super().close()


_MARKER_RE = re.compile(r"\.\.\. \[codeflow: ([\d,]+) characters dropped\] \.\.\.")


def marked_drops(outputs: Iterable[Mapping[str, Any]]) -> int:
    """Characters that a cap upstream (the kernel's own) reported dropping in stream text."""
    total = 0
    for out in outputs:
        if out.get("output_type") == "stream":
            for m in _MARKER_RE.finditer(joined(out.get("text", ""))):
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
    plain = joined(data["text/plain"]) if "text/plain" in data else None
    for mime, value in data.items():
        if mime == "text/plain":
            continue
        text = joined(value) if not isinstance(value, Mapping) else ""
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
            pieces.append(joined(out.get("text")))
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


class _Line:
    """The open (not yet newline-ended) line of one stream, as a terminal holds it.

    A carriage return moves the column back to the start; what follows overwrites the line
    from there (`100%\rdone` shows `done%`, as in a terminal and in JupyterLab). Appends are
    kept as parts, so a long line built from many small writes is not copied for each write.
    """

    __slots__ = ("col", "length", "name", "parts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.parts: list[str] = []
        self.length = 0
        self.col = 0

    def write(self, text: str) -> None:
        """Write `text` (no line breaks) at the column."""
        if not text:
            return
        if self.col == self.length:
            self.parts.append(text)
            self.length += len(text)
        else:
            line = "".join(self.parts)
            line = line[: self.col] + text + line[self.col + len(text) :]
            self.parts = [line]
            self.length = len(line)
        self.col += len(text)

    def carriage_return(self) -> None:
        self.col = 0

    def take(self) -> str:
        """The line's text; the line is empty afterwards."""
        text = "".join(self.parts)
        self.parts = []
        self.length = self.col = 0
        return text


_Entry = _Stream | Output

_LIVE_NOTICE = "\n... [codeflow: output too long; only its end is kept] ...\n"
_FRAME_CHARS = 100
"""What one output's JSON frame (type, metadata, keys) takes in a notebook file, about; it
counts against the rich budget (at most 1% of it), so a flood of tiny displays is bounded too."""


def _payload_chars(value: Any) -> int:
    """Characters a mime payload takes in a notebook."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(len(v) for v in value)
    try:
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return len(str(value))


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [clean_text(v) for v in value]
    return value


class OutputCollector:
    """Turns iopub messages of one execution into nbformat outputs, within two budgets.

    Stream text counts against `max_chars`: the first half is kept as it comes, the rest of
    the budget is a sliding window over the newest text. Carriage returns are applied first,
    line by line, so progress updates cost what a terminal shows, not what was written. Rich
    outputs (displays, results) share a second budget, `rich_budget(max_chars)`: one that does
    not fit is replaced by a text note naming its type and size (a text-only result keeps its
    head and tail within `max_chars`). Error outputs are cut to `max_chars` each. `on_output` (if given) sees each new output as it arrives (stream text
    chunk by chunk, as written); stream text past the head budget is not passed on live (one
    notice says so), but its tail is in the final outputs. Display updates and clears only
    change the final outputs.
    """

    def __init__(
        self,
        max_chars: int = 200_000,
        on_output: Callable[[Output], None] | None = None,
    ) -> None:
        self.max_chars = max(0, max_chars)
        self.head_budget = self.max_chars // 2
        self.tail_budget = self.max_chars - self.head_budget
        self.rich_budget = rich_budget(self.max_chars)
        self.on_output = on_output
        self._frame = min(_FRAME_CHARS, self.max_chars // 100)
        self._live_chars = 0
        self._live_over = False
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
        self._stream_dropped = 0
        self._line: _Line | None = None
        self._rich_chars = 0
        self._rich_sizes: dict[int, int] = {}
        self._note: Output | None = None
        self._noted_count = 0
        self._noted_chars = 0
        self._noted_mime = ""

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
        self._close_line()
        node = output_from_msg(msg_type, content)
        out: Output = dict(node)
        if msg_type == "error":
            self._cap_error(out)
        elif not self._cap_rich(out):
            return
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id and msg_type == "display_data" and out is not self._note:
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
            self._update_rich(out, content)

    # -- rich outputs and errors ---------------------------------------------------------

    def _cap_rich(self, out: Output) -> bool:
        """Fit a new rich output into the rich budget; False when it is not kept at all.

        An output that fits is kept whole. A text-only one (a long repr) keeps its head and
        tail in the room left. Anything else over budget is replaced by a note; later outputs
        that do not fit either only update that note's count, so a loop of a million displays
        leaves one line.
        """
        data: dict[str, Any] = {k: _clean_value(v) for k, v in (out.get("data") or {}).items()}
        sizes = {mime: _payload_chars(value) for mime, value in data.items()}
        cost = sum(sizes.values()) + self._frame
        room = self.rich_budget - self._rich_chars
        text_only = set(data) == {"text/plain"}
        if text_only:  # a repr is text: it gets what a stream gets
            room = min(room, self.max_chars + self._frame)
        out["data"] = data
        if cost <= room:
            self._rich_chars += cost
            self._rich_sizes[id(out)] = cost
            return True
        plain = data.get("text/plain")
        if text_only and room > 2 * self._frame:
            text, cut = cap_text(joined(plain), room - 2 * self._frame)
            out["data"] = {"text/plain": text}
            self._rich_chars += len(text) + self._frame
            self._rich_sizes[id(out)] = len(text) + self._frame
            self.dropped_chars += cut
            return True
        dropped = cost - self._frame
        self.dropped_chars += dropped
        if not self._noted_count:
            self._noted_mime = max(sizes, key=lambda m: sizes[m]) if sizes else "empty"
        self._noted_count += 1
        self._noted_chars += dropped
        if self._note is not None:
            self._note["data"] = {"text/plain": self._note_text()}
            return False
        self._note = out
        out["data"] = {"text/plain": self._note_text()}
        out["metadata"] = {}
        return True

    def _note_text(self) -> str:
        return rich_drop_note(
            self._noted_mime, self._noted_chars, self.rich_budget, self._noted_count
        )

    def _update_rich(self, out: Output, content: Mapping[str, Any]) -> None:
        """A display update: the new data replaces the old within the same budget."""
        self._rich_chars -= self._rich_sizes.pop(id(out), 0)
        data = {k: _clean_value(v) for k, v in (content.get("data") or {}).items()}
        sizes = {mime: _payload_chars(value) for mime, value in data.items()}
        cost = sum(sizes.values()) + self._frame
        if cost <= self.rich_budget - self._rich_chars:
            out["data"] = data
            out["metadata"] = dict(content.get("metadata") or {})
        else:
            mime = max(sizes, key=lambda m: sizes[m]) if sizes else "empty"
            note = rich_drop_note(mime, cost - self._frame, self.rich_budget)
            out["data"] = {"text/plain": note}
            out["metadata"] = {}
            self.dropped_chars += cost - self._frame
            cost = len(out["data"]["text/plain"]) + self._frame
        self._rich_chars += cost
        self._rich_sizes[id(out)] = cost

    def _cap_error(self, out: Output) -> None:
        """An error output within `max_chars`: half for the message, half for the traceback."""
        half = max(1, self.max_chars // 2)
        evalue, cut = cap_text(clean_text(str(out.get("evalue", ""))), half)
        lines = [clean_text(str(line)) for line in out.get("traceback") or ()]
        joined = "\n".join(lines)
        if len(joined) > half:
            text, more = cap_text(joined, half)
            lines = text.split("\n")
            cut += more
        out["evalue"] = evalue
        out["ename"] = clean_text(str(out.get("ename", "")))
        out["traceback"] = lines
        self.dropped_chars += cut

    # -- streams -------------------------------------------------------------------------

    def _emit_live(self, name: str, text: str) -> None:
        """Pass text on as written, up to the head budget; then one notice."""
        if self.on_output is None or self._live_over:
            return
        room = self.head_budget - self._live_chars
        if len(text) <= room:
            self._live_chars += len(text)
            self._emit({"output_type": "stream", "name": name, "text": text})
            return
        if room > 0:
            self._emit({"output_type": "stream", "name": name, "text": text[:room]})
        self._live_chars = self.head_budget
        self._live_over = True
        self._emit({"output_type": "stream", "name": name, "text": _LIVE_NOTICE})

    def _add_stream(self, name: str, text: str) -> None:
        if not text:
            return
        text = clean_text(text)
        self._emit_live(name, text)
        line = self._line
        if line is None or line.name != name:
            self._close_line()
            line = self._line = _Line(name)
        done: list[str] = []
        for index, piece in enumerate(text.split("\n")):
            if index:
                done.append(line.take() + "\n")
            if "\r" in piece:
                first, *rest = piece.split("\r")
                line.write(first)
                for part in rest:
                    line.carriage_return()
                    line.write(part)
            else:
                line.write(piece)
        if done:
            self._store(name, "".join(done))
        if line.length > max(1, self.tail_budget):
            self._store(name, line.take())  # a line longer than the window: keep it moving

    def _close_line(self) -> None:
        """Store the open line as it stands (another output comes after it)."""
        line, self._line = self._line, None
        if line is not None and line.length:
            self._store(line.name, line.take())

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

    def _store(self, name: str, text: str) -> None:
        """Keep finished stream text: the head as it comes, then a window over the newest."""
        if not text:
            return
        if not self._overflow:
            room = self.head_budget - self._head_chars
            if len(text) <= room:
                self._head_chars += len(text)
                self._append_stream(name, text, tail=False)
                return
            head, text = text[:room], text[room:]
            if head:
                self._head_chars += len(head)
                self._append_stream(name, head, tail=False)
            self._overflow = True
            self._cut = len(self._entries)
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
                self._stream_dropped += gone
                if entry.size == 0 and entry is not self._entries[-1]:
                    del self._entries[index]
                    continue
            index += 1

    # -- result --------------------------------------------------------------------------

    def outputs(self) -> tuple[Output, ...]:
        """The final outputs: consecutive same-name streams merged, marker where text went.

        The open line of a stream is kept as it stands (and counted against the budget), so
        the result never holds more stream text than `max_chars`.
        """
        self._close_line()
        result: list[Output] = []
        for index, entry in enumerate(self._entries):
            if index == self._cut and self.stream_dropped:
                self._merge_stream(result, self._marker_name(index), self._marker_text(result))
            if isinstance(entry, _Stream):
                if entry.size:
                    self._merge_stream(result, entry.name, entry.text())
            else:
                result.append(entry)
        if self._cut >= len(self._entries) and self.stream_dropped:
            self._merge_stream(result, self._marker_name(self._cut), self._marker_text(result))
        return tuple(result)

    @property
    def stream_dropped(self) -> int:
        """Stream characters dropped from the middle (the marker says how many)."""
        return self._stream_dropped

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
        return ("\n" if needs_newline else "") + drop_marker(self.stream_dropped) + "\n"

    @staticmethod
    def _merge_stream(result: list[Output], name: str, text: str) -> None:
        if result and result[-1].get("output_type") == "stream" and result[-1]["name"] == name:
            result[-1] = {**result[-1], "text": result[-1]["text"] + text}
        else:
            result.append({"output_type": "stream", "name": name, "text": text})

    @property
    def stream_chars(self) -> int:
        """Stream characters kept (bounded by `max_chars`; the open line adds at most half)."""
        return self._head_chars + self._tail_chars

    @property
    def rich_chars(self) -> int:
        """Characters the kept rich outputs take (within `rich_budget`, the one note aside)."""
        return self._rich_chars
