"""`codeflow ask REQUEST`: one request to working code, the record on stdout, progress on
stderr, the exit status from the outcome."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..config import Settings, check_request, decode_utf8
from ..errors import EXIT_FAILED, EXIT_OK, ProviderError
from ..models import DEFAULT_MAX_STEPS
from ..options import FLOW_OPTIONS, add_options
from .common import cache_mode_from_args, settings_from_args
from .progress import Progress


def _read_request(text: str, settings: Settings) -> str:
    """The REQUEST argument, or stdin for `-`, checked before anything starts."""
    limit = settings.generation.max_request_chars
    if text == "-":
        return check_request(
            decode_utf8(sys.stdin.buffer.read(), "stdin"), limit=limit, where="stdin"
        )
    return check_request(text, limit=limit)


def _confirm_install(package: str) -> bool:
    if not sys.stdin.isatty():
        return False
    sys.stderr.write(f"codeflow: install missing package {package!r} into the kernel? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def _ask(args: argparse.Namespace, settings: Settings, request: str) -> int:
    from ..api import CodeFlow
    from ..formats import render

    fmt = args.format or settings.response.format
    progress = Progress(
        sys.stderr,
        settings.improvement.max_attempts if settings.improvement.enabled else 1,
        enabled=not args.quiet,
    )
    cf = CodeFlow(
        settings,
        cache_mode=cache_mode_from_args(args),
        confirm_install=_confirm_install,
    )
    if getattr(args, "steps", False):
        try:
            return await _ask_steps(args, settings, cf, request, progress, fmt)
        finally:
            await cf.aclose()
    failure: ProviderError | None = None
    try:
        record = await cf.arun(request, check=args.check, on_event=progress)
    except ProviderError as exc:
        if exc.record is None:
            raise
        failure, record = exc, exc.record
    finally:
        await cf.aclose()
    for warning in record.warnings:
        print(f"codeflow: warning: {warning}", file=sys.stderr)
    # A run the model API cut short still shows its attempts (JSON always: one record per
    # run); the cause goes to stderr and decides the exit status.
    if failure is None or fmt == "json" or record.attempts:
        sys.stdout.write(
            render(
                record,
                fmt,
                history=settings.response.include_improvement_history,
                metrics=settings.response.show_performance_metrics,
            )
        )
        sys.stdout.flush()
    if failure is not None:
        raise failure
    if record.stop_reason == "awaiting_review":
        return EXIT_OK  # nothing ran, by request: the code is the answer
    return EXIT_OK if record.success else EXIT_FAILED


async def _ask_steps(
    args: argparse.Namespace,
    settings: Settings,
    cf: Any,
    request: str,
    progress: Any,
    fmt: str,
) -> int:
    """`ask --steps`: the plan and each step's run; 0 when every step worked."""
    from ..formats import render_plan

    plan = await cf.aplan(
        request,
        max_steps=args.max_steps or DEFAULT_MAX_STEPS,
        check=args.check,
        on_event=progress,
    )
    if plan.error:
        print(f"codeflow: {plan.error}", file=sys.stderr)
    sys.stdout.write(
        render_plan(
            plan,
            fmt,
            history=settings.response.include_improvement_history,
            metrics=settings.response.show_performance_metrics,
        )
    )
    sys.stdout.flush()
    return EXIT_OK if plan.success else EXIT_FAILED


ANTHROPIC_CREDENTIAL_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
)


def _surely_no_key(settings: Settings, args: argparse.Namespace) -> str | None:
    """The provider's no-key message when no credential can possibly be found, else None.

    Checked from the environment alone, before the SDK or a kernel is loaded, so the answer
    comes at once. Only certain cases: a recorded response may serve the request without a
    key (unless the cache is off or empty), and the Anthropic SDK also reads profiles from its
    config folder, so any sign of those leaves the decision to the provider.
    """
    import os

    from ..providers import resolve_cache_dir, resolve_cache_mode, split_model

    mode = resolve_cache_mode(cache_mode_from_args(args), settings.cache.mode)
    if mode == "replay":
        return None
    if mode == "rw":
        folder = resolve_cache_dir(
            None, settings.cache.dir, Path(settings.execution.work_dir or ".")
        )
        try:
            if folder.is_dir() and any(folder.iterdir()):
                return None
        except OSError:
            return None
    env = os.environ
    specs = [settings.generation.model or "anthropic:default"]
    if settings.improvement.model:
        specs.append(settings.improvement.model)
    for spec in specs:
        provider, _ = split_model(spec)
        if provider == "anthropic":
            if any(env.get(name) for name in ANTHROPIC_CREDENTIAL_VARS):
                continue
            config = Path(env.get("ANTHROPIC_CONFIG_DIR") or Path.home() / ".config" / "anthropic")
            if config.exists():
                continue
            from ..providers.anthropic import NO_KEY

            return NO_KEY
        if provider == "openai":
            if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
                continue
            if settings.generation.base_url:
                continue
            from ..providers.openai_compat import NO_KEY as OPENAI_NO_KEY

            return OPENAI_NO_KEY
    return None


def cmd_ask(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    missing = _surely_no_key(settings, args)
    if missing is None:  # the SDK's import, seconds of CPU, starts before stdin or a kernel
        from ..providers import preload_for

        preload_for(settings, cache_mode=cache_mode_from_args(args))
    request = _read_request(args.request, settings)
    if missing is not None:
        _no_key(args, settings, request, missing)
    return asyncio.run(_ask(args, settings, request))


def _no_key(args: argparse.Namespace, settings: Settings, request: str, message: str) -> None:
    """End a run that cannot ask any model the way a run would (JSON still gets its record),
    without starting a kernel or loading an SDK."""
    import uuid

    from ..errors import AuthenticationError
    from ..models import Metrics, RunRecord

    failure = AuthenticationError(message)
    failure.record = RunRecord(
        request=request,
        language=settings.generation.language,
        model=settings.model,
        success=False,
        final_code="",
        outputs=(),
        attempts=(),
        metrics=Metrics(),
        run_id=uuid.uuid4().hex[:12],
        stop_reason="provider_error",
        backend=settings.execution.backend,
        check=args.check,
        focus=settings.improvement.focus,
        error=message,
    )
    if (args.format or settings.response.format) == "json":
        from ..formats import render

        sys.stdout.write(render(failure.record, "json"))
        sys.stdout.flush()
    raise failure


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ask",
        help="turn one request into working code",
        description="Generate code for REQUEST, run it, fix it until it works. "
        "Exit 0: success; 1: every attempt failed; 2: usage error; 3: the model could not be "
        "asked (no or rejected key, bad request, replay miss); 4: backend failure; 5: the model "
        "API stayed unavailable after retries (rate limit, overload, server error, timeout, "
        "lost connection).",
    )
    p.add_argument(
        "request", metavar="REQUEST", help="what the code should do, in plain words ('-': stdin)"
    )
    add_options(p, FLOW_OPTIONS)
    add_options(p, ("steps", "max_steps", "format", "quiet"))
    p.set_defaults(func=cmd_ask)
