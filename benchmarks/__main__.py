"""`python -m benchmarks [a b c ...]`: the speed table, measured side by side in one run.

Prints the machine, then one line per bench with both measurements, the ratio and the target.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import traceback


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores{mem}, "
        f"Python {platform.python_version()}, load {load:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    from benchmarks.speed import ALL

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "only", nargs="*", metavar="BENCH", help="benches to run (a-n; default all)"
    )
    args = parser.parse_args(argv)
    keys = args.only or list(ALL)
    print(f"machine: {machine()}")
    header = f"{'':2} {'bench':<88} {'codeflow':>26} {'baseline':>34} {'ratio':>7}  target"
    print(header)
    print("-" * len(header))
    failed = 0
    for key in keys:
        try:
            line = ALL[key]()
        except Exception as exc:  # report and go on: one broken bench must not hide the rest
            failed += 1
            print(
                f"{key:2} {'ERROR: ' + str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            )
            traceback.print_exc(file=sys.stderr)
            continue
        ratio = f"{line.ratio:.2f}x" if line.ratio is not None else "-"
        mark = "PASS" if line.ok else "MISS"
        print(
            f"{line.key:2} {line.what:<88} {line.codeflow:>26} {line.baseline:>34} {ratio:>7}  {line.target} {mark}"
        )
        sys.stdout.flush()
        failed += 0 if line.ok else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
