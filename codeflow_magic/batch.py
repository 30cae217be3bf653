"""`codeflow batch`: many requests over a pool of kernels, one JSON record per line.

The one-time costs overlap the first requests' model latency: the model SDK is imported on
its own thread from the start (it is what the first request waits for), one kernel starts
beside it, and the other kernels and the scanner's import begin once the first request is on
the wire. Each request takes a free kernel from the pool, and the kernel's namespace is reset
before it is handed to the next one so that requests stay independent. One provider (one SDK
client) serves every request.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (
    MAX_REQUEST_CHARS,
    Settings,
    check_request,
    check_value,
    did_you_mean,
)
from .errors import ProviderError, UsageError
from .executors import make_executor
from .executors.base import Executor, OutputCallback
from .models import ExecutionResult, RunRecord
from .options import batch_keys

RESET_CODE = """\
def _codeflow_reset(ip=get_ipython()):
    hook = ip.displayhook
    full, hook.do_full_cache = hook.do_full_cache, False
    try:
        ip.reset(new_session=False)
    finally:
        hook.do_full_cache = full
    hook._ = hook.__ = hook.___ = ""
_codeflow_reset()
"""
"""What `%reset -f` does to a kernel (every name of the user's gone, the output history
emptied) without its two full garbage collections: a hundred milliseconds of a pooled
kernel's CPU per request, spent again before every next request it serves. The garbage
is collected by the interpreter as usual."""
ITEM_KEYS = {"request", "check", "id", *batch_keys()}


@dataclass(frozen=True)
class BatchItem:
    index: int
    request: str
    options: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None
    work_dir: Path | None = None
    """The folder this request's code runs in (default: the pool's work dir)."""


def parse_batch(
    text: str, source: str = "batch file", *, max_chars: int | None = None
) -> list[BatchItem]:
    """Plain lines are requests; lines starting with `{` are JSON objects with options.

    Blank lines and `#` comments are skipped; a file with no request at all is a usage error.
    Every problem names `source` and the line, and nothing runs until the whole file passed.
    """
    limit = max_chars or MAX_REQUEST_CHARS
    items: list[BatchItem] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        if line.startswith("{"):
            request, opts, item_id = _parse_json_line(line, where)
            check_request(request, limit=limit, where=where)
            items.append(BatchItem(len(items), request, opts, item_id))
        else:
            check_request(line, limit=limit, where=where)
            items.append(BatchItem(len(items), line))
    if not items:
        raise UsageError(
            f"{source}: no requests found (blank lines and lines starting with # are skipped)"
        )
    return items


def _parse_json_line(line: str, where: str) -> tuple[str, dict[str, Any], str | int | None]:
    """(request, per-request options, id) from one JSON line, every value checked."""
    try:
        obj = json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise UsageError(f'{where}: a line starting with {{ must be a JSON object with "request"')
    for key in obj:
        if key not in ITEM_KEYS:
            raise UsageError(
                f"{where}: unknown key {key!r}{did_you_mean(key, ITEM_KEYS)}; allowed: "
                + ", ".join(sorted(ITEM_KEYS))
            )
    request = obj.get("request")
    if not isinstance(request, str):
        raise UsageError(f'{where}: a JSON line needs "request" as a string of plain words')
    check = obj.get("check")
    if check is not None and not isinstance(check, str):
        raise UsageError(f'{where}: "check" must be a string of Python code')
    item_id = obj.get("id")
    if item_id is not None and (isinstance(item_id, bool) or not isinstance(item_id, str | int)):
        raise UsageError(f'{where}: "id" must be a string or a whole number')
    opts: dict[str, Any] = {"check": check} if check is not None else {}
    for key, setting in batch_keys().items():
        if key in obj:
            opts[key] = check_value(setting, obj[key], f'{where}: "{key}"')
    return request, opts, item_id


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser would take them, and a timeout of NaN."""
    raise ValueError(f"{name} is not a JSON value")


class KernelPool:
    """Up to `max_size` executors handed out one request at a time.

    A request holds a kernel only while its code runs, never while the model generates, so
    few kernels serve many requests when the code is quick. The pool keeps as many kernels as
    there are cores (`eager`), and grows by one more (up to `max_size`) when a request has
    waited half a second for a kernel and none is starting: a kernel start costs about half a
    second of CPU, which quick code (a burst of answers served in milliseconds each) would
    only wait for, and starting eight at once on two cores would delay every one of them.
    """

    def __init__(
        self, factory: Callable[[], Executor], max_size: int, eager: int | None = None
    ) -> None:
        self.factory = factory
        self.max_size = max(1, max_size)
        self.eager = min(self.max_size, eager if eager is not None else (os.cpu_count() or 2))
        self.executors: list[Executor] = []
        self._free: asyncio.Queue[Executor] = asyncio.Queue()
        self._starting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []

    @classmethod
    def create(
        cls, settings: Settings, size: int, *, work_dir: Path, eager: int | None = None
    ) -> KernelPool:
        return cls(lambda: make_executor(settings, work_dir=work_dir), size, eager)

    def _grow(self) -> None:
        executor = self.factory()
        self.executors.append(executor)
        self._starting += 1

        async def start() -> None:
            try:
                await executor.start()
                self._free.put_nowait(executor)
            except BaseException as exc:  # surfaced to the waiting request in `acquire`
                self._errors.append(exc)
                self.executors.remove(executor)
            finally:
                self._starting -= 1

        task = asyncio.ensure_future(start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, count: int | None = None) -> None:
        """Start the eager kernels, or `count` of them (returns at once; they come up in the
        background)."""
        self.ensure(self.eager if count is None else count)

    def ensure(self, count: int) -> None:
        """Have at least `count` kernels (at most `max_size`) started or starting."""
        while len(self.executors) < min(count, self.max_size):
            self._grow()

    async def acquire(self) -> Executor:
        if self._free.empty() and self._starting == 0 and len(self.executors) < self.eager:
            self._grow()
        while True:
            if self._errors and not self.executors:
                raise self._errors[0]
            try:
                return await asyncio.wait_for(self._free.get(), timeout=0.5)
            except asyncio.TimeoutError:
                # Still busy after a while: long-running code, so another kernel helps.
                if self._starting == 0 and len(self.executors) < self.max_size:
                    self._grow()

    async def release(self, executor: Executor) -> None:
        try:  # codeflow's own code: silent, no history entry, no execution count
            await executor.run_snippet(RESET_CODE, timeout=30)
        finally:
            self._free.put_nowait(executor)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(ex.shutdown() for ex in self.executors), return_exceptions=True)


class _PooledExecutor:
    """One request's view of the pool: a kernel is taken at the first execution (not while the
    model generates) and kept until the request ends, so its own runs share state."""

    name = "kernel"
    started = True

    def __init__(self, pool: KernelPool, work_dir: Path | None = None) -> None:
        self.pool = pool
        self.work_dir = work_dir
        self._executor: Executor | None = None
        self.supports_install = False

    @property
    def has_state(self) -> bool:
        """False before the first execution: nothing to describe, and the grounding probe
        must not take a kernel from the pool while the model generates."""
        return self._executor is not None

    async def _get(self) -> Executor:
        if self._executor is None:
            self._executor = await self.pool.acquire()
            self.supports_install = self._executor.supports_install
            if self.work_dir is not None:
                chdir = f"__import__('os').chdir({str(self.work_dir)!r})\n"
                await self._executor.execute(chdir, language="python", timeout=30)
        return self._executor

    async def start(self) -> None:
        await self._get()

    async def execute(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecutionResult:
        ex = await self._get()
        return await ex.execute(code, language=language, timeout=timeout, on_output=on_output)

    async def run_snippet(self, code: str, timeout: float) -> ExecutionResult:
        ex = await self._get()
        return await ex.run_snippet(code, timeout)

    async def describe_state(self, max_chars: int = 2000) -> str:
        if self._executor is None:
            return ""  # a fresh request on a reset kernel has no state to describe
        return await self._executor.describe_state(max_chars)

    async def install(self, package: str, timeout: float | None = None) -> ExecutionResult:
        ex = await self._get()
        return await ex.install(package, timeout=timeout)

    async def shutdown(self) -> None:
        await self.release()

    async def release(self) -> None:
        if self._executor is not None:
            ex, self._executor = self._executor, None
            await self.pool.release(ex)


ResultCallback = Callable[[BatchItem, RunRecord | None, str | None], None]


async def arun_batch(
    items: Sequence[BatchItem],
    settings: Settings,
    *,
    parallel: int = 4,
    work_dir: Path | None = None,
    cache_mode: str | None = None,
    on_result: ResultCallback | None = None,
    pool: KernelPool | None = None,
) -> list[RunRecord | None]:
    """Run every item; a provider failure for one item is reported, not fatal to the others."""
    from .api import build_flow, options_from_settings, prefetch_security
    from .providers import make_provider, preload_for

    preload_for(settings, cache_mode=cache_mode)  # on its own thread: the first request's wait
    wd = (work_dir or Path.cwd()).resolve()
    provider = make_provider(settings, work_dir=wd, cache_mode=cache_mode)
    fix_model = settings.improvement.model
    fix_provider = (
        make_provider(settings, work_dir=wd, cache_mode=cache_mode, model=fix_model)
        if fix_model and fix_model != settings.model
        else None
    )
    own_pool = pool is None
    pool = pool or KernelPool.create(settings, max(1, min(parallel, len(items))), work_dir=wd)
    # One kernel starts beside the SDK's import (its process runs on another core); the others
    # would take CPU from that import, so they start once the first request is on the wire.
    await pool.start(1)
    dispatched = False

    def on_dispatch() -> None:
        nonlocal dispatched
        if not dispatched:
            dispatched = True
            pool.ensure(pool.eager)
            prefetch_security()

    results: list[RunRecord | None] = [None] * len(items)
    limit = asyncio.Semaphore(max(1, parallel))

    async def one(item: BatchItem) -> None:
        async with limit:
            await _one(item)

    async def _one(item: BatchItem) -> None:
        executor = _PooledExecutor(pool, item.work_dir)
        try:
            flow = build_flow(
                settings, executor, provider, fix_provider=fix_provider, on_dispatch=on_dispatch
            )
            options = options_from_settings(settings, **item.options)
            record = await flow.run(
                item.request, options, model=settings.model, backend=settings.execution.backend
            )
            results[item.index] = record
            if on_result:
                on_result(item, record, None)
        except ProviderError as exc:
            results[item.index] = exc.record
            if on_result:
                on_result(item, exc.record, str(exc))
        finally:
            await executor.release()

    try:
        await asyncio.gather(*(one(item) for item in items))
    finally:
        if own_pool:
            await pool.shutdown()
        await provider.aclose()
        if fix_provider is not None:
            await fix_provider.aclose()
    return results


def run_batch(
    requests: Sequence[str | BatchItem], settings: Settings, *, parallel: int = 4, **kwargs: Any
) -> list[RunRecord | None]:
    """Sync twin of `arun_batch` for scripts."""
    items = [r if isinstance(r, BatchItem) else BatchItem(i, r) for i, r in enumerate(requests)]
    return asyncio.run(arun_batch(items, settings, parallel=parallel, **kwargs))
