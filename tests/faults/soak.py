"""A bounded soak: many requests through `codeflow batch` with API faults and kernel deaths.

Every request gets a scenario drawn from a seeded generator: a plain success, a transient API
fault the SDK retries, an API fault that persists, a kernel killed by `os._exit` or a segfault,
or a runtime error the model fixes. The loopback model server is scripted per request, so the
outcome each request must have is known in advance and checked record by record.

    python tests/faults/soak.py --requests 200 --parallel 4 --seed 7

prints the summary (requests in, records out, outcomes by cause, peak and late memory of the
batch process, kernels left behind) and exits 1 when anything was lost, duplicated, wrong or
left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from modelserver import ModelServer, Reply  # noqa: E402

# (scenario, weight): what the model server does for the request's first call.
SCENARIOS: tuple[tuple[str, int], ...] = (
    ("ok", 40),
    ("api_transient", 10),
    ("api_reset", 6),
    ("stream_cut", 6),
    ("no_code", 6),
    ("api_persistent", 5),
    ("kernel_exit", 12),
    ("kernel_segfault", 8),
    ("runtime_error", 12),
)
BAD_CODE = {
    "kernel_exit": "import os\nos._exit(1)",
    "kernel_segfault": "import ctypes\nctypes.string_at(0)",
    "runtime_error": "print(1 / 0)",
}


def block(code: str) -> str:
    return f"Here is the code.\n```python\n{code}\n```\n"


def good_code(index: int) -> str:
    return f"value = {index} * 2\nprint('soak {index} ok', value)"


@dataclass
class Summary:
    requests_in: int
    records_out: int = 0
    duplicated: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    exit_status: int = 0
    stderr_tail: str = ""
    peak_rss_mb: float = 0.0
    rss_mid_mb: float = 0.0
    rss_end_mb: float = 0.0
    kernels_before: int = 0
    kernels_after: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.records_out == self.requests_in
            and not self.duplicated
            and not self.missing
            and not self.wrong
            and self.kernels_after <= self.kernels_before
        )

    def render(self) -> str:
        lines = [
            f"requests in: {self.requests_in}   records out: {self.records_out}   "
            f"lost: {len(self.missing)}   duplicated: {len(self.duplicated)}   "
            f"wrong: {len(self.wrong)}   exit status: {self.exit_status}",
            "scenarios injected: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.scenarios.items())),
            "outcomes by cause: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"batch process memory: peak {self.peak_rss_mb:.0f} MB, at half-way "
            f"{self.rss_mid_mb:.0f} MB, near the end {self.rss_end_mb:.0f} MB",
            f"processes in the work dir (kernels): {self.kernels_before} before, "
            f"{self.kernels_after} after; "
            f"{self.seconds:.1f} s",
        ]
        lines += [f"  wrong: {w}" for w in self.wrong[:20]]
        return "\n".join(lines)


def processes_in(directory: Path) -> int:
    """Processes whose working directory is `directory`: the soak's kernels run there, so
    any left after the batch exits are orphans (other work on the machine is not counted)."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if Path(cwd) == directory:
            count += 1
    return count


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def script(server: ModelServer, n: int, seed: int) -> dict[int, str]:
    """Rules per request (matched by its tag, in order); returns the scenario of each."""
    rng = random.Random(seed)
    names = [s for s, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    plan: dict[int, str] = {}
    for i in range(n):
        scenario = rng.choices(names, weights)[0]
        plan[i] = scenario
        tag = f"[soak-{i:04d}]"
        if scenario == "api_transient":
            status = rng.choice([429, 500, 529])
            server.add_rule(tag, Reply(status=status, headers={"retry-after-ms": "10"}), times=1)
        elif scenario == "api_reset":
            server.add_rule(tag, Reply(fault="reset"), times=1)
        elif scenario == "stream_cut":
            server.add_rule(tag, Reply(text=block("print('half"), fault="cut"), times=1)
        elif scenario == "no_code":
            server.add_rule(tag, Reply(fault="prose"), times=1)
        elif scenario == "api_persistent":
            server.add_rule(tag, Reply(status=529, headers={"retry-after-ms": "10"}))
        elif scenario in BAD_CODE:
            server.add_rule(tag, block(BAD_CODE[scenario]), times=1)
        server.add_rule(tag, block(good_code(i)))
    return plan


def check(index: int, scenario: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """The outcome's cause, and what is wrong with the record (None when it is right)."""
    attempts = data.get("attempts") or []
    if scenario == "api_persistent":
        error = str(data.get("error") or "")
        if data.get("success") or "529" not in error:
            return "other", f"{index}: a persistent 529 should fail naming it: {error[:200]!r}"
        return "model API unavailable (529)", None
    if not data.get("success"):
        return "other", f"{index} ({scenario}): failed: {json.dumps(data)[:300]}"
    texts = "".join(str(o.get("text", "")) for o in data.get("outputs", []))
    if f"soak {index} ok {index * 2}" not in texts:
        return "other", f"{index}: output {texts[:120]!r} is not this request's"
    if scenario in ("ok", "api_transient", "api_reset", "stream_cut"):
        if len(attempts) != 1:
            return "other", f"{index} ({scenario}): {len(attempts)} attempts, expected 1"
        return {
            "ok": "success",
            "api_transient": "success after an API error was retried",
            "api_reset": "success after a connection reset was retried",
            "stream_cut": "success after a cut stream was asked again",
        }[scenario], None
    if len(attempts) != 2 or attempts[0].get("error") is None:
        return "other", f"{index} ({scenario}): expected a failed attempt then a fix"
    category = attempts[0]["error"]["category"]
    expected = {"runtime_error": "runtime", "no_code": "syntax"}.get(scenario, "environment")
    if category != expected:
        return "other", f"{index} ({scenario}): first attempt classified {category}"
    return f"fixed after {scenario.replace('_', ' ')}", None


def run_soak(n: int = 200, parallel: int = 4, seed: int = 7, timeout: float = 900) -> Summary:
    summary = Summary(requests_in=n)
    with ModelServer() as server, tempfile.TemporaryDirectory(prefix="cf-soak-") as tmp:
        wd = Path(tmp)
        plan = script(server, n, seed)
        summary.scenarios = Counter(plan.values())
        batch = wd / "requests.txt"
        batch.write_text(
            "".join(f"[soak-{i:04d}] compute twice {i} and print it\n" for i in range(n)),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CODEFLOW_"))}
        env.update(server.env())
        env["HOME"] = str(wd)
        summary.kernels_before = processes_in(wd)
        wd = wd.resolve()
        cmd = [
            sys.executable, "-m", "codeflow_magic.cli", "batch", str(batch),
            "--parallel", str(parallel), "--format", "json", "--quiet", "--no-cache",
            "--backend", "kernel", "--max-attempts", "3", "--work-dir", str(wd),
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=wd.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        samples: list[tuple[int, float]] = []
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((len(lines), rss))
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            summary.wrong.append(f"the batch did not finish within {timeout:g} s")
        proc.wait()
        reader.join(timeout=30)
        summary.seconds = time.perf_counter() - started
        summary.exit_status = proc.returncode
        summary.stderr_tail = (proc.stderr.read() if proc.stderr else "")[-2000:]
        time.sleep(0.5)  # let the kernels' exits be reaped
        summary.kernels_after = processes_in(wd)
    if samples:
        summary.peak_rss_mb = max(r for _, r in samples)
        summary.rss_mid_mb = next((r for done, r in samples if done >= n // 2), samples[-1][1])
        late = [r for done, r in samples if done >= n * 9 // 10] or [samples[-1][1]]
        summary.rss_end_mb = max(late)
    seen: Counter[int] = Counter()
    for line in lines:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            summary.wrong.append(f"not a JSON record: {line[:120]!r}")
            continue
        index = int(data.get("index", -1))
        seen[index] += 1
        if index not in plan:
            summary.wrong.append(f"record for an unknown index {index}")
            continue
        if f"[soak-{index:04d}]" not in str(data.get("request", "")):
            summary.wrong.append(f"{index}: the record carries another request")
        cause, problem = check(index, plan[index], data)
        summary.outcomes[cause] += 1
        if problem:
            summary.wrong.append(problem)
    summary.records_out = sum(seen.values())
    summary.duplicated = sorted(i for i, c in seen.items() if c > 1)
    summary.missing = sorted(set(range(n)) - set(seen))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    summary = run_soak(args.requests, args.parallel, args.seed)
    print(summary.render())
    if not summary.ok:
        print(summary.stderr_tail, file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
