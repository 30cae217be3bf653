"""`codeflow ask` and `codeflow batch`: thin adapters from argv to `CodeFlow`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .config import (
    Settings,
    check_request,
    decode_utf8,
    load_settings,
    option_type,
)
from .errors import ProviderError, UsageError
from .models import CATEGORIES, DEFAULT_MAX_STEPS, FOCUSES, MAX_STEPS_LIMIT, FlowEvent, steps_count

EXIT_OK, EXIT_FAILED = 0, 1


def whole_number(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse `type` for a count that is not a setting (e.g. `--parallel`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; expected an integer from {lowest} to {highest}"
            ) from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range; expected an integer from {lowest} to {highest}"
            )
        return value

    parse.__name__ = "whole number"
    return parse


def add_flow_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `ask` and `batch` (and mirrored by the magic)."""
    p.add_argument(
        "--model", help="anthropic:<model>, openai:<model> or a bare Anthropic model name"
    )
    p.add_argument("--language", choices=["python", "bash", "auto"], help="language of the code")
    p.add_argument(
        "--max-attempts",
        type=option_type("improvement.max_attempts"),
        help="attempts including the first (default 3, at most 50)",
    )
    p.add_argument(
        "--timeout",
        type=option_type("execution.timeout"),
        help="seconds per execution before interrupt (0.1 to 86400)",
    )
    p.add_argument("--check", metavar="CODE", help="Python run after the code; must pass")
    p.add_argument(
        "--focus", choices=list(FOCUSES), help="fix_errors (default), optimize, robustness"
    )
    p.add_argument(
        "--verify", action="store_true", default=None, help="let the model score the result"
    )
    p.add_argument(
        "--backend",
        choices=["kernel", "sandbox", "docker", "gateway"],
        help="where the code runs (default kernel)",
    )
    p.add_argument(
        "--scan", choices=["block", "strict", "warn", "off"], help="security scan policy"
    )
    p.add_argument(
        "--no-cache", action="store_true", help="do not read or write recorded responses"
    )
    p.add_argument(
        "--cache-mode", choices=["rw", "replay", "off"], help="recorded-response cache mode"
    )
    p.add_argument("--no-improve", action="store_true", help="one attempt, no fixes")
    p.add_argument(
        "--review",
        action="store_true",
        default=None,
        help="generate and scan, show the code, run nothing (execution.review=always)",
    )
    p.add_argument(
        "--install-missing", choices=["off", "ask", "auto"], help="install missing packages"
    )
    p.add_argument(
        "--memory-limit",
        type=option_type("execution.memory_limit"),
        help="memory limit for sandbox/docker, e.g. 512m, 2g (32m to 1t)",
    )
    p.add_argument(
        "--cpu-limit",
        type=option_type("execution.cpu_limit"),
        help="CPU cores for sandbox/docker (0.05 to 1024)",
    )
    p.add_argument(
        "--gateway-url",
        type=option_type("execution.gateway_url"),
        help="Jupyter Kernel Gateway URL (--backend gateway)",
    )
    p.add_argument("--gateway-token", help="token for the gateway")
    p.add_argument("--kernel", dest="kernel_name", help="Jupyter kernel name (default python3)")
    p.add_argument("--work-dir", type=Path, help="working directory of the kernel")
    p.add_argument("--config", type=Path, help="a codeflow.yaml to use")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides, e.g. improvement.max_attempts=5",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    extra: dict[str, Any] = {
        "generation.model": args.model,
        "generation.language": args.language,
        "improvement.max_attempts": args.max_attempts,
        "execution.timeout": args.timeout,
        "improvement.focus": args.focus,
        "improvement.verify": args.verify,
        "execution.backend": args.backend,
        "execution.scan": args.scan,
        "execution.review": "always" if getattr(args, "review", None) else None,
        "execution.install_missing": args.install_missing,
        "execution.memory_limit": args.memory_limit,
        "execution.cpu_limit": args.cpu_limit,
        "execution.gateway_url": args.gateway_url,
        "execution.gateway_token": args.gateway_token,
        "execution.kernel_name": args.kernel_name,
        "execution.work_dir": str(args.work_dir.resolve()) if args.work_dir else None,
    }
    if args.no_improve:
        extra["improvement.enabled"] = False
    work_dir = args.work_dir.resolve() if args.work_dir else Path.cwd()
    if args.work_dir and not work_dir.is_dir():
        raise UsageError(f"--work-dir is not a directory: {args.work_dir}")
    overrides = [o for o in args.overrides]
    for item in overrides:
        if "=" not in item:
            raise UsageError(
                f"unexpected argument {item!r}: quote the request, and give settings as key=value"
            )
    settings = load_settings(overrides, config_file=args.config, work_dir=work_dir, extra=extra)
    # The environment's cache mode and the model names too, before a kernel starts.
    from .providers import PROVIDERS, resolve_cache_mode, split_model

    resolve_cache_mode(cache_mode_from_args(args), settings.cache.mode)
    for key, spec in (
        ("generation.model", settings.generation.model),
        ("improvement.model", settings.improvement.model),
    ):
        provider, name = split_model(spec) if spec else ("anthropic", "default")
        if provider not in PROVIDERS or not name:
            raise UsageError(
                f"{key}: {spec!r} is not a model; write anthropic:<model>, openai:<model> "
                "or a bare Anthropic model name"
            )
    return settings


def cache_mode_from_args(args: argparse.Namespace) -> str | None:
    if args.no_cache:
        return "off"
    mode: str | None = args.cache_mode
    return mode


class Progress:
    """A one-line progress display on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, stream: TextIO, max_attempts: int, enabled: bool = True) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.max_attempts = max_attempts
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last_error = ""
        self.chars = 0

    def _show(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        line = f"codeflow: {text} [{elapsed:.1f}s]"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:200] + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, event: FlowEvent) -> None:
        k = event.kind
        if k == "generating":
            self.chars = 0
            phase = event.data.get("phase", "generate")
            verb = {
                "generate": "generating",
                "fix": "asking for a fix",
                "improve": "improving",
            }.get(str(phase), str(phase))
            retry = event.data.get("retry")
            again = f" again: {retry}" if retry else ""
            self._show(f"attempt {event.attempt}/{self.max_attempts}: {verb}{again}{self._err()}")
        elif k == "delta" and self.tty:
            self.chars += len(str(event.data.get("text", "")))
            self._show(
                f"attempt {event.attempt}/{self.max_attempts}: receiving ({self.chars} chars)"
            )
        elif k == "executing":
            self._show(f"attempt {event.attempt}/{self.max_attempts}: running")
        elif k == "install":
            self._show(f"installing {event.data.get('package')}")
        elif k == "attempt":
            data = event.data.get("attempt", {})
            error = data.get("error") if isinstance(data, dict) else None
            if error:
                self.last_error = str(error.get("category", ""))
                self._show(
                    f"attempt {event.attempt}/{self.max_attempts}: {error.get('category')} error: "
                    f"{error.get('ename')}"
                )
            else:
                self._show(f"attempt {event.attempt}/{self.max_attempts}: succeeded")
        elif k == "finished":
            record = event.data.get("record", {})
            ok = isinstance(record, dict) and record.get("success")
            self._show("done: success" if ok else "done: failed", final=True)

    def _err(self) -> str:
        return f" (last error: {self.last_error})" if self.last_error else ""


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
    from .api import CodeFlow
    from .formats import render

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
    from .formats import render_plan

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

    from .providers import resolve_cache_dir, resolve_cache_mode, split_model

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
            from .providers.anthropic import NO_KEY

            return NO_KEY
        if provider == "openai":
            if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
                continue
            if settings.generation.base_url:
                continue
            from .providers.openai_compat import NO_KEY as OPENAI_NO_KEY

            return OPENAI_NO_KEY
    return None


def cmd_ask(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    missing = _surely_no_key(settings, args)
    if missing is None:  # the SDK's import, seconds of CPU, starts before stdin or a kernel
        from .providers import preload_for

        preload_for(settings, cache_mode=cache_mode_from_args(args))
    request = _read_request(args.request, settings)
    if missing is not None:
        _no_key(args, settings, request, missing)
    return asyncio.run(_ask(args, settings, request))


def _no_key(args: argparse.Namespace, settings: Settings, request: str, message: str) -> None:
    """End a run that cannot ask any model the way a run would (JSON still gets its record),
    without starting a kernel or loading an SDK."""
    import uuid

    from .errors import AuthenticationError
    from .models import Metrics, RunRecord

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
        from .formats import render

        sys.stdout.write(render(failure.record, "json"))
        sys.stdout.flush()
    raise failure


def register_ask(sub: Any) -> None:
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
    add_flow_options(p)
    p.add_argument(
        "--steps", action="store_true", help="plan the request as steps, run each in order"
    )
    p.add_argument(
        "--max-steps",
        type=steps_count,
        help=f"at most this many steps (default {DEFAULT_MAX_STEPS}, 1 to {MAX_STEPS_LIMIT})",
    )
    p.add_argument("--format", choices=["markdown", "json", "plain"], help="output format")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_ask)


def register_batch(sub: Any) -> None:
    from .batch import register

    register(sub)


__all__ = ["CATEGORIES", "add_flow_options", "register_ask", "register_batch", "settings_from_args"]
