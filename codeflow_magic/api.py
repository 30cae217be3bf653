"""The Python API: `CodeFlow(...).run(request)` and its async twin `arun`.

It wires settings to the ports (provider with cache, executor, scanner, redaction) and hands
them to the pure `Flow`. The sync API runs a private event loop on a thread so that it works
both from plain scripts and from inside an already running loop (a Jupyter kernel).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .config import Settings, load_settings
from .executors import make_executor
from .executors.base import Executor
from .executors.limits import parse_size
from .flow import EventCallback, Flow, FlowOptions, InstallConfirm
from .models import DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, Finding, Output, PlanRecord, RunRecord
from .options import api_keywords
from .providers.base import Provider

T = TypeVar("T")


class _LoopThread:
    """One private event loop on a daemon thread, for the sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="codeflow-loop", daemon=True
        )
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _security_hooks() -> tuple[Any, Any, Any]:
    """The scanner's entry points, imported on first use.

    The rule tables take a noticeable moment to import; the first scan happens only after the
    first reply, so `prefetch_security` imports them on a thread while the model works.
    """

    def scan(code: str, language: str) -> Any:
        from .security import scan_code

        return scan_code(code, language)

    def blocking(findings: Any, policy: str) -> Any:
        from .security import blocking_findings

        return blocking_findings(findings, policy)

    def fmt(findings: Any) -> str:
        from .security import format_findings

        return format_findings(findings)

    return scan, blocking, fmt


def _prefetch(module: str) -> None:
    """Import a module on a thread, so that it is (nearly) loaded when first used."""
    from .providers.sdk import import_in_background

    import_in_background(_import_quietly, module, name=f"codeflow-prefetch-{module}")


def _import_quietly(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        pass  # reported properly where the module is really needed


def prefetch_security() -> None:
    """Import the scanner on a thread while the first request waits for the model."""
    if "codeflow_magic.security" not in sys.modules:
        _prefetch("codeflow_magic.security")


def _redactor(settings: Settings) -> Any:
    try:
        from .secrets import Redactor
    except ImportError:
        return None
    redactor = Redactor.from_env(extra_names=list(settings.execution.secret_env))
    return redactor.redact_output


def build_flow(
    settings: Settings,
    executor: Executor,
    provider: Provider,
    *,
    fix_provider: Provider | None = None,
    confirm_install: InstallConfirm | None = None,
    on_dispatch: Callable[[], None] | None = None,
) -> Flow:
    """The flow every front door runs: the scanner, the secret redactor and the fix model
    wired the same way whether a notebook, the CLI, a batch or an agent asks."""
    scanner, blocking, fmt = _security_hooks()
    return Flow(
        provider,
        executor,
        scanner=scanner,
        blocking=blocking,
        findings_text=fmt,
        redact=_redactor(settings),
        confirm_install=confirm_install,
        fix_provider=fix_provider,
        on_dispatch=on_dispatch or prefetch_security,
    )


def options_from_settings(settings: Settings, **overrides: Any) -> FlowOptions:
    """FlowOptions from settings; explicit per-call values (not None) win."""
    gen, exe, imp = settings.generation, settings.execution, settings.improvement
    values: dict[str, Any] = {
        "language": gen.language,
        "focus": imp.focus,
        "verify": imp.verify,
        "quality_threshold": imp.quality_threshold,
        "max_attempts": imp.max_attempts,
        "improve": imp.enabled,
        "timeout": exe.timeout,
        "token_budget": imp.token_budget,
        "max_cost_usd": imp.max_cost_usd,
        "prices": tuple(gen.prices),
        "scan_policy": exe.scan,
        "install_missing": exe.install_missing,
        "prompt_output_chars": exe.prompt_output_chars,
        "state_chars": gen.state_chars,
        "max_tokens": gen.max_tokens,
        "temperature": gen.temperature,
        "early_execute": exe.execute_at_fence,
        "preview_files": gen.preview_files,
        "preview_bytes": gen.preview_bytes,
        "preview_seconds": gen.preview_seconds,
        "preview_chars": gen.preview_chars,
        "preview_max_files": gen.preview_max_files,
        "environment": gen.environment,
        "notebook_chars": gen.notebook_chars,
        "sanity": imp.sanity,
        "rollback": exe.rollback == "on",
        "snapshot_max_bytes": parse_size(exe.snapshot_max_bytes),
        "review": exe.review,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values.get("improve", True):
        values["max_attempts"] = 1
    return FlowOptions(**values)


RUN_OPTIONS: dict[str, str] = api_keywords()
"""`arun` keywords that stand for a setting: checked against its type and bounds."""


def _check_session(
    settings: Any, work_dir: Any, backend: Any, cache_dir: Any, cache_mode: Any
) -> None:
    """Refuse bad `CodeFlow(...)` arguments at once, not at the first request."""
    from .config import did_you_mean
    from .errors import UsageError
    from .executors import BACKENDS
    from .providers import CACHE_MODES

    if settings is not None and not isinstance(settings, Settings):
        raise UsageError(
            "settings must come from codeflow_magic.config.load_settings(), "
            f"not a {type(settings).__name__}"
        )
    if backend is not None and (not isinstance(backend, str) or backend.lower() not in BACKENDS):
        hint = did_you_mean(backend.lower(), BACKENDS) if isinstance(backend, str) else ""
        raise UsageError(f"unknown backend {backend!r}{hint}; choose one of " + ", ".join(BACKENDS))
    if cache_mode is not None and (
        not isinstance(cache_mode, str) or cache_mode.strip().lower() not in CACHE_MODES
    ):
        raise UsageError(
            f"unknown cache_mode {cache_mode!r}; choose one of " + ", ".join(CACHE_MODES)
        )
    for name, value in (("work_dir", work_dir), ("cache_dir", cache_dir)):
        if value is None:
            continue
        if not isinstance(value, str | Path):
            raise UsageError(f"{name} must be a path, not a {type(value).__name__}")
        path = Path(value)
        if name == "work_dir" and not path.is_dir():
            raise UsageError(f"work_dir is not a directory: {value}")
        if path.exists() and not path.is_dir():
            raise UsageError(f"{name} is not a directory: {value}")


def _check_run(settings: Settings, request: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The request and `arun` keywords checked like the CLI's options; returns the options
    as the settings would hold them (e.g. `"Python"` -> `"python"`)."""
    from .config import check_request, check_value
    from .errors import UsageError

    if not isinstance(request, str):
        raise UsageError(
            f"the request must be a str of plain words, not a {type(request).__name__}"
        )
    check_request(request, limit=settings.generation.max_request_chars)
    out: dict[str, Any] = {}
    for name, key in RUN_OPTIONS.items():
        if values.get(name) is not None:
            out[name] = check_value(key, values[name], name)
    cells = values.get("notebook")
    if cells is not None and not (
        isinstance(cells, list | tuple)
        and all(
            isinstance(c, list | tuple) and len(c) == 2 and all(isinstance(p, str) for p in c)
            for c in cells
        )
    ):
        raise UsageError("notebook must be a sequence of (cell type, source) pairs of str")
    for name in ("check", "run_id"):
        if values.get(name) is not None and not isinstance(values[name], str):
            raise UsageError(f"{name} must be a str, not a {type(values[name]).__name__}")
    if values.get("on_event") is not None and not callable(values["on_event"]):
        raise UsageError("on_event must be a callable that takes a FlowEvent")
    return out


class CodeFlow:
    """A long-lived codeflow session: one provider, one executor, many requests.

    Ports are built lazily on first use so that constructing a CodeFlow is free; `start()`
    pre-warms the kernel.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        work_dir: Path | None = None,
        backend: str | None = None,
        shell: Any = None,
        cache_dir: Path | None = None,
        cache_mode: str | None = None,
        provider: Provider | None = None,
        executor: Executor | None = None,
        confirm_install: InstallConfirm | None = None,
    ) -> None:
        _check_session(settings, work_dir, backend, cache_dir, cache_mode)
        self.settings = settings or load_settings()
        if provider is None:  # CODEFLOW_CACHE and cache.mode, before anything starts
            from .providers import resolve_cache_mode

            resolve_cache_mode(cache_mode, self.settings.cache.mode)
        self.work_dir = Path(work_dir or self.settings.execution.work_dir or Path.cwd()).resolve()
        self.backend = backend or self.settings.execution.backend
        self.shell = shell
        self.cache_dir = cache_dir
        self.cache_mode = cache_mode
        self._provider = provider
        self._executor = executor
        self._fix_provider: Provider | None = None
        self._confirm_install = confirm_install
        self._flow: Flow | None = None
        if self._provider is None:
            from .providers import preload_for

            # The longest part of a cold start, on its own thread; nothing in replay mode
            # (from the option, CODEFLOW_CACHE or the settings), where no model is asked.
            preload_for(self.settings, cache_mode=cache_mode)
        self._loop: _LoopThread | None = None
        self.history: list[RunRecord] = []

    # -- ports -------------------------------------------------------------------------------

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            from .providers import make_provider

            self._provider = make_provider(
                self.settings,
                work_dir=self.work_dir,
                cache_dir=self.cache_dir,
                cache_mode=self.cache_mode,
            )
        return self._provider

    @property
    def fix_provider(self) -> Provider:
        """The provider for fixes: `improvement.model` when set, else the generation one."""
        fix_model = self.settings.improvement.model
        if not fix_model or fix_model == self.settings.model:
            return self.provider
        if self._fix_provider is None:
            from .providers import make_provider

            self._fix_provider = make_provider(
                self.settings,
                work_dir=self.work_dir,
                cache_dir=self.cache_dir,
                cache_mode=self.cache_mode,
                model=fix_model,
            )
        return self._fix_provider

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = make_executor(
                self.settings, work_dir=self.work_dir, backend=self.backend, shell=self.shell
            )
        return self._executor

    @property
    def flow(self) -> Flow:
        if self._flow is None:
            self._flow = build_flow(
                self.settings,
                self.executor,
                self.provider,
                fix_provider=self.fix_provider,
                confirm_install=self._confirm_install,
            )
        return self._flow

    # -- async API ---------------------------------------------------------------------------

    async def astart(self) -> None:
        await self.executor.start()

    async def arun(
        self,
        request: str,
        *,
        language: str | None = None,
        check: str | None = None,
        focus: str | None = None,
        verify: bool | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        improve: bool | None = None,
        scan: str | None = None,
        on_event: EventCallback | None = None,
        run_id: str | None = None,
        notebook: Sequence[tuple[str, str]] | None = None,
        review: str | None = None,
        approved_code: str | None = None,
    ) -> RunRecord:
        """Run one request; `notebook` holds the (cell type, source) of the cells above it,
        nearest first, when the request comes from a notebook. `review` holds generated code
        for approval (`always`, `risky`); `approved_code` runs code the user approved as the
        first attempt, with fixes as usual."""
        checked = _check_run(
            self.settings,
            request,
            {
                "language": language,
                "check": check,
                "focus": focus,
                "verify": verify,
                "max_attempts": max_attempts,
                "timeout": timeout,
                "improve": improve,
                "scan": scan,
                "review": review,
                "on_event": on_event,
                "run_id": run_id,
                "notebook": notebook,
            },
        )
        if approved_code is not None and (
            not isinstance(approved_code, str) or not approved_code.strip()
        ):
            from .errors import UsageError

            raise UsageError("approved_code must be the non-empty code to run")
        options = options_from_settings(
            self.settings,
            language=checked.get("language"),
            check=check,
            focus=checked.get("focus"),
            verify=checked.get("verify"),
            max_attempts=checked.get("max_attempts"),
            timeout=checked.get("timeout"),
            improve=checked.get("improve"),
            scan_policy=checked.get("scan"),
            review=checked.get("review"),
            approved_code=approved_code,
            notebook=tuple((str(k), str(v)) for k, v in notebook) if notebook else None,
        )
        await self._warm()
        record = await self.flow.run(
            request.strip(),
            options,
            on_event=on_event,
            run_id=run_id,
            model=self.settings.model,
            backend=self.backend,
        )
        self.history.append(record)
        return record

    async def aplan(
        self,
        request: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        check: str | None = None,
        on_event: EventCallback | None = None,
        run_id: str | None = None,
        notebook: Sequence[tuple[str, str]] | None = None,
    ) -> PlanRecord:
        """One request as a plan of steps, each run through the normal loop (`Flow.plan`)."""
        from .errors import UsageError

        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise UsageError(f"max_steps must be a whole number, not {max_steps!r}")
        if not 1 <= max_steps <= MAX_STEPS_LIMIT:
            raise UsageError(f"max_steps must be 1 to {MAX_STEPS_LIMIT}, not {max_steps}")
        _check_run(
            self.settings,
            request,
            {"check": check, "on_event": on_event, "run_id": run_id, "notebook": notebook},
        )
        options = options_from_settings(
            self.settings,
            check=check,
            notebook=tuple((str(k), str(v)) for k, v in notebook) if notebook else None,
        )
        await self._warm()
        return await self.flow.plan(
            request.strip(),
            options,
            max_steps=max_steps,
            on_event=on_event,
            run_id=run_id,
            model=self.settings.model,
            backend=self.backend,
        )

    async def _warm(self) -> None:
        """Import the model SDK first (off the loop); everything else waits for the request.

        The SDK import is pure CPU and the first thing the model call needs. The kernel start
        and the scanner's import begin once the request is on its way (the flow's dispatch
        hook), so they overlap the model's latency instead of slowing the request down. A
        cold first request then costs about max(kernel start, generation), not their sum.
        """
        if self._flow is not None:
            return
        await asyncio.to_thread(lambda: self.flow)  # the SDK import

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on this session's private loop (the one its kernel lives on)."""
        return self._loop_thread().submit(coro)

    async def aclose(self) -> None:
        if self._executor is not None:
            await self._executor.shutdown()
        if self._provider is not None:
            await self._provider.aclose()
        if self._fix_provider is not None:
            await self._fix_provider.aclose()

    async def __aenter__(self) -> CodeFlow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sync API ----------------------------------------------------------------------------

    def _loop_thread(self) -> _LoopThread:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop

    def start(self) -> Future[None]:
        """Start the executor in the background; returns a future (no need to wait)."""
        return self._loop_thread().submit(self.astart())

    def run(self, request: str, **kwargs: Any) -> RunRecord:
        from .config import did_you_mean
        from .errors import UsageError

        known = [*RUN_OPTIONS, "check", "on_event", "run_id", "notebook"]
        for name in kwargs:
            if name not in known:
                raise UsageError(
                    f"run() got an unknown option {name!r}{did_you_mean(name, known)}; "
                    "options: " + ", ".join(sorted(known))
                )
        return self._loop_thread().run(self.arun(request, **kwargs))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run(self.aclose())
            self._loop.stop()
            self._loop = None

    def __enter__(self) -> CodeFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redact_outputs(outputs: Sequence[Output], settings: Settings) -> list[Output]:
    redact = _redactor(settings)
    return [redact(o) for o in outputs] if redact else list(outputs)


__all__ = ["CodeFlow", "Finding", "FlowOptions", "RunRecord", "options_from_settings"]
