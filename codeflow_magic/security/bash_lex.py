"""Shell lexer for the Bash rules: text -> pipelines of simple commands.

Quotes, `$(...)`, backticks, process substitution, redirections and here-documents are
understood well enough to find every command a script runs, including nested ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .paths import COMPUTED


@dataclass
class Command:
    words: list[str]
    line: int
    redirects: list[tuple[str, str]] = field(default_factory=list)
    subs: list[tuple[str, int]] = field(default_factory=list)
    heredoc: str | None = None
    background: bool = False


@dataclass
class Pipeline:
    commands: list[Command] = field(default_factory=list)


@dataclass
class _Lexed:
    pipelines: list[Pipeline]
    unbalanced: bool


def _read_balanced(text: str, i: int, open_ch: str, close_ch: str) -> int:
    """Index just past the `close_ch` matching an already consumed `open_ch`."""
    depth = 1
    n = len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 2
            continue
        elif c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _redirect_at(text: str, i: int) -> bool:
    """`>&` or `&>` at `i`: a redirection, not a separator."""
    return text.startswith(">&", i) or text.startswith("&>", i)


def lex(text: str, first_line: int = 1) -> _Lexed:
    """Split a script into pipelines of simple commands."""
    pipelines: list[Pipeline] = []
    pipeline = Pipeline()
    cmd = Command([], first_line)
    word: list[str] = []
    has_word = False
    pending_redirect: str | None = None
    heredocs: list[tuple[Command, str, bool]] = []
    unbalanced = False
    line = first_line
    i = 0
    n = len(text)

    def finish_word() -> None:
        nonlocal word, has_word, pending_redirect
        if not has_word:
            return
        w = "".join(word)
        if pending_redirect is not None:
            if pending_redirect.startswith("<<") and pending_redirect != "<<<":
                quoted = "'" in w or '"' in w
                heredocs.append((cmd, w.strip("'\"").lstrip("-"), quoted))
            else:
                cmd.redirects.append((pending_redirect, w))
            pending_redirect = None
        else:
            if not cmd.words:
                cmd.line = word_line
            cmd.words.append(w)
        word = []
        has_word = False

    def finish_command(background: bool = False) -> None:
        nonlocal cmd
        finish_word()
        cmd.background = background
        if cmd.words or cmd.redirects:
            pipeline.commands.append(cmd)
        cmd = Command([], line)

    def finish_pipeline() -> None:
        nonlocal pipeline
        if pipeline.commands:
            pipelines.append(pipeline)
        pipeline = Pipeline()

    word_line = line
    while i < n:
        c = text[i]
        if not has_word:
            word_line = line
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "\n":
                line += 1
                i += 2
                continue
            word.append(text[i + 1])
            has_word = True
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                unbalanced = True
                end = n
            word.append(text[i + 1 : end])
            line += text.count("\n", i, end)
            has_word = True
            i = end + 1
            continue
        if c == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if text.startswith("$(", j) and not text.startswith("$((", j):
                    end = _read_balanced(text, j + 2, "(", ")")
                    if end < 0:
                        unbalanced = True
                        end = n
                    cmd.subs.append((text[j + 2 : end - 1], line))
                    buf.append(COMPUTED)
                    j = end
                    continue
                if text[j] == "`":
                    end = text.find("`", j + 1)
                    if end < 0:
                        unbalanced = True
                        end = n - 1
                    cmd.subs.append((text[j + 1 : end], line))
                    buf.append(COMPUTED)
                    j = end + 1
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                unbalanced = True
            word.append("".join(buf))
            line += text.count("\n", i, j)
            has_word = True
            i = j + 1
            continue
        if text.startswith("$((", i):
            end = _read_balanced(text, i + 3, "(", ")")
            end = n if end < 0 else min(n, end + 1)
            word.append(COMPUTED)
            has_word = True
            i = end
            continue
        if text.startswith("$(", i) or text.startswith("<(", i) or text.startswith(">(", i):
            if c in "<>" and has_word:
                pass
            else:
                end = _read_balanced(text, i + 2, "(", ")")
                if end < 0:
                    unbalanced = True
                    end = n
                cmd.subs.append((text[i + 2 : end - 1], line))
                line += text.count("\n", i, end)
                word.append(COMPUTED)
                has_word = True
                i = end
                continue
        if c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                unbalanced = True
                end = n - 1
            cmd.subs.append((text[i + 1 : end], line))
            word.append(COMPUTED)
            has_word = True
            i = end + 1
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "{":
            end = text.find("}", i)
            end = n if end < 0 else end + 1
            word.append(text[i:end])
            has_word = True
            i = end
            continue
        if c == "#" and not has_word:
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in " \t\r":
            finish_word()
            i += 1
            continue
        if c == "\n":
            finish_command()
            finish_pipeline()
            line += 1
            i += 1
            for hcmd, delim, _quoted in heredocs:
                body: list[str] = []
                while i < n:
                    end = text.find("\n", i)
                    end = n if end < 0 else end
                    current = text[i:end]
                    i = end + 1
                    line += 1
                    if current.strip() == delim:
                        break
                    body.append(current)
                hcmd.heredoc = "\n".join(body)
            heredocs.clear()
            continue
        if c in ";&|()" and not _redirect_at(text, i):  # a redirection is read below
            two = text[i : i + 2]
            if two in ("&&", "||", ";;"):
                finish_command()
                finish_pipeline()
                i += 2
                continue
            if two == "|&":
                finish_command()
                i += 2
                continue
            if c == "|":
                finish_command()
                i += 1
                continue
            if c == "&":
                finish_command(background=True)
                finish_pipeline()
                i += 1
                continue
            finish_command()
            finish_pipeline()
            i += 1
            continue
        m = re.match(r"(\d*)(>>|>\||>&|<<<|<<-|<<|<>|<&|&>>|&>|>|<)", text[i:])
        if m and (not has_word or "".join(word).isdigit()):
            if has_word:
                word = []
                has_word = False
            op = m.group(2)
            i += m.end()
            if op in (">&", "<&"):
                fd = re.match(r"\s*(\d+|-)", text[i:])
                if fd:
                    i += fd.end()
                    continue
                op = ">"
            pending_redirect = op
            while i < n and text[i] in " \t":
                i += 1
            continue
        word.append(c)
        has_word = True
        i += 1
    finish_command()
    finish_pipeline()
    return _Lexed(pipelines, unbalanced)
