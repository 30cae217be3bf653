"""Start-to-ready and `1+1` round trip on every available backend, beside the local kernel.

    python benchmarks/backends.py [--starts 3] [--runs 30]

All numbers come from one run on this machine, so the ratios compare like with like. Backends
that cannot run here are listed with the reason (from `codeflow doctor`'s checks). The gateway
column uses a `jupyter kernelgateway` started on loopback for the occasion.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gatewayserver import TOKEN, GatewayError, kernel_gateway

from codeflow_magic.config import load_settings
from codeflow_magic.executors import make_executor
from codeflow_magic.executors.doctor import run_checks


async def measure(
    backend: str, work_dir: Path, extra: dict[str, Any], starts: int, runs: int
) -> tuple[float, float]:
    settings = load_settings(extra=extra, work_dir=work_dir)
    start_times: list[float] = []
    trips: list[float] = []
    for i in range(starts):
        ex = make_executor(settings, work_dir=work_dir, backend=backend)
        began = time.perf_counter()
        await ex.start()
        start_times.append(time.perf_counter() - began)
        try:
            if i == 0:
                await ex.execute("1+1")  # warm-up
                for _ in range(runs):
                    t = time.perf_counter()
                    result = await ex.execute("1+1")
                    trips.append(time.perf_counter() - t)
                    assert result.ok, result
        finally:
            await ex.shutdown()
    return statistics.median(start_times), statistics.median(trips)


async def main_async(starts: int, runs: int) -> None:
    work_dir = Path(tempfile.mkdtemp(prefix="cf-bench-", dir="/tmp"))
    settings = load_settings(work_dir=work_dir)
    status = {c.backend: c for c in run_checks(settings)}
    rows: list[tuple[str, float | None, float | None, str]] = []
    try:
        for backend in ("kernel", "sandbox", "docker"):
            if not status[backend].ok:
                rows.append((backend, None, None, f"{status[backend].detail}"))
                continue
            ready, trip = await measure(backend, work_dir, {}, starts, runs)
            rows.append((backend, ready, trip, ""))
        try:
            with kernel_gateway() as url:
                extra = {"execution.gateway_url": url, "execution.gateway_token": TOKEN}
                ready, trip = await measure("gateway", work_dir, extra, starts, runs)
                rows.append(("gateway", ready, trip, ""))
        except (OSError, GatewayError) as exc:
            rows.append(("gateway", None, None, str(exc)))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    base_ready, base_trip = rows[0][1], rows[0][2]
    print(f"{'backend':<9} {'start→ready':>12} {'ratio':>7} {'1+1 median':>11} {'ratio':>7}")
    for name, ready, trip, note in rows:
        if ready is None or trip is None:
            print(f"{name:<9} {'-':>12} {'':>7} {'-':>11} {'':>7}  unavailable: {note}")
            continue
        r1 = f"{ready / base_ready:.2f}x" if base_ready else ""
        r2 = f"{trip / base_trip:.2f}x" if base_trip else ""
        print(f"{name:<9} {ready * 1000:>10.0f}ms {r1:>7} {trip * 1000:>9.2f}ms {r2:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="kernel starts per backend")
    parser.add_argument("--runs", type=int, default=30, help="1+1 round trips per backend")
    args = parser.parse_args()
    asyncio.run(main_async(args.starts, args.runs))


if __name__ == "__main__":
    main()
