"""`codeflow mcp`: serve codeflow's kernel, scanner and loop to coding agents
(`mcp_server` does the work)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..errors import UsageError
from ..mcp_server import TOKEN_ENV, McpSession, serve_http, serve_stdio
from ..mcp_tools import DEFAULT_WAIT_S
from ..options import FLOW_OPTIONS, OPTIONS, add_options
from .common import cache_mode_from_args, settings_from_args


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise UsageError(
            "codeflow mcp needs the MCP SDK: pip install 'codeflow-magic[mcp]'"
        ) from None
    settings = settings_from_args(args)
    if args.notebook is not None and args.notebook.suffix != ".ipynb":
        raise UsageError(f"--notebook must be a .ipynb file: {args.notebook}")
    session = McpSession(
        settings,
        backend=args.backend,
        work_dir=args.work_dir,
        cache_mode=cache_mode_from_args(args),
        notebook=args.notebook,
        wait=args.wait,
    )
    if args.http is not None and not 0 <= args.http <= 65535:
        raise UsageError(f"--http: {args.http} is no port (0 to 65535)")
    if args.http is None:
        asyncio.run(serve_stdio(session))
        return 0
    import os
    import secrets

    token = os.environ.get(TOKEN_ENV, "")
    asyncio.run(serve_http(session, args.http, token or secrets.token_urlsafe(24), not token))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve codeflow's kernel, scanner and loop to coding agents (MCP, stdio)",
        description="An MCP server on stdin/stdout: tools execute, run_request, state, "
        "preview, history, result (and list_cells, write_cell, run_cell with --notebook) on "
        "one persistent kernel per session, behind codeflow's security scanner.",
    )
    add_options(p, FLOW_OPTIONS)
    add_options(
        p,
        ("notebook", "mcp.wait", "http"),
        mcp_wait={
            "default": DEFAULT_WAIT_S,
            "help": OPTIONS["mcp.wait"].help + f" (default {DEFAULT_WAIT_S:g})",
        },
    )
    p.set_defaults(func=cmd_mcp)
