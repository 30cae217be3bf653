"""Code extraction over the fence shapes models produce, and prompt contents."""

from __future__ import annotations

import pytest

from codeflow_magic import prompts
from codeflow_magic.models import Attempt, AttemptError


@pytest.mark.parametrize(
    ("reply", "language", "code", "lang"),
    [
        ("```python\nprint(1)\n```", "python", "print(1)\n", "python"),
        ("```\nprint(1)\n```", "python", "print(1)\n", "python"),
        ("```python3\nprint(1)\n```", "python", "print(1)\n", "python"),
        ("```py\nprint(1)\n```", "python", "print(1)\n", "python"),
        ("```Python\nprint(1)\n```", "python", "print(1)\n", "python"),
        ("~~~python\nprint(1)\n~~~", "python", "print(1)\n", "python"),
        ("````python\nx = '```'\n````", "python", "x = '```'\n", "python"),
        (
            "Sure:\r\n```python\r\nprint(1)\r\nprint(2)\r\n```\r\nDone.",
            "python",
            "print(1)\nprint(2)\n",
            "python",
        ),
        ("```sh\nls -la\n```", "bash", "ls -la\n", "bash"),
        ("```bash\necho hi\n```", "bash", "echo hi\n", "bash"),
        ("```console\n$ echo hi\n$ pwd\n```", "bash", "echo hi\npwd\n", "bash"),
        ("```python {.numberLines}\nprint(1)\n```", "python", "print(1)\n", "python"),
        # several blocks: the first one in the wanted language
        (
            "```text\noutput\n```\n```python\na = 1\n```\n```python\nb = 2\n```",
            "python",
            "a = 1\n",
            "python",
        ),
        ("```bash\npip install x\n```\n```python\nimport x\n```", "python", "import x\n", "python"),
        # a reply in the other language is run as what it is
        ("```bash\necho hi\n```", "python", "echo hi\n", "bash"),
        # auto picks the block's language
        ("```bash\nls\n```", "auto", "ls\n", "bash"),
        (
            "```\nimport os\nprint(os.getcwd())\n```",
            "auto",
            "import os\nprint(os.getcwd())\n",
            "python",
        ),
        ("```\nls -la | wc -l\n```", "auto", "ls -la | wc -l\n", "bash"),
        # unclosed final fence (a cut-off reply)
        ("```python\nprint(1)\n", "python", "print(1)\n", "python"),
        ("  ```python\n  print(1)\n  ```", "python", "  print(1)\n", "python"),
    ],
)
def test_extract_code_fence_shapes(reply: str, language: str, code: str, lang: str) -> None:
    ext = prompts.extract_code(reply, language)
    assert ext is not None
    assert ext.code == code
    assert ext.language == lang


@pytest.mark.parametrize("reply", ["", "No code here.", "```\n\n```", "```text\nhello\n```"])
def test_no_code_gives_none(reply: str) -> None:
    assert prompts.extract_code(reply, "python") is None


def test_require_closed_waits_for_the_closing_fence() -> None:
    partial = "Here:\n```python\nprint(1)\n"
    assert prompts.extract_code(partial, "python", require_closed=True) is None
    assert prompts.extract_code(partial + "```", "python", require_closed=True) is not None


def test_explanation_excludes_the_code() -> None:
    ext = prompts.extract_code("Intro\n```python\nx=1\n```\nRoot cause: a\nFix: b", "python")
    assert ext is not None
    assert "x=1" not in ext.explanation
    assert prompts.parse_explanation(ext.explanation) == ("a", "b")


def test_generate_prompt_has_request_language_state_and_check() -> None:
    req = prompts.build_generate(
        "plot revenue",
        language="python",
        state="df: DataFrame (12, 3) cols month:int",
        check="len(df)==12",
    )
    text = req.messages[0].content
    assert "plot revenue" in text and "Python" in text
    assert "df: DataFrame" in text and "len(df)==12" in text


def test_fix_prompt_for_import_errors_offers_alternatives() -> None:
    failed = Attempt(
        number=1,
        code="import pandaz\n",
        success=False,
        error=AttemptError(
            "import",
            "ModuleNotFoundError",
            "No module named 'pandaz'",
            line=1,
            source_line="import pandaz",
            root_cause="module `pandaz` is not installed",
        ),
    )
    req = prompts.build_fix(
        "load csv",
        language="python",
        failed=failed,
        earlier=[],
        output_text="",
        alternatives=["pandas"],
    )
    text = req.messages[0].content
    assert "Error class: import" in text and "pandas" in text and "Do not try to install" in text
    assert req.purpose == "fix"


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 8/10\nReason: ok", 8.0),
        ("score 3", 3.0),
        ("I'd say 6.5/10.", 6.5),
        ("Score: 12/10", 10.0),
        ("great", None),
    ],
)
def test_parse_score(text: str, score: float | None) -> None:
    assert prompts.parse_score(text)[0] == score


def test_installed_versions_are_seen_by_the_model_but_not_part_of_the_cache_key() -> None:
    """A recorded notebook replays after a library update: the environment line is volatile."""
    from codeflow_magic.providers.cache import cache_key

    def ask(env: str, kind: str = "generate") -> object:
        ground = prompts.Grounding(environment=env, notebook="# Sales\nrevenue by month")
        if kind == "generate":
            return prompts.build_generate("plot revenue", language="python", grounding=ground)
        failed = Attempt(
            number=1,
            code="import scipy",
            success=False,
            error=AttemptError(category="import", ename="ModuleNotFoundError", evalue="scipy"),
        )
        return prompts.build_fix(
            "plot revenue",
            language="python",
            failed=failed,
            earlier=(),
            output_text="",
            grounding=ground,
        )

    for kind in ("generate", "fix"):
        old = ask("Python 3.11; pandas 3.0; numpy 2.3", kind)
        new = ask("Python 3.11; pandas 3.1; numpy 2.4", kind)
        assert "pandas 3.0" in old.messages[0].content  # type: ignore[attr-defined]
        assert "pandas 3.1" in new.messages[0].content  # type: ignore[attr-defined]
        assert cache_key("anthropic", "m", old) == cache_key("anthropic", "m", new)  # type: ignore[arg-type]
        # what the request is about still counts
        other = prompts.build_generate(
            "plot costs",
            language="python",
            grounding=prompts.Grounding(environment="Python 3.11; pandas 3.0; numpy 2.3"),
        )
        assert cache_key("anthropic", "m", other) != cache_key("anthropic", "m", old)  # type: ignore[arg-type]


def test_library_paths_in_a_fix_prompt_do_not_name_the_machine() -> None:
    """A traceback through pandas reads the same from any checkout, so its answer replays."""
    from codeflow_magic.providers.cache import cache_key

    def fix_prompt(venv: str) -> object:
        failed = Attempt(
            number=1,
            code="df['region']",
            success=False,
            error=AttemptError(
                category="runtime",
                ename="KeyError",
                evalue="'region'",
                traceback=(
                    f"File {venv}/lib/python3.11/site-packages/pandas/core/frame.py:4330, "
                    "in DataFrame.__getitem__(self, key)\n"
                    "File /usr/lib/python3.11/json/decoder.py:337, in decode\nKeyError: 'region'"
                ),
            ),
        )
        return prompts.build_fix(
            "total by region", language="python", failed=failed, earlier=(), output_text=""
        )

    here, there = fix_prompt("/work/main/.venv"), fix_prompt("/home/ana/proj/.venv")
    text = here.messages[0].content  # type: ignore[attr-defined]
    assert "<site-packages>/pandas/core/frame.py:4330" in text and "/work/main" not in text
    assert "<stdlib>/json/decoder.py:337" in text
    assert cache_key("anthropic", "m", here) == cache_key("anthropic", "m", there)  # type: ignore[arg-type]
