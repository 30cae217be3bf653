"""`codeflow doctor`: which execution backends work here, and how to fix the others."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..executors.doctor import Check, run_checks
from ..options import add_options


def render_text(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        word = "ok" if c.ok else ("-" if not c.configured else "FAIL")
        lines.append(f"{c.backend:<8} {word:<5} {c.detail}")
        if c.warning:
            lines.append(f"{'':<14} note: {c.warning}")
        if c.fix and not c.ok:
            lines.append(f"{'':<14} {'fix: ' if c.configured else 'use: '} {c.fix}")
    return "\n".join(lines)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ..config import load_settings

    extra: dict[str, Any] = {
        "execution.gateway_url": args.gateway_url,
        "execution.gateway_token": args.gateway_token,
        "execution.kernel_name": args.kernel,
    }
    settings = load_settings(args.overrides, extra=extra)
    backends = [args.backend] if args.backend else None
    checks = run_checks(settings, backends)
    if args.format == "json":
        print(json.dumps({"backends": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render_text(checks))
    return 0


def register(subparsers: Any) -> None:
    """`codeflow doctor [--backend B] [--format text|json] [key=value ...]`."""
    parser = subparsers.add_parser(
        "doctor", help="Show which execution backends work here and how to fix the others."
    )
    add_options(
        parser,
        ("doctor.backend", "report.format", "doctor.gateway_url", "gateway_token", "doctor.kernel"),
        report_format={"dest": "format"},
        gateway_token={"default": None},
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    parser.set_defaults(func=_cmd_doctor)
