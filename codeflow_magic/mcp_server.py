"""`codeflow mcp`: codeflow's kernel, scanner, loop and notebook write-back as MCP tools.

Coding agents (Claude Code, Cursor, Jupyter AI) reach kernels through MCP servers. This one
is a thin map onto what codeflow already has: `execute` scans with the scanner and the policy
the flow uses, runs on the executor of one `CodeFlow` session (one persistent kernel per
server), classifies a failure as the loop does (`analysis.classify`) and redacts outputs;
`run_request` is `CodeFlow.arun`; `state` and `preview` are the flow's grounding probe;
`write_cell` is the notebook write-back under the lock `codeflow run` takes.

A call that outlives `--wait` seconds answers with its run id and goes on; `result(run_id)`
collects it. A client that gives up on a call (its own request timeout) does not stop the
run either. Every call, what it was sent and what it answered, is kept (redacted) in the
session record that `history()` shows.

The MCP SDK is imported only when the server starts, so `codeflow --help` does not pay for it.
"""

from __future__ import annotations

from typing import Any

from .mcp_session import AGENT_MODEL, PROGRESS_EVERY_S, Job, McpSession
from .mcp_tools import (
    DEFAULT_WAIT_S,
    IMAGE_MIMES,
    TEXT_CHARS,
    TOOLS,
    Progress,
    Reply,
    ToolSpec,
    error_text,
    findings_text,
    render_outputs,
    without_images,
)

SERVER_NAME = "codeflow"


# ------------------------------------------------------------------------------ the server


def build_server(session: McpSession) -> Any:
    """The MCP server (the SDK's low-level `Server`) whose tools call into `session`."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from . import __version__

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=spec.name,
                    description=spec.description,
                    input_schema=spec.schema(),
                    annotations=types.ToolAnnotations(
                        read_only_hint=spec.read_only,
                        destructive_hint=False if spec.read_only else None,
                    ),
                )
                for spec in session.tools
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        async def progress(value: float, total: float | None, message: str) -> None:
            await ctx.session.report_progress(value, total, message)

        reply = await session.call(params.name, params.arguments or {}, progress)
        content: list[Any] = [types.TextContent(type="text", text=t) for t in reply.text if t]
        content += [
            types.ImageContent(type="image", data=data, mime_type=mime)
            for mime, data in reply.images
        ]
        return types.CallToolResult(
            content=content, structured_content=reply.data or None, is_error=reply.error
        )

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions="codeflow runs code on one persistent Jupyter kernel with a security "
        "scanner in front of it, classifies errors, and can turn plain-words requests into "
        "working code. Use `execute` for code you wrote, `run_request` to let codeflow write "
        "and fix it, `state`/`preview` to look before you write.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(session: McpSession) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(session)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await session.aclose()


TOKEN_ENV = "CODEFLOW_MCP_TOKEN"
"""The bearer token of the HTTP transport (a fresh random one, printed on stderr, when unset)."""


def require_token(app: Any, token: str) -> Any:
    """ASGI middleware: an HTTP request without `Authorization: Bearer TOKEN` gets a 401."""
    import hmac

    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong token\n"})
                return
        await app(scope, receive, send)

    return guarded


async def serve_http(session: McpSession, port: int, token: str, announce: bool) -> None:
    """Streamable HTTP on loopback only, every request carrying the bearer token."""
    import socket
    import sys

    import uvicorn

    host = "127.0.0.1"
    server = build_server(session)
    app = require_token(server.streamable_http_app(host=host), token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    url = f"http://{host}:{sock.getsockname()[1]}/mcp"
    print(f"codeflow mcp: streamable HTTP on {url}", file=sys.stderr, flush=True)
    if announce:
        print(f"codeflow mcp: token {token} (set {TOKEN_ENV} to choose it)", file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()
        await session.aclose()


__all__ = [
    "AGENT_MODEL",
    "DEFAULT_WAIT_S",
    "IMAGE_MIMES",
    "PROGRESS_EVERY_S",
    "SERVER_NAME",
    "TEXT_CHARS",
    "TOKEN_ENV",
    "TOOLS",
    "Job",
    "McpSession",
    "Progress",
    "Reply",
    "ToolSpec",
    "build_server",
    "error_text",
    "findings_text",
    "render_outputs",
    "require_token",
    "serve_http",
    "serve_stdio",
    "without_images",
]
