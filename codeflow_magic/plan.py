"""Step plans: the prompt that asks for one, and a tolerant reading of the answer. Pure.

A plan is a sequence of steps, each a markdown heading `## <title>`, a few lines of prose and
exactly one fenced code block. Models drift from that shape (`### Step 2: ...`, `**Step 3.**`,
prose after the block, a block without a heading), so reading is tolerant: a step starts at a
heading-like line, or at a code block that has no heading of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import CodeFlowError
from .models import DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT
from .prompts import (
    OTHER_TAGS_NOT_CODE,
    guess_language,
    iter_blocks,
    normalize_newlines,
    tag_language,
)

PROSE_CHARS = 600
"""A step's prose as kept (the heading says what it does; the prose says why, briefly)."""

_HEADING = re.compile(
    r"^\s{0,3}(?:#{1,4}\s+|\*\*\s*)(?:step\s*\d+\s*[:.)-]?\s*)?(?P<title>.+?)\s*(?:\*\*)?\s*$",
    re.I,
)
_STEP_LINE = re.compile(r"^\s{0,3}step\s*(?P<n>\d+)\s*[:.)-]\s*(?P<title>.+?)\s*$", re.I)


__all__ = ["DEFAULT_MAX_STEPS", "MAX_STEPS_LIMIT", "PlanError", "Step", "parse_plan"]


class PlanError(CodeFlowError):
    """The model's answer is not a usable plan (no steps, no code, too many steps)."""


@dataclass(frozen=True)
class Step:
    """One step of a plan as the model wrote it."""

    number: int
    title: str
    prose: str
    code: str
    language: str
    """`python`, `bash`, or the unknown tag the model used (that step fails, clearly)."""


def _title_of(line: str) -> str | None:
    m = _STEP_LINE.match(line)
    if m:
        return m.group("title").strip(" *#:")
    m = _HEADING.match(line)
    if m and (line.lstrip().startswith("#") or line.strip().endswith("**")):
        title = m.group("title").strip(" *#:")
        return title or None
    return None


def parse_plan(text: str, language: str = "python") -> list[Step]:
    """The steps of a plan answer, in order. Raises PlanError when there is no code at all."""
    text = normalize_newlines(text)
    lines = text.split("\n")
    blocks = [b for b in iter_blocks(text) if b.tag not in OTHER_TAGS_NOT_CODE]
    if not blocks:
        raise PlanError(
            "the model's plan has no code blocks (each step needs one fenced block)"
            if text.strip()
            else "the model's plan is empty"
        )
    steps: list[Step] = []
    cursor = 0
    for block in blocks:
        title = ""
        prose: list[str] = []
        for line in lines[cursor : block.start]:
            found = _title_of(line)
            if found is not None:
                title, prose = found, []
            elif line.strip():
                prose.append(line.strip())
        cursor = block.end + 1
        tag_lang = tag_language(block.tag)
        if block.tag and tag_lang is None:
            lang = block.tag
        else:
            lang = tag_lang or (
                language if language in ("python", "bash") else guess_language(block.code)
            )
        number = len(steps) + 1
        steps.append(
            Step(
                number=number,
                title=title or f"Step {number}",
                prose=" ".join(prose)[:PROSE_CHARS],
                code=block.code.strip("\n"),
                language=lang,
            )
        )
    return steps


def check_steps(steps: Sequence[Step], max_steps: int) -> None:
    """A plan longer than allowed is refused whole: running its first part would leave a
    half-done analysis that looks finished."""
    if len(steps) > max_steps:
        raise PlanError(
            f"the model's plan has {len(steps)} steps; at most {max_steps} are allowed "
            "(--max-steps)"
        )


def step_request(request: str, step: Step, total: int) -> str:
    """What one step's own run asks (its fixes see the whole request and the step)."""
    lines = [f"{request.strip()}", "", f"This is step {step.number} of {total}: {step.title}"]
    if step.prose:
        lines.append(step.prose)
    return "\n".join(lines)


def step_markdown(step: Step) -> str:
    """The markdown cell a step gets in the notebook."""
    return f"## {step.title}" + (f"\n\n{step.prose}" if step.prose else "")
