"""Escape attempts run through an isolated executor (sandbox or docker), not through a scanner.

Each check runs real code in the backend and asserts what the host sees afterwards, so a
backend that forgets a flag fails here.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from codeflow_magic.executors.base import Executor
from codeflow_magic.models import ExecutionResult


def stdout(result: ExecutionResult) -> str:
    return "".join(
        str(o.get("text", ""))
        for o in result.outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


async def run_ok(ex: Executor, code: str, timeout: float = 60.0) -> str:
    result = await ex.execute(code, timeout=timeout)
    assert result.ok, (result.status, result.ename, result.evalue, result.outputs)
    return stdout(result)


async def check_state_and_png(ex: Executor) -> None:
    await run_ok(ex, "counter = 41")
    assert (await run_ok(ex, "counter += 1\nprint(counter)")).strip() == "42"
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()\n"
    result = await ex.execute(code, timeout=120)
    assert result.ok, result
    pngs = [
        o
        for o in result.outputs
        if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
    ]
    assert pngs, result.outputs
    assert len(pngs[0]["data"]["image/png"]) > 1000


async def check_no_network(ex: Executor) -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=5)\n"
        "    print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print('blocked', exc.errno)\n"
        "try:\n"
        "    socket.getaddrinfo('example.org', 443)\n"
        "    print('RESOLVED')\n"
        "except OSError:\n"
        "    print('no dns')\n"
    )
    out = await run_ok(ex, code)
    assert "blocked" in out and "CONNECTED" not in out, out
    assert "RESOLVED" not in out, out


async def check_writes_outside_work_dir_fail(ex: Executor, work_dir: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    targets = [
        f"/etc/codeflow-escape-{tag}",
        f"/usr/codeflow-escape-{tag}",
        f"{work_dir.parent}/codeflow-escape-{tag}",
        f"/root/codeflow-escape-{tag}",
        f"{Path.cwd()}/codeflow-escape-{tag}",
    ]
    code = (
        f"targets = {targets!r}\n"
        "for t in targets:\n"
        "    try:\n"
        "        open(t, 'w').write('x')\n"
        "        print('WROTE', t)\n"
        "    except OSError as exc:\n"
        "        print('denied', t)\n"
    )
    out = await run_ok(ex, code)
    for target in targets:
        # /tmp inside is a private tmpfs: a write there may succeed but must not reach the host.
        if not target.startswith("/tmp/"):
            assert f"denied {target}" in out, out
        assert not os.path.exists(target), target


async def check_shadow_unreadable(ex: Executor) -> None:
    code = (
        "try:\n"
        "    print('READ', len(open('/etc/shadow').read()))\n"
        "except OSError as exc:\n"
        "    print('denied', type(exc).__name__)\n"
    )
    out = await run_ok(ex, code)
    assert "denied" in out and "READ" not in out, out


async def check_secret_absent(ex: Executor, name: str, value: str) -> None:
    code = (
        "import os\n"
        f"print(repr(os.environ.get({name!r})))\n"
        f"print({value!r} in open('/proc/self/environ', 'rb').read().decode('latin-1'))\n"
        "import subprocess\n"
        "print(subprocess.run(['env'], capture_output=True, text=True).stdout)\n"
    )
    out = await run_ok(ex, code)
    lines = out.splitlines()
    assert lines[0] == "None" and lines[1] == "False", out
    assert value not in out


async def check_memory_limit(ex: Executor, limit_text: str) -> ExecutionResult:
    """A 3 GB allocation must end in an environment-type failure; the backend still works."""
    await run_ok(ex, "keep_me = 'still here'")
    result = await ex.execute("big = b'x' * (3 * 1024**3)\nprint(len(big))", timeout=120)
    assert not result.ok
    if result.status == "died":
        assert f"out of memory, limit {limit_text}" in result.evalue, result
    else:
        assert result.ename == "MemoryError", result
        # a clean MemoryError keeps state
        assert (await run_ok(ex, "print(keep_me)")).strip() == "still here"
    assert (await run_ok(ex, "print(1 + 1)")).strip() == "2"
    return result


async def check_pids_limit(ex: Executor, limit: int) -> None:
    code = (
        "import subprocess\n"
        "procs, failure = [], ''\n"
        "for _ in range(400):\n"
        "    try:\n"
        "        procs.append(subprocess.Popen(['sleep', '60']))\n"
        "    except OSError as exc:\n"
        "        failure = type(exc).__name__\n"
        "        break\n"
        "print(len(procs), failure)\n"
        "for p in procs:\n"
        "    p.kill()\n"
        "for p in procs:\n"
        "    p.wait()\n"
    )
    out = (await run_ok(ex, code, timeout=120)).split()
    started, failure = int(out[0]), out[1] if len(out) > 1 else ""
    assert started < min(400, limit), out
    assert failure, out
    assert (await run_ok(ex, "print(2 + 2)")).strip() == "4"


async def check_work_dir_file(ex: Executor, work_dir: Path) -> None:
    name = f"made-inside-{uuid.uuid4().hex[:8]}.txt"
    await run_ok(ex, f"open({name!r}, 'w').write('hello from inside')")
    assert (work_dir / name).read_text() == "hello from inside"


async def check_endless_loop(ex: Executor) -> None:
    await run_ok(ex, "survivor = 7")
    result = await ex.execute("while True:\n    pass", timeout=3)
    assert result.status == "timeout", result
    assert result.state_kept, result
    assert (await run_ok(ex, "print(survivor * 6)")).strip() == "42"


async def check_bash(ex: Executor) -> None:
    result = await ex.execute("echo $((6 * 7)); pwd", language="bash", timeout=60)
    assert result.ok, result
    lines = stdout(result).split()
    assert lines[0] == "42"
    bad = await ex.execute("exit 3", language="bash", timeout=60)
    assert not bad.ok and "3" in bad.evalue


async def check_output_cap(ex: Executor, cap: int) -> None:
    result = await ex.execute("print('y' * 500_000)", timeout=60)
    assert result.ok
    text = stdout(result)
    assert result.dropped_chars > 0
    assert len(text) < cap + 200
