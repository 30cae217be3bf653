"""Python code strings sent into kernels.

Everything that must happen *inside* the kernel (running Bash, pip, describing variables) is
plain Python sent as an execute request, so it works the same in a local kernel, a sandboxed
or containerised one, and a remote gateway kernel. User data travels as JSON literals decoded
in the kernel, never through shell quoting. Each snippet defines one function that removes
itself from the namespace as its first act, so the user's namespace is left as it was and a
traceback points at one short line.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

__all__ = [
    "BASH_ERROR",
    "INSTALL_ERROR",
    "bash_snippet",
    "describe_state_snippet",
    "fd_capture_snippet",
    "output_cap_startup",
    "pip_install_snippet",
]

BASH_ERROR = "BashError"
"""ename of a Bash script that exited non-zero (evalue: `exit status N: <stderr line>`)."""

INSTALL_ERROR = "InstallError"
"""ename of a failed `pip install`."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Runs argv in the kernel's cwd and environment and streams its output line by line to the
# kernel's stdout/stderr. One thread, a selector over both pipes: output written from other
# threads is not reliably attributed to the running request. The child gets its own session
# so a signal-mode interrupt reaches only the kernel, which then kills the child's group.
_RUNNER = r'''
def _codeflow_run():
    globals().pop("_codeflow_run", None)
    import codecs, collections, json, os, selectors, signal, subprocess, sys

    class %(error)s(Exception):
        """%(doc)s"""

    argv = json.loads(%(argv)s)
    if %(python)s:
        argv = [sys.executable, *argv]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    sel = selectors.DefaultSelector()
    sinks = {}
    for pipe, sink in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
        sel.register(pipe.fileno(), selectors.EVENT_READ)
        sinks[pipe.fileno()] = [sink, codecs.getincrementaldecoder("utf-8")("replace"), ""]
    err_fd = proc.stderr.fileno()
    err_lines = collections.deque(maxlen=40)

    def emit(fd, text):
        sinks[fd][0].write(text)
        if fd == err_fd:
            for line in text.splitlines():
                if line.strip():
                    err_lines.append(line[:500])

    try:
        open_fds = len(sinks)
        while open_fds:
            for key, _ in sel.select():
                fd = key.fd
                data = os.read(fd, 65536)
                sink = sinks[fd]
                if not data:
                    sel.unregister(fd)
                    open_fds -= 1
                    rest = sink[2] + sink[1].decode(b"", final=True)
                    if rest:
                        emit(fd, rest)
                    sink[2] = ""
                    continue
                pending = sink[2] + sink[1].decode(data)
                cut = pending.rfind("\n") + 1
                if cut == 0 and len(pending) > 8192:
                    cut = len(pending)
                if cut:
                    emit(fd, pending[:cut])
                sink[2] = pending[cut:]
            sys.stdout.flush()
            sys.stderr.flush()
        rc = proc.wait()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    sys.stdout.flush()
    sys.stderr.flush()
    %(on_success)s
    if rc == 0:
        return
    if rc < 0:
        status = "killed by signal %%d" %% -rc
    else:
        status = "exit status %%d" %% rc
    lines = list(err_lines)
    syntax = [line for line in lines if "syntax error" in line]
    line = (syntax or lines or [""])[-1].strip()
    raise %(error)s(status + (": " + line if line else ""))


_codeflow_run()
'''


def _runner(argv: list[str], *, error: str, doc: str, python: bool, on_success: str) -> str:
    if not _IDENT.match(error):
        raise ValueError(f"not an identifier: {error!r}")
    return _RUNNER % {
        "error": error,
        "doc": doc,
        "argv": repr(json.dumps(argv)),
        "python": "True" if python else "False",
        "on_success": on_success,
    }


def bash_snippet(script: str) -> str:
    """Python that runs `script` with `bash -c` and raises `BashError` on a non-zero exit.

    bash -c keeps messages in the familiar `bash: line 1: lss: command not found` form; the
    script is a JSON literal decoded in the kernel, so no character needs escaping.
    """
    return _runner(
        ["bash", "-c", script],
        error=BASH_ERROR,
        doc="A Bash script exited with a non-zero status.",
        python=False,
        on_success="pass",
    )


def pip_install_snippet(package: str) -> str:
    """Python that runs `sys.executable -m pip install <package>` in the kernel's environment."""
    return _runner(
        ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", package],
        error=INSTALL_ERROR,
        doc="pip could not install the package.",
        python=True,
        on_success="__import__('importlib').invalidate_caches()",
    )


_STATE = r"""
def _codeflow_state(max_chars):
    globals().pop("_codeflow_state", None)
    import types

    ip = get_ipython()
    ns = ip.user_ns
    hidden = getattr(ip, "user_ns_hidden", {})
    missing = object()
    skip = {"In", "Out", "exit", "quit", "get_ipython", "_codeflow_state"}

    def short(value, limit):
        try:
            text = repr(value)
        except Exception:
            text = "<unrepresentable>"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def describe(name, value):
        cls = type(value)
        tname = cls.__name__
        module = getattr(cls, "__module__", "") or ""
        if module.startswith("pandas") and tname == "DataFrame":
            cols = list(value.dtypes.items())
            shown = ", ".join("%%s: %%s" %% (short(c, 40), d) for c, d in cols[:25])
            more = " ... %%d more" %% (len(cols) - 25) if len(cols) > 25 else ""
            return "%%s: DataFrame %%d rows x %%d cols; columns: %%s%%s" %% (
                name, value.shape[0], value.shape[1], shown, more)
        if module.startswith("pandas") and tname == "Series":
            return "%%s: Series len %%d, dtype %%s, name %%s" %% (
                name, len(value), value.dtype, short(value.name, 40))
        if module.startswith("numpy") and tname == "ndarray":
            text = "%%s: ndarray shape %%s, dtype %%s" %% (name, tuple(value.shape), value.dtype)
            if value.size <= 6:
                text += " = " + short(value.tolist(), 80)
            return text
        if value is None or isinstance(value, (bool, int, float, complex)):
            return "%%s: %%s = %%s" %% (name, tname, short(value, 60))
        if isinstance(value, (str, bytes)):
            return "%%s: %%s len %%d = %%s" %% (name, tname, len(value), short(value, 60))
        if isinstance(value, dict):
            keys = ", ".join(short(k, 30) for k in list(value)[:8])
            more = ", ..." if len(value) > 8 else ""
            return "%%s: dict len %%d, keys: %%s%%s" %% (name, len(value), keys, more)
        if isinstance(value, (list, tuple, set, frozenset)):
            text = "%%s: %%s len %%d" %% (name, tname, len(value))
            if value:
                first = next(iter(value))
                text += ", first item %%s" %% type(first).__name__
            if len(value) <= 5:
                text += " = " + short(value, 80)
            return text
        if isinstance(value, type):
            return "%%s: class" %% name
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple):
            return "%%s: %%s shape %%s" %% (name, tname, shape)
        try:
            return "%%s: %%s len %%d" %% (name, tname, len(value))
        except Exception:
            return "%%s: %%s.%%s" %% (name, module, tname) if module != "builtins" else (
                "%%s: %%s" %% (name, tname))

    lines, funcs, skipped = [], [], 0
    for name in sorted(ns):
        if name.startswith("_") or name in skip:
            continue
        value = ns[name]
        if hidden.get(name, missing) is value or isinstance(value, types.ModuleType):
            continue
        if callable(value) and not isinstance(value, type) and isinstance(
            value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)
        ):
            funcs.append(name + "(...)")
            continue
        try:
            lines.append(describe(name, value)[:300])
        except Exception:
            lines.append("%%s: %%s" %% (name, type(value).__name__))
    if funcs:
        lines.append("functions: " + ", ".join(funcs))
    out, used = [], 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > max_chars:
            skipped = len(lines) - index
            break
        out.append(line)
        used += len(line) + 1
    if skipped:
        note = "... %%d more" %% skipped
        while out and used + len(note) > max_chars:
            used -= len(out.pop()) + 1
        if len(note) <= max_chars:
            out.append(note)
    return "\n".join(out)


print(_codeflow_state(%(max_chars)d), end="")
"""


def describe_state_snippet(max_chars: int) -> str:
    """Python that prints a bounded summary of the user's variables (nothing when empty)."""
    return _STATE % {"max_chars": max(0, int(max_chars))}


_OUTPUT_CAP = r'''
def _codeflow_output_cap(limit):
    """Cap what one cell may write to stdout/stderr, in the kernel itself.

    ipykernel batches writes into one message per flush: 100 MB printed in a loop would reach
    the client as one 100 MB message. Keeping the head and a bounded tail here keeps both
    processes' memory flat; the tail and a marker are written when the cell ends.
    """
    import codecs
    import collections
    import sys

    ip = get_ipython()  # noqa: F821 - an IPython startup file
    head_limit = limit // 2
    tail_limit = limit - head_limit

    class _Cap:
        def __init__(self, stream):
            self.stream = stream
            self.write_through = stream.write
            self.reset()

        def reset(self, *args):
            self.sent = 0
            self.tail = collections.deque()
            self.tail_len = 0
            self.dropped = 0

        def write(self, text):
            if not isinstance(text, str) or not text:
                return self.write_through(text)
            n = len(text)
            if self.sent < head_limit:
                part = text[: head_limit - self.sent]
                self.write_through(part)
                self.sent += len(part)
                text = text[len(part):]
            if text:
                self.tail.append(text)
                self.tail_len += len(text)
                while self.tail_len > tail_limit:
                    excess = self.tail_len - tail_limit
                    first = self.tail[0]
                    if len(first) <= excess:
                        self.tail.popleft()
                        self.tail_len -= len(first)
                        self.dropped += len(first)
                    else:
                        self.tail[0] = first[excess:]
                        self.tail_len -= excess
                        self.dropped += excess
            return n

        def finish(self, *args):
            if self.dropped:
                sep = "" if self.sent == 0 else "\n"
                self.write_through(f"{sep}{MARKER.format(self.dropped)}\n")
            if self.tail:
                self.write_through("".join(self.tail))
            self.reset()

    class _Bytes:
        """`sys.stdout.buffer`, which Jupyter's streams lack: bytes shown as a terminal would."""

        def __init__(self, stream):
            self.stream = stream
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def write(self, data):
            data = bytes(data)
            text = self.decoder.decode(data)
            if text:
                self.stream.write(text)
            return len(data)

        def writable(self):
            return True

        def flush(self):
            self.stream.flush()

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if type(stream).__name__ != "OutStream":
            continue
        cap = _Cap(stream)
        stream.write = cap.write
        if not hasattr(stream, "buffer"):
            stream.buffer = _Bytes(stream)
        ip.events.register("pre_run_cell", cap.reset)
        ip.events.register("post_run_cell", cap.finish)


_codeflow_output_cap(LIMIT)
del _codeflow_output_cap
'''


def output_cap_startup(max_chars: int) -> str:
    """An IPython startup file that caps each cell's stdout/stderr at the source."""
    from .outputs import drop_marker

    marker = drop_marker(0).replace("0", "{:,}", 1)
    return _OUTPUT_CAP.replace("MARKER", repr(marker)).replace("LIMIT", str(int(max_chars)))


@cache
def fd_capture_snippet() -> str:
    """Python that makes the kernel publish what is written to fds 1 and 2 (by itself or its
    children) as stream output, in order with `print`; sent once per kernel start.

    The implementation is the stdlib-only `fdpump` module's own source, run in a private
    namespace: kernels in a container or behind a gateway do not have codeflow installed.
    """
    source = (Path(__file__).parent / "fdpump.py").read_text(encoding="utf-8")
    return (
        "def _codeflow_fd():\n"
        '    globals().pop("_codeflow_fd", None)\n'
        '    scope = {"__name__": "_codeflow_fdpump"}\n'
        f"    exec(compile({source!r}, '<codeflow-fdpump>', 'exec'), scope)\n"
        '    scope["install_kernel_capture"]()\n'
        "\n"
        "\n"
        "_codeflow_fd()\n"
    )
