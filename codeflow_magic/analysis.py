"""Error analysis: turn what a backend reported into a classified `AttemptError`. Pure.

The class drives the repair strategy (see `prompts.STRATEGY`), so the rules err on the side of
the cause a person would name: a missing command is the environment, not a bug in the script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .models import AttemptError, ExecutionResult, Finding
from .text import readable_texts, strip_ansi

SYNTAX_ENAMES = frozenset({"SyntaxError", "IndentationError", "TabError"})
IMPORT_ENAMES = frozenset({"ModuleNotFoundError", "ImportError"})
ENVIRONMENT_ENAMES = frozenset(
    {
        "MemoryError",
        "PermissionError",
        "FileNotFoundError",
        "NotADirectoryError",
        "IsADirectoryError",
        "TimeoutError",
        "KernelDied",
        "ConnectionRefusedError",
        "BlockingIOError",
        "ChildProcessError",
        "BrokenPipeError",
    }
)
LOGICAL_ENAMES = frozenset({"CheckFailed", "QualityGate"})
ENV_OSERROR_HINTS = (
    "no space left",
    "disk quota",
    "too many open files",
    "resource temporarily unavailable",
    "cannot allocate memory",
    "read-only file system",
    "network is unreachable",
    "operation not permitted",
)

TRACEBACK_CHARS = 3000


def trim_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters trimmed] ...\n{text[-tail:]}"


_CELL_LINE = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-[^>]*>|\"<[^\"]*>\"),\s*line (\d+)")
_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')
_BASH_LINE = re.compile(r"(?:bash|sh): line (\d+):")


def failing_line(ename: str, evalue: str, traceback: str, language: str) -> int | None:
    """The line of the generated code where it failed, when the traceback says so."""
    if language == "bash":
        m = _BASH_LINE.findall(evalue + "\n" + traceback)
        return int(m[-1]) if m else None
    cell = _CELL_LINE.findall(traceback)
    if cell:
        return int(cell[-1])
    if ename in SYNTAX_ENAMES:
        found = re.search(r"line (\d+)", evalue + "\n" + traceback)
        if found:
            return int(found.group(1))
        files = _FILE_LINE.findall(traceback)
        if files:
            return int(files[-1][1])
    return None


def _bash_category(evalue: str) -> str:
    low = evalue.lower()
    if "syntax error" in low or "unexpected end of file" in low or "unexpected token" in low:
        return "syntax"
    if "command not found" in low or "exit status 127" in low:
        return "environment"
    if "no such file or directory" in low or "permission denied" in low:
        return "environment"
    if "exit status 126" in low or "no space left" in low:
        return "environment"
    return "runtime"


def categorize(ename: str, evalue: str) -> str:
    if ename in SYNTAX_ENAMES:
        return "syntax"
    if ename in IMPORT_ENAMES:
        return "import"
    if ename in LOGICAL_ENAMES or (ename == "AssertionError" and evalue.startswith("check")):
        return "logical"
    if ename == "BashError":
        return _bash_category(evalue)
    if ename in ENVIRONMENT_ENAMES:
        return "environment"
    if ename in ("OSError", "IOError", "RuntimeError", "CalledProcessError"):
        low = evalue.lower()
        if any(h in low for h in ENV_OSERROR_HINTS):
            return "environment"
    if ename == "RecursionError":
        return "runtime"
    if ename == "KeyboardInterrupt":
        return "environment"
    return "runtime"


def missing_module(evalue: str) -> str | None:
    m = re.search(r"No module named ['\"]([\w.]+)['\"]", evalue)
    if m:
        return m.group(1)
    m = re.search(r"cannot import name ['\"](\w+)['\"] from ['\"]([\w.]+)['\"]", evalue)
    if m:
        return None
    return None


def root_cause(category: str, ename: str, evalue: str, source_line: str | None) -> str:
    where = f" in `{source_line.strip()}`" if source_line and source_line.strip() else ""
    if ename == "NameError":
        m = re.search(r"name '(\w+)' is not defined", evalue)
        if m:
            return f"`{m.group(1)}` is used{where} but never defined"
    if category == "import":
        mod = missing_module(evalue)
        if mod:
            return f"module `{mod}` is not installed in the kernel"
        return f"an import failed{where}: {evalue}"
    if category == "syntax":
        return f"the code does not parse{where}: {evalue}" if evalue else "the code does not parse"
    if ename == "TimeoutError":
        return f"the run took too long and was stopped ({evalue})"
    if ename == "KernelDied":
        return f"the kernel process died{where} ({evalue})"
    if ename == "MemoryError":
        return "the code ran out of memory"
    if ename == "BashError":
        if "command not found" in evalue:
            m = re.search(r"(\S+): command not found", evalue)
            cmd = m.group(1) if m else "a command"
            return f"`{cmd}` is not an installed command (mistyped?)"
        return f"the shell script failed: {evalue}"
    if ename == "CheckFailed":
        return f"the acceptance check failed: {evalue}"
    if ename == "QualityGate":
        return f"the result was judged not to answer the request: {evalue}"
    if ename in ("FileNotFoundError",):
        return f"a file or directory does not exist{where}: {evalue}"
    if ename == "PermissionError":
        return f"permission denied{where}: {evalue}"
    return f"{ename}{where}: {evalue}" if evalue else f"{ename}{where}"


def classify(result: ExecutionResult, code: str, language: str = "python") -> AttemptError:
    """Classify a failed execution. Call only when `result.ok` is false."""
    tb = strip_ansi("\n".join(result.traceback))
    if result.status == "timeout":
        ename, evalue = result.ename or "TimeoutError", result.evalue or "execution timed out"
        if result.restarted and result.detail and result.detail not in evalue:
            # why the interrupt did not work (SIGINT ignored, the process stopped ...)
            evalue = f"{evalue} ({result.detail})"
        category = "environment"
    elif result.status == "died":
        ename = result.ename or "KernelDied"
        evalue = result.evalue or "the kernel died"
        if result.detail and result.detail not in evalue:
            evalue = f"{evalue} ({result.detail})"
        category = "environment"
    else:
        ename, evalue = result.ename or "Error", strip_ansi(result.evalue)
        category = categorize(ename, evalue)
    line = failing_line(ename, evalue, tb, language)
    source_line: str | None = None
    if line is not None:
        lines = code.split("\n")
        if 1 <= line <= len(lines):
            source_line = lines[line - 1]
    return AttemptError(
        category=category,
        ename=ename,
        evalue=evalue,
        traceback=trim_middle(tb, TRACEBACK_CHARS),
        line=line,
        source_line=source_line,
        root_cause=root_cause(category, ename, evalue, source_line),
    )


def no_code_error(reply: str) -> AttemptError:
    snippet = reply.strip().replace("\n", " ")[:160]
    return AttemptError(
        category="syntax",
        ename="NoCodeBlock",
        evalue="the model's reply contained no code block",
        root_cause=f"the reply was prose only: {snippet!r}" if snippet else "the reply was empty",
    )


def security_error(findings: Sequence[Finding], policy: str) -> AttemptError:
    worst = findings[0]
    return AttemptError(
        category="security",
        ename="SecurityBlocked",
        evalue=f"{len(findings)} finding(s) stopped by the `{policy}` policy; "
        f"first: [{worst.severity}/{worst.category}] {worst.message}",
        line=worst.line,
        root_cause=f"the code would {worst.message}" if worst.message else "unsafe code",
        findings=tuple(findings),
    )


def check_failed(evalue: str, traceback: str = "") -> AttemptError:
    return AttemptError(
        category="logical",
        ename="CheckFailed",
        evalue=evalue,
        traceback=trim_middle(strip_ansi(traceback), TRACEBACK_CHARS),
        root_cause=f"the acceptance check failed: {evalue}",
    )


def quality_failed(score: float, threshold: float, reason: str) -> AttemptError:
    evalue = f"score {score:g}/10 below {threshold:g}: {reason}"
    return AttemptError(
        category="logical",
        ename="QualityGate",
        evalue=evalue,
        root_cause=f"the result was judged not to answer the request ({reason})",
    )


# -- the sanity gate --------------------------------------------------------------------------

SANITY_ENAME = "SanityGate"
SANITY_ITEMS = 5
SANITY_QUOTE_CHARS = 200

_WARNINGS = re.compile(
    r"(?m)^.*?\b("
    r"RuntimeWarning: (?:invalid value encountered|divide by zero encountered|Mean of empty "
    r"slice|Degrees of freedom <= 0|overflow encountered|All-NaN (?:slice|axis) encountered)"
    r"|SettingWithCopyWarning|ChainedAssignmentError|FutureWarning"
    r"|UserWarning: (?:Could not infer format|Parsing dates in \S+ format when dayfirst)"
    r")\b.*$"
)
_THIRD_PARTY = re.compile(r"(site|dist)-packages[/\\](?!pandas[/\\])")
"""A warning raised inside a library other than pandas (a FutureWarning of seaborn's own)."""
_EMPTY = re.compile(r"(?m)^(Empty DataFrame\b.*|Series\(\[\], .*\)|shape: \(0, \d+\).*)$")
_NAN = re.compile(
    r"(?<![\w.<])[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity|NaT|<NA>)(?![\w.>])"
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?![\w])")
_ABOUT_MISSING = re.compile(
    r"(?i)\b(nan|nans|missing|null|nulls|n/a|none|empty|blank|isna|isnull|notna|notnull|"
    r"dropna|fillna|infinite|infinity|inf)\b"
)


def _quote(text: str) -> str:
    text = strip_ansi(text).strip()
    return text if len(text) <= SANITY_QUOTE_CHARS else text[: SANITY_QUOTE_CHARS - 3] + "..."


def _nan_evidence(text: str) -> str | None:
    """A NaN or inf that is the answer: `Average: nan`, a bare `nan`, an all-NaN table."""
    found = list(_NAN.finditer(text))
    if not found:
        return None
    for line in text.splitlines():
        values = [m.group(0) for m in re.finditer(f"{_NAN.pattern}|{_NUMBER.pattern}", line)]
        if not values or not _NAN.fullmatch(values[-1]):
            continue
        stripped = line.strip()
        if _NAN.fullmatch(stripped) or ":" in line or "=" in line:
            return f"a NaN/inf result: {_quote(stripped)!r}"
    numbers = len(_NUMBER.findall(text))
    if len(found) >= numbers:
        first = next(line for line in text.splitlines() if _NAN.search(line))
        return f"NaN/inf values and few numbers in the output ({len(found)} NaN/inf): {_quote(first)!r}"
    return None


def sanity_evidence(outputs: Sequence[Mapping[str, Any]], request: str = "") -> tuple[str, ...]:
    """Signs that a run which raised nothing produced a wrong result. Pure, over the outputs.

    Quiet on ordinary results: a NaN among many numbers (a table with gaps) is data, not
    evidence; only a NaN or inf that *is* the answer, an empty DataFrame/Series, or a warning
    that says values were lost counts. A request about missing values itself gets no NaN
    or emptiness evidence (there NaN is the subject, not a symptom).
    """
    about_missing = bool(_ABOUT_MISSING.search(request))
    evidence: list[str] = []

    def add(item: str) -> None:
        if item not in evidence and len(evidence) < SANITY_ITEMS:
            evidence.append(item)

    for kind, text in readable_texts(outputs):
        text = strip_ansi(text)
        for m in _WARNINGS.finditer(text):
            where = text[m.start(0) : m.start(1)]
            if m.group(1) == "FutureWarning" and _THIRD_PARTY.search(where):
                continue
            add(f"a warning: {_quote(text[m.start(1) : m.end(0)])!r}")
        if about_missing:
            continue
        if kind == "stderr":
            continue
        for m in _EMPTY.finditer(text):
            add(f"an empty result: {_quote(m.group(0))!r}")
        found = _nan_evidence(text)
        if found:
            add(found)
    return tuple(evidence)


def sanity_failed(evidence: Sequence[str]) -> AttemptError:
    summary = "; ".join(evidence)
    return AttemptError(
        category="logical",
        ename=SANITY_ENAME,
        evalue=f"the result looks wrong: {summary}",
        root_cause="the code ran, but its result shows signs of a wrong answer "
        f"({len(evidence)} piece(s) of evidence)",
    )
