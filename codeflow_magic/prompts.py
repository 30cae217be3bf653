"""Prompt building and code extraction. Pure: no I/O, no SDK, no kernel.

Extraction takes the *first* fenced block in the wanted language. The streaming path executes
the first block as soon as its closing fence arrives, so the final extraction must agree with
it; the system prompt asks for exactly one block anyway.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .analysis import SANITY_ENAME, TRACEBACK_CHARS, trim_middle
from .models import Attempt, AttemptError
from .providers.base import LLMRequest, Message

PYTHON_TAGS = frozenset({"python", "python3", "py", "py3", "ipython", "ipython3", "pycon"})
BASH_TAGS = frozenset({"bash", "sh", "shell", "zsh", "console", "shell-session", "sh-session"})
OTHER_TAGS_NOT_CODE = frozenset({"text", "output", "plaintext", "txt", "log", "json", "csv"})

_FENCE_OPEN = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")

SYSTEM_PROMPT = """\
You write code that runs in a persistent Jupyter kernel for a data scientist. Variables, \
imports and files from earlier runs are still there; the kernel state summary lists them.

Rules:
- Reply with exactly one fenced code block tagged with its language (```python or ```bash), \
then at most a few short lines of explanation.
- The code runs as is, top to bottom, in the current working directory. Print or display \
what the user should see; for plots call plt.show().
- Do not ask questions, do not use input(), do not install packages unless told to.
- Never read or print API keys, tokens or credentials, and never touch files outside the \
working directory.
- When fixing, start the explanation with a line `Root cause: ...` and a line `Fix: ...`.
- When asked to judge code rather than write it, reply as that request says.
"""


@dataclass(frozen=True)
class CodeBlock:
    code: str
    tag: str
    closed: bool
    start: int
    end: int


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def iter_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block (``` or ~~~, any length, any info string); an unclosed final block
    counts with `closed=False`."""
    text = normalize_newlines(text)
    lines = text.split("\n")
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        info = m.group("info").strip()
        tag = info.split()[0].lower().lstrip("{.").rstrip("}") if info else ""
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                closed = True
                break
            body.append(lines[j])
            j += 1
        blocks.append(CodeBlock("\n".join(body), tag, closed, i, j))
        i = j + 1
    return blocks


def tag_language(tag: str) -> str | None:
    if tag in PYTHON_TAGS:
        return "python"
    if tag in BASH_TAGS:
        return "bash"
    return None


def _strip_prompts(code: str, language: str) -> str:
    """Remove shell prompts (`$ cmd`) from console-style bash blocks."""
    if language != "bash":
        return code
    lines = code.split("\n")
    if lines and all(line.startswith("$ ") or not line.strip() for line in lines if line.strip()):
        return "\n".join(line[2:] if line.startswith("$ ") else line for line in lines)
    return code


def guess_language(code: str) -> str:
    """Python when it parses as Python, Bash when it starts like a shell script."""
    first = code.lstrip().split("\n", 1)[0]
    if first.startswith("#!") and ("sh" in first and "python" not in first):
        return "bash"
    shellish = re.compile(
        r"^\s*(ls|cd|echo|cat|grep|find|mkdir|rm|cp|mv|wc|head|tail|awk|sed|"
        r"for \w+ in|if \[|export|curl|pip|git|du|df|sort|uniq|printf)( |$)"
    )
    pythonic = re.compile(r"^\s*(import |from \w+ import|def |class |print\(|\w+\s*=[^=])")
    lines = [line for line in code.split("\n") if line.strip()]
    if any(shellish.match(line) for line in lines) and not any(
        pythonic.match(line) for line in lines
    ):
        return "bash"
    try:
        ast.parse(code)
    except SyntaxError:
        return "bash" if any(shellish.match(line) for line in lines) else "python"
    return "python"


@dataclass(frozen=True)
class Extraction:
    code: str
    language: str
    explanation: str


def extract_code(text: str, language: str, *, require_closed: bool = False) -> Extraction | None:
    """The first block in `language` (`auto`: the first code block of either language).

    Untagged blocks count for any language. Returns None when the reply holds no code block,
    so the flow records a clear error attempt instead of running prose.
    """
    text = normalize_newlines(text)
    blocks = [b for b in iter_blocks(text) if b.code.strip() and (b.closed or not require_closed)]
    chosen: CodeBlock | None = None
    chosen_lang = language
    for block in blocks:
        block_lang = tag_language(block.tag)
        if block.tag in OTHER_TAGS_NOT_CODE:
            continue
        if language == "auto":
            if block_lang is not None or not block.tag:
                chosen = block
                chosen_lang = block_lang or guess_language(block.code)
                break
            continue
        if block_lang == language or not block.tag:
            chosen = block
            break
    if chosen is None and language != "auto":
        # A block tagged with the other language (a bash answer to a python request, say):
        # better to run it as what it is than to fail.
        for block in blocks:
            other = tag_language(block.tag)
            if other is not None:
                chosen, chosen_lang = block, other
                break
    if chosen is None:
        return None
    lines = text.split("\n")
    explanation = "\n".join(lines[: chosen.start] + lines[chosen.end + 1 :]).strip()
    code = _strip_prompts(chosen.code.strip("\n"), chosen_lang)
    return Extraction(code=code.rstrip() + "\n", language=chosen_lang, explanation=explanation)


def parse_explanation(explanation: str) -> tuple[str, str]:
    """(root cause, fix) from a `Root cause: ... / Fix: ...` explanation, when present."""
    root = re.search(r"(?im)^\W*root cause\W*:\s*(.+)$", explanation)
    fix = re.search(r"(?im)^\W*fix\W*:\s*(.+)$", explanation)
    return (root.group(1).strip() if root else "", fix.group(1).strip() if fix else "")


REQUEST_HINTS_BASH = re.compile(
    r"\b(bash|shell|command line|terminal|ls\b|grep|du -|df -|shell script|\$\s)", re.I
)


def auto_language_hint(request: str) -> str:
    """What `--language auto` suggests before the model answers."""
    return "bash" if REQUEST_HINTS_BASH.search(request) else "python"


def _language_line(language: str, request: str) -> str:
    if language == "auto":
        hint = auto_language_hint(request)
        return (
            "Language: choose Python or Bash, whichever fits the request best "
            f"(it reads like {hint}); tag the code block with the language you chose."
        )
    if language == "bash":
        return "Language: Bash (tag the block ```bash). It runs with bash in the working directory."
    return "Language: Python 3 (tag the block ```python)."


def _state_block(state: str) -> str:
    if not state.strip():
        return "Kernel state: empty (no user variables yet)."
    return "Kernel state (user variables now defined):\n" + state.strip()


@dataclass(frozen=True)
class Grounding:
    """What the model sees besides the request and the state: each part already bounded."""

    files: str = ""
    environment: str = ""
    notebook: str = ""


def _grounding_blocks(ground: Grounding) -> list[str]:
    """The files, notebook and environment parts (none when there is nothing to say)."""
    parts: list[str] = []
    if ground.files.strip():
        parts.append(
            "Files named in the request (a preview read in the kernel's working directory; "
            "use the delimiter, decimal mark, encoding and columns shown):\n" + ground.files.strip()
        )
    if ground.notebook.strip():
        parts.append(
            "Notebook context (the cells above this request, nearest first):\n"
            + ground.notebook.strip()
        )
    env = _environment_block(ground)
    if env:
        parts.append(env)
    return parts


def _environment_block(ground: Grounding) -> str:
    """The environment part; volatile for the cache (see `LLMRequest.volatile`)."""
    if not ground.environment.strip():
        return ""
    return (
        "Environment (use what is installed; do not import what is not):\n"
        + ground.environment.strip()
    )


@dataclass(frozen=True)
class Start:
    """What a run knew when it began. Every request of the run opens with the same text built
    from it (the stable prefix), so a model that caches prompts bills it once per run; what
    was learned later goes after the prefix."""

    language: str = "python"
    state: str = ""
    grounding: Grounding = field(default_factory=Grounding)


def stable_prefix(request: str, start: Start, check: str | None = None) -> str:
    """The opening every request of a run shares (the whole of the first prompt)."""
    parts = [
        f"Request:\n{request.strip()}",
        _language_line(start.language, request),
        *_grounding_blocks(start.grounding),
        _state_block(start.state),
    ]
    if check:
        parts.append(
            "Acceptance check (Python, run in the same kernel right after your code; it must "
            f"pass):\n```python\n{check.strip()}\n```"
        )
    return "\n\n".join(parts)


_LIBRARY_DIR = re.compile(r"/(?:[^\s'\"()<>/]+/)*?(?:site|dist)-packages/")
_STDLIB_DIR = re.compile(r"/(?:[^\s'\"()<>/]+/)*?lib/python3\.\d+/")


def portable(text: str) -> str:
    """Library paths in tracebacks and warnings without the machine's part: where a virtualenv
    or Python lives says nothing to the model, and would tie a recorded answer to one machine
    (a notebook replayed from another checkout would miss it)."""
    return _STDLIB_DIR.sub("<stdlib>/", _LIBRARY_DIR.sub("<site-packages>/", text))


def _cached_message(prefix: str, tail: Sequence[str]) -> Message:
    """The user message: the stable prefix, then what this request adds."""
    prefix = portable(prefix)
    rest = portable("\n\n".join(part for part in tail if part))
    content = f"{prefix}\n\n{rest}" if rest else prefix
    return Message("user", content, stable=len(prefix))


def _learned_since(start: Start, language: str, state: str, ground: Grounding) -> list[str]:
    """What the run learned after its start (a chosen language, files, environment, state):
    it goes after the prefix, which stays as it was."""
    parts: list[str] = []
    if language != start.language:
        parts.append(_language_line(language, ""))
    known = set(_grounding_blocks(start.grounding))
    parts.extend(b for b in _grounding_blocks(ground) if b not in known)
    if state.strip() != start.state.strip():
        parts.append(_state_block(state))
    return parts


def build_generate(
    request: str,
    *,
    language: str,
    state: str = "",
    check: str | None = None,
    max_tokens: int = 4096,
    temperature: float | None = None,
    grounding: Grounding | None = None,
) -> LLMRequest:
    ground = grounding or Grounding()
    prefix = stable_prefix(request, Start(language, state, ground), check)
    return LLMRequest(
        system=SYSTEM_PROMPT,
        messages=(_cached_message(prefix, ()),),
        max_tokens=max_tokens,
        temperature=temperature,
        purpose="generate",
        volatile=(_environment_block(ground),),
    )


def build_plan(
    request: str,
    *,
    language: str,
    state: str,
    grounding: Grounding | None,
    max_steps: int,
    max_tokens: int,
    temperature: float | None,
) -> LLMRequest:
    """The prompt asking for a step plan; it starts with the run's usual stable prefix."""
    ground = grounding or Grounding()
    prefix = stable_prefix(request, Start(language, state, ground))
    ask = (
        f"Answer with a plan of at most {max_steps} steps that together do the request, in "
        "order. Each step is:\n"
        "## <short title>\n"
        "<at most three short lines saying what the step does and why>\n"
        "```python\n<the code of this step only>\n```\n"
        "Exactly one fenced code block per step. Steps run one after another in the same "
        "kernel, so later steps use the variables of earlier ones. Keep each step small "
        "enough to check on its own (load, clean, compute, show). No text after the last "
        "step."
    )
    return LLMRequest(
        system=SYSTEM_PROMPT,
        messages=(_cached_message(prefix, (ask,)),),
        max_tokens=max_tokens,
        temperature=temperature,
        purpose="plan",
        volatile=(_environment_block(ground),),
    )


ENV_CHARS = 600
"""Room for the environment line of a prompt."""
ERROR_CHARS = 1000
"""Room for each error line of a fix prompt (error, likely cause, failing line): an exception
message can be megabytes long, and the prompt must not grow with it."""

HISTORY_ATTEMPTS = 4
HISTORY_CODE_CHARS = 1500
"""A fix prompt recalls at most this many earlier attempts, each with this much of its code."""

_SECTION_CHARS = 200
"""Fixed text around one optional part of a fix prompt (headings, fences), generously."""

EVIDENCE_ITEMS = 5
EVIDENCE_CHARS = 300
"""A fix prompt quotes at most this many pieces of evidence, each this long at most."""
SUBSTITUTES_CHARS = 600
"""Room for each list of installed packages an import fix may use instead."""


def clip(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` within `limit` characters (head and tail kept, a note where the middle went)."""
    return trim_middle(text, limit)


def _history_block(
    earlier: Sequence[Attempt], limit: int = HISTORY_ATTEMPTS, code_chars: int = HISTORY_CODE_CHARS
) -> str:
    if not earlier:
        return ""
    lines = ["Earlier attempts (oldest first):"]
    for attempt in list(earlier)[-limit:]:
        err = attempt.error
        what = clip(f"{err.category}: {err.summary()}") if err else "succeeded"
        code = (
            attempt.code
            if len(attempt.code) <= code_chars
            else attempt.code[:code_chars] + "\n# ..."
        )
        lines.append(f"- attempt {attempt.number} ({what}):\n```\n{code.rstrip()}\n```")
    return "\n".join(lines)


STRATEGY = {
    "syntax": "The code does not parse. Fix the syntax; keep the logic.",
    "import": (
        "A module is missing from the kernel. Do not try to install it; rewrite the code with "
        "packages that are installed, or with the standard library."
    ),
    "environment": (
        "The environment stopped the code (time limit, memory, missing file or command, "
        "permissions). Change the approach: smaller work, bounded loops, files that exist, "
        "commands that exist."
    ),
    "logical": (
        "The code ran but the result is wrong: the acceptance check failed or the result was "
        "judged not to answer the request. Fix the logic."
    ),
    "sanity": (
        "The code ran but its result looks wrong (see the evidence): a NaN or infinite value, an "
        "empty table or a warning usually means a filter matched nothing, a column was parsed "
        "with the wrong type, delimiter or date format, or values were lost on the way. Find "
        "where the data goes missing (check the file preview and the state above) and fix "
        "that; do not just hide the NaN."
    ),
    "runtime": "The code raised an exception while running. Fix its cause.",
    "security": (
        "The security scanner stopped the code before it ran. Rewrite it so that it does the "
        "request without the flagged operations (no destructive, exfiltrating or "
        "escaping code). Do not obfuscate: obfuscation is flagged too."
    ),
}


def build_fix(
    request: str,
    *,
    language: str,
    failed: Attempt,
    earlier: Sequence[Attempt],
    output_text: str,
    state: str = "",
    check: str | None = None,
    alternatives: Sequence[str] = (),
    findings_text: str = "",
    max_tokens: int = 4096,
    temperature: float | None = None,
    grounding: Grounding | None = None,
    substitutes: Sequence[str] = (),
    start: Start | None = None,
) -> LLMRequest:
    """A fix prompt: the run's stable prefix (`start`; by default what is known now), then the
    failed attempt, its error and what changed since the start."""
    err = failed.error
    assert err is not None
    ground = grounding or Grounding()
    start = start or Start(language, state, ground)
    prefix = stable_prefix(request, start, check)
    parts = _learned_since(start, language, state, ground)
    history = _history_block(earlier)
    if history:
        parts.append(history)
    parts.append(f"The latest attempt ({failed.number}) failed:\n```\n{failed.code.rstrip()}\n```")
    detail = [f"Error class: {err.category}", f"Error: {clip(err.summary())}"]
    if err.line:
        detail.append(clip(f"Failing line {err.line}: {err.source_line or ''}".rstrip()))
    if err.root_cause:
        detail.append(f"Likely cause: {clip(err.root_cause)}")
    parts.append("\n".join(detail))
    if failed.rolled_back:
        note = (
            f"Attempt {failed.number}'s changes to the variables were undone: the namespace is "
            "as it was before it ran."
        )
        if failed.kept_changes:
            note += " Not undone (take them into account):\n" + "\n".join(
                f"- {clip(item, 300)}" for item in failed.kept_changes[:10]
            )
        parts.append(note)
    if findings_text:
        parts.append("Scanner findings:\n" + findings_text)
    if err.traceback:
        tb = clip(err.traceback.strip(), TRACEBACK_CHARS)
        parts.append("Traceback (trimmed):\n```\n" + tb + "\n```")
    sanity = err.ename == SANITY_ENAME
    if sanity and failed.sanity:
        parts.append(
            "Evidence that the result is wrong:\n"
            + "\n".join(
                f"- {clip(item, EVIDENCE_CHARS)}" for item in failed.sanity[:EVIDENCE_ITEMS]
            )
        )
    if output_text.strip():
        label = "Output (trimmed)" if sanity else "Output before the error (trimmed)"
        parts.append(f"{label}:\n```\n" + output_text.strip() + "\n```")
    strategy = "sanity" if sanity else err.category
    parts.append("Strategy: " + STRATEGY.get(strategy, STRATEGY["runtime"]))
    if substitutes:
        parts.append(
            "Installed packages that can do the job instead: "
            + clip(", ".join(substitutes), SUBSTITUTES_CHARS)
        )
    if alternatives:
        parts.append(
            "Installed packages with similar names: "
            + clip(", ".join(alternatives), SUBSTITUTES_CHARS)
        )
    parts.append(
        "Reply with the complete fixed code in one fenced block, then `Root cause: ...` and "
        "`Fix: ...` lines."
    )
    return LLMRequest(
        system=SYSTEM_PROMPT,
        messages=(_cached_message(prefix, parts),),
        max_tokens=max_tokens,
        temperature=temperature,
        purpose="fix",
        volatile=_volatile(start.grounding, ground),
    )


def _volatile(*grounds: Grounding) -> tuple[str, ...]:
    """The environment passages of a prompt (see `LLMRequest.volatile`), without repeats."""
    return tuple(dict.fromkeys(_environment_block(g) for g in grounds))


def fix_prompt_budget(
    request: str,
    code: str,
    *,
    language: str,
    output_chars: int,
    state_chars: int,
    earlier: int = 0,
    check: str | None = None,
    preview_chars: int = 0,
    notebook_chars: int = 0,
) -> int:
    """The most characters a fix prompt for `code` can have, whatever the code printed or raised.

    What a run produces reaches a fix prompt only through capped parts: the output excerpt
    (`execution.prompt_output_chars`), the error lines (ERROR_CHARS each), the traceback
    (TRACEBACK_CHARS) and the state summary (`generation.state_chars`); earlier attempts add
    at most HISTORY_CODE_CHARS of code each. So a flood of output or a megabyte exception
    message costs the same as a short one, and this bound says how much that is.
    """
    failed = Attempt(number=1, code=code, success=False, error=AttemptError("runtime", "Error", ""))
    bare = build_fix(
        request, language=language, failed=failed, earlier=(), output_text="", check=check
    )
    fixed = len(bare.messages[0].content)
    shown = min(earlier, HISTORY_ATTEMPTS)
    history = shown * (HISTORY_CODE_CHARS + ERROR_CHARS + _SECTION_CHARS) + bool(shown) * 100
    produced = output_chars + TRACEBACK_CHARS + 3 * ERROR_CHARS + state_chars
    evidence = EVIDENCE_ITEMS * (EVIDENCE_CHARS + 3) + 2 * SUBSTITUTES_CHARS
    # The stable prefix keeps the state and grounding of the run's start; what changed since
    # comes again after it, so both count.
    ground = 2 * grounding_budget(preview_chars, notebook_chars) + state_chars
    return fixed + history + produced + evidence + ground + 8 * _SECTION_CHARS


def grounding_budget(preview_chars: int, notebook_chars: int) -> int:
    """The most the file previews, the notebook cells and the environment add to a prompt."""

    return preview_chars + notebook_chars + ENV_CHARS + 3 * _SECTION_CHARS


def generate_prompt_budget(
    request: str,
    *,
    language: str,
    state_chars: int,
    preview_chars: int = 0,
    notebook_chars: int = 0,
    check: str | None = None,
) -> int:
    """The most characters a first prompt can have, whatever the files, notebook and state.

    Everything beyond the request and the check comes through capped parts: the state summary
    with its example values (`generation.state_chars`), the file previews
    (`generation.preview_chars`), the notebook cells (`generation.notebook_chars`) and the
    environment line (`ENV_CHARS`).
    """
    bare = build_generate(request, language=language, check=check)
    fixed = len(bare.messages[0].content)
    return fixed + state_chars + grounding_budget(preview_chars, notebook_chars)


FOCUS_TEXT = {
    "optimize": "Make it faster and lighter on memory while giving the same results.",
    "robustness": (
        "Make it robust: validate inputs, handle missing files and bad values with clear "
        "messages, keep the same results on good input."
    ),
}


def build_improve(
    request: str,
    *,
    language: str,
    focus: str,
    code: str,
    output_text: str,
    execution_s: float,
    max_tokens: int = 4096,
    temperature: float | None = None,
    start: Start | None = None,
    check: str | None = None,
) -> LLMRequest:
    """An improvement prompt: the run's stable prefix, then the working code."""
    start = start or Start(language)
    prefix = stable_prefix(request, start, check)
    parts = [_language_line(language, request)] if language != start.language else []
    parts.append(f"This code works (it ran in {execution_s:.3f}s):\n```\n{code.rstrip()}\n```")
    if output_text.strip():
        parts.append("Its output (trimmed):\n```\n" + output_text.strip() + "\n```")
    parts.append("Improve it. " + FOCUS_TEXT.get(focus, ""))
    parts.append(
        "Reply with the complete improved code in one fenced block, then one line `Fix: ...` "
        "saying what changed."
    )
    return LLMRequest(
        system=SYSTEM_PROMPT,
        messages=(_cached_message(prefix, parts),),
        max_tokens=max_tokens,
        temperature=temperature,
        purpose="improve",
        volatile=_volatile(start.grounding),
    )


VERIFY_SYSTEM = """\
You judge whether code and its output answer a request. Reply with one line \
`Score: N/10` (10: fully answers it, 0: unrelated or wrong) and one line `Reason: ...`.
"""


VERIFY_ASK = (
    "Do not write code now. Judge whether this code and its output answer the request. "
    "Reply with one line `Score: N/10` (10: fully answers it, 0: unrelated or wrong) and one "
    "line `Reason: ...`."
)


def build_verify(
    request: str,
    *,
    code: str,
    output_text: str,
    max_tokens: int = 300,
    start: Start | None = None,
    check: str | None = None,
) -> LLMRequest:
    """The quality judge. Within a run (`start` given) it opens with the run's stable prefix
    and system prompt, so it reads them from the model's cache like every other request."""
    if start is not None:
        prefix = stable_prefix(request, start, check)
        tail = (
            VERIFY_ASK,
            f"Code:\n```\n{code.rstrip()}\n```",
            f"Output (trimmed):\n```\n{output_text.strip() or '(no output)'}\n```",
        )
        return LLMRequest(
            system=SYSTEM_PROMPT,
            messages=(_cached_message(prefix, tail),),
            max_tokens=max_tokens,
            temperature=0.0,
            purpose="verify",
            volatile=_volatile(start.grounding),
        )
    content = portable(
        f"Request:\n{request.strip()}\n\nCode:\n```\n{code.rstrip()}\n```\n\n"
        f"Output (trimmed):\n```\n{output_text.strip() or '(no output)'}\n```"
    )
    return LLMRequest(
        system=VERIFY_SYSTEM,
        messages=(Message("user", content),),
        max_tokens=max_tokens,
        temperature=0.0,
        purpose="verify",
    )


def parse_score(text: str) -> tuple[float | None, str]:
    """(score 0-10, reason) from a verify reply; None when no score can be read."""
    m = re.search(r"(?i)score\W*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*10)?", text)
    if not m:
        m = re.search(r"\b([0-9]+(?:\.[0-9]+)?)\s*/\s*10\b", text)
    reason_m = re.search(r"(?im)^\W*reason\W*:\s*(.+)$", text)
    reason = reason_m.group(1).strip() if reason_m else text.strip()[:200]
    if not m:
        return None, reason
    return max(0.0, min(10.0, float(m.group(1)))), reason
