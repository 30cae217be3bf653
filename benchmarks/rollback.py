"""Bench: what a transactional attempt costs (snapshot before it, rollback after it fails).

Measured on one real kernel, side by side with two plain silent round trips (the least any
two operations cost), for an empty namespace, 100 small objects and a 1 GB DataFrame.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.speed import Line

CASES: dict[str, tuple[str, str, float]] = {
    "empty": ("", "empty namespace", 5.0),
    "small": (
        "import numpy as np\n"
        "for _i in range(100):\n"
        "    globals()[f'obj{_i}'] = [_i] * 10 if _i % 3 == 0 else ({'k': _i} if _i % 3 == 1 "
        "else np.arange(50))\n",
        "100 small objects",
        10.0,
    ),
    "frame": (
        "import numpy as np, pandas as pd\n"
        "big = pd.DataFrame({f'c{_i}': np.zeros(16_777_216) for _i in range(8)})\n",
        "a 1 GB DataFrame",
        20.0,
    ),
}


async def _measure(setup: str, rounds: int) -> tuple[float, float, float]:
    from codeflow_magic import rollback
    from codeflow_magic.executors.kernel import KernelExecutor

    with tempfile.TemporaryDirectory() as wd:
        ex = KernelExecutor(work_dir=Path(wd), timeout=600)
        await ex.start()
        try:
            if setup:
                done = await ex.execute(setup)
                assert done.ok, done
            await rollback.call(ex, "discard", token="warm")  # the module is in the kernel
            ours: list[float] = []
            base: list[float] = []
            inside: list[float] = []
            for n in range(rounds):
                await ex.execute("new_name = 1\nraise ValueError")  # a failed attempt
                t = time.perf_counter()
                begun = await rollback.call(ex, "begin", token=f"b{n}", max_bytes=256 * 1024**2)
                back = await rollback.call(ex, "rollback", token=f"b{n}", code="")
                ours.append(time.perf_counter() - t)
                inside.append(float(begun["seconds"]) + float(back["seconds"]))
                await rollback.call(ex, "discard", token=f"b{n}")
                t = time.perf_counter()
                await ex.run_snippet("pass", 10)
                await ex.run_snippet("pass", 10)
                base.append(time.perf_counter() - t)
        finally:
            await ex.shutdown()
    return statistics.median(ours), statistics.median(base), statistics.median(inside)


def bench_rollback(case: str, key: str, rounds: int = 15) -> Line:
    """The target is on the snapshot and rollback work in the kernel; the line also shows the
    whole cost with its two round trips beside two empty round trips on the same kernel."""
    setup, what, target_ms = CASES[case]
    ours, base, inside = asyncio.run(_measure(setup, rounds))
    return Line(
        key,
        f"snapshot + rollback of a failed attempt, {what}: work in the kernel "
        f"{inside * 1000:.2f} ms",
        f"{ours * 1000:.2f} ms with round trips",
        f"{base * 1000:.2f} ms (2 empty round trips)",
        ours / base if base else None,
        f"work <= {target_ms:g} ms",
        inside * 1000 <= target_ms,
    )
