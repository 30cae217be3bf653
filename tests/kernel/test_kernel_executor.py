"""The local kernel executor on a real ipykernel: outputs, Bash, state summary, caps, install."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from codeflow_magic.errors import UsageError
from codeflow_magic.executors.base import Executor
from codeflow_magic.executors.kernel import KernelExecutor
from codeflow_magic.models import Output
from codeflow_magic.text import strip_ansi

pytestmark = [pytest.mark.kernel, pytest.mark.asyncio(loop_scope="module")]


def _stream(outputs: tuple[Output, ...], name: str = "stdout") -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == name)


def _rich(outputs: tuple[Output, ...]) -> list[Output]:
    return [o for o in outputs if o["output_type"] in ("display_data", "execute_result")]


async def test_is_an_executor(executor: KernelExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.name == "kernel" and executor.supports_install


async def test_state_persists_across_executes(executor: KernelExecutor) -> None:
    first = await executor.execute("persist_me = 41")
    assert first.ok and first.outputs == ()
    second = await executor.execute("persist_me + 1")
    assert second.ok
    (result,) = second.outputs
    assert result["output_type"] == "execute_result"
    assert result["data"]["text/plain"] == "42"


async def test_cwd_is_work_dir(executor: KernelExecutor, kernel_work_dir: Path) -> None:
    result = await executor.execute("import os; print(os.getcwd())")
    assert Path(_stream(result.outputs).strip()).resolve() == kernel_work_dir.resolve()


async def test_python_error_fields(executor: KernelExecutor) -> None:
    result = await executor.execute("def broken():\n    return 1 / 0\nbroken()")
    assert result.status == "error" and not result.ok
    assert result.ename == "ZeroDivisionError" and result.evalue == "division by zero"
    assert any("broken" in strip_ansi(line) for line in result.traceback)
    assert [o["ename"] for o in result.outputs if o["output_type"] == "error"] == [
        "ZeroDivisionError"
    ]
    after = await executor.execute("print('still fine')")
    assert after.ok and _stream(after.outputs) == "still fine\n"


async def test_matplotlib_figure_is_png(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    )
    assert result.ok, result.evalue
    images = [o for o in _rich(result.outputs) if "image/png" in o["data"]]
    assert len(images) == 1 and images[0]["output_type"] == "display_data"
    png = base64.b64decode(images[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


async def test_html_display_keeps_every_mime_type(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))"
    )
    (out,) = _rich(result.outputs)
    assert out["output_type"] == "display_data"
    assert out["data"]["text/html"] == "<b>bold</b>"
    assert "text/plain" in out["data"]


async def test_dataframe_has_html_and_plain(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\nframe"
    )
    (out,) = _rich(result.outputs)
    assert out["output_type"] == "execute_result"
    assert "<table" in out["data"]["text/html"]
    assert "a" in out["data"]["text/plain"] and "y" in out["data"]["text/plain"]


async def test_consecutive_streams_merge_and_names_stay_apart(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "import sys\n"
        "for i in range(3):\n"
        "    print(i, flush=True)\n"
        "print('oops', file=sys.stderr, flush=True)\n"
        "print('end', flush=True)"
    )
    kinds = [(o["output_type"], o.get("name")) for o in result.outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("stream", "stdout")]
    assert result.outputs[0]["text"] == "0\n1\n2\n"
    assert result.outputs[2]["text"] == "end\n"


async def test_clear_output_and_display_update(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "from IPython.display import clear_output, display, HTML\n"
        "print('gone', flush=True)\n"
        "clear_output()\n"
        "handle = display(HTML('<i>first</i>'), display_id=True)\n"
        "print('kept', flush=True)\n"
        "handle.update(HTML('<i>second</i>'))"
    )
    assert result.ok
    assert "gone" not in _stream(result.outputs)
    (display,) = _rich(result.outputs)
    assert display["data"]["text/html"] == "<i>second</i>"
    assert _stream(result.outputs) == "kept\n"


async def test_outputs_stream_live_to_callback(
    executor: KernelExecutor, kernel_work_dir: Path
) -> None:
    """The kernel waits for a file that only the callback creates: it must see `first` live."""
    flag = kernel_work_dir / "go-python"
    seen: list[Output] = []

    def on_output(out: Output) -> None:
        seen.append(out)
        if "first" in out.get("text", ""):
            flag.touch()

    result = await executor.execute(
        "import os, time\n"
        "print('first', flush=True)\n"
        "for _ in range(600):\n"
        "    if os.path.exists('go-python'):\n"
        "        print('second')\n"
        "        break\n"
        "    time.sleep(0.05)\n"
        "else:\n"
        "    print('never streamed')",
        on_output=on_output,
    )
    assert _stream(result.outputs) == "first\nsecond\n"
    assert "".join(o.get("text", "") for o in seen) == "first\nsecond\n"


async def test_bash_runs_in_work_dir(executor: KernelExecutor, kernel_work_dir: Path) -> None:
    result = await executor.execute("echo hi; pwd", language="bash")
    assert result.ok, result.evalue
    lines = _stream(result.outputs).splitlines()
    assert lines[0] == "hi"
    assert Path(lines[1]).resolve() == kernel_work_dir.resolve()


async def test_files_from_python_visible_to_bash(executor: KernelExecutor) -> None:
    await executor.execute(
        "import os\nos.makedirs('sub', exist_ok=True)\n"
        "open('sub/data.txt', 'w').write('from python\\n')"
    )
    result = await executor.execute("cd sub && cat data.txt", language="bash")
    assert result.ok and _stream(result.outputs) == "from python\n"


async def test_bash_mistyped_command(executor: KernelExecutor) -> None:
    result = await executor.execute("echo before; lss -la", language="bash")
    assert result.status == "error"
    assert result.ename == "BashError"
    assert result.evalue.startswith("exit status 127: ")
    assert "lss: command not found" in result.evalue
    assert _stream(result.outputs) == "before\n"
    assert "command not found" in _stream(result.outputs, "stderr")


async def test_bash_syntax_error_is_recognisable(executor: KernelExecutor) -> None:
    result = await executor.execute("if then fi", language="bash")
    assert result.ename == "BashError"
    assert result.evalue.startswith("exit status 2: ")
    assert "syntax error" in result.evalue


async def test_bash_script_needs_no_quoting(executor: KernelExecutor) -> None:
    script = (
        "printf '%s\\n' \"it's \\\"quoted\\\"\" '$HOME stays' \"\"\"x\"\"\" '''y''' 'back\\slash'\n"
        "echo $((6 * 7))"
    )
    result = await executor.execute(script, language="bash")
    assert result.ok, result.evalue
    assert _stream(result.outputs).splitlines() == [
        'it\'s "quoted"',
        "$HOME stays",
        "x",
        "y",
        "back\\slash",
        "42",
    ]


async def test_bash_streams_line_by_line(executor: KernelExecutor, kernel_work_dir: Path) -> None:
    flag = kernel_work_dir / "go-bash"

    def on_output(out: Output) -> None:
        if "first" in out.get("text", ""):
            flag.touch()

    result = await executor.execute(
        "echo first; for i in $(seq 600); do [ -e go-bash ] && echo second && exit 0; "
        "sleep 0.05; done; echo never streamed",
        language="bash",
        on_output=on_output,
    )
    assert result.ok and _stream(result.outputs) == "first\nsecond\n"


async def test_bash_leaves_no_names_behind(executor: KernelExecutor) -> None:
    await executor.execute("true", language="bash")
    await executor.execute("false", language="bash")
    result = await executor.execute(
        "print(sorted(n for n in globals() if 'codeflow' in n or n == 'BashError'))"
    )
    assert _stream(result.outputs) == "[]\n"


async def test_unknown_language_is_usage_error(executor: KernelExecutor) -> None:
    with pytest.raises(UsageError, match="unknown language 'ruby'"):
        await executor.execute("puts 1", language="ruby")


async def test_describe_state(executor: KernelExecutor) -> None:
    await executor.execute(
        "import numpy as np, pandas as pd\n"
        "df_state = pd.DataFrame({'price': [1.5, 2.5], 'name': ['a', 'b']})\n"
        "items_state = [1, 2, 3, 4, 5, 6, 7]\n"
        "arr_state = np.zeros((3, 4), dtype='int32')\n"
        "label_state = 'hello'\n"
        "_private_state = 1\n"
        "def helper_state(x):\n    return x\n"
    )
    counter = await executor.execute("len(In)")
    text = await executor.describe_state()
    assert "df_state: DataFrame 2 rows x 2 cols" in text
    assert "'price': float64" in text and "'name':" in text
    assert "items_state: list len 7" in text
    assert "arr_state: ndarray shape (3, 4), dtype int32" in text
    assert "label_state: str len 5 = 'hello'" in text
    assert "helper_state(...)" in text
    assert "_private_state" not in text and "np:" not in text and "In:" not in text
    # Silent: the summary neither counts as an execution nor leaves a name behind.
    again = await executor.execute("len(In)")
    before = int(counter.outputs[0]["data"]["text/plain"])
    assert int(again.outputs[0]["data"]["text/plain"]) == before + 1
    names = await executor.execute("[n for n in globals() if 'codeflow' in n]")
    assert names.outputs[0]["data"]["text/plain"] == "[]"


async def test_describe_state_is_bounded(executor: KernelExecutor) -> None:
    await executor.execute("for i in range(300):\n    globals()[f'bulk_{i:03d}'] = 'v' * 50")
    text = await executor.describe_state(max_chars=500)
    assert 0 < len(text) <= 500
    assert "more" in text.splitlines()[-1]
    await executor.execute("for i in range(300):\n    del globals()[f'bulk_{i:03d}']")


async def test_output_flood_is_capped(executor: KernelExecutor) -> None:
    result = await executor.execute(
        "print('H' * 10**7)\nfor i in range(20000):\n    print('line', i)"
    )
    assert result.ok
    cap = executor.max_output_chars
    text = _stream(result.outputs)
    assert result.dropped_chars > 10**7 - cap
    marker = f"... [codeflow: {result.dropped_chars:,} characters dropped] ..."
    assert marker in text
    assert len(text) <= cap + len(marker) + 2
    head, tail = text.split(marker)
    assert head.startswith("H" * 100)
    assert tail.rstrip().endswith("line 19999")


async def test_many_small_prints_are_capped(executor: KernelExecutor) -> None:
    result = await executor.execute("for i in range(200000):\n    print(i)")
    text = _stream(result.outputs)
    assert result.dropped_chars > 0
    assert text.startswith("0\n1\n2\n")
    assert text.endswith("199999\n")
    assert len(text) < executor.max_output_chars + 100


async def test_install_rejects_bad_names(executor: KernelExecutor) -> None:
    for bad in ("", "requests; rm -rf /", "--index-url=http://x", "../pkg", "a b", "pkg@git"):
        with pytest.raises(UsageError, match="not a plain package requirement"):
            await executor.install(bad)


async def test_install_already_present_package(executor: KernelExecutor) -> None:
    """pip runs with the kernel's interpreter; a satisfied requirement needs no index."""
    result = await executor.install("pip")
    assert result.ok, result.evalue
    assert "already satisfied" in _stream(result.outputs).lower()
