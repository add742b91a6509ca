"""The tool relay: agents that run tools themselves (voice platforms with server-side tools)
call callsim's tool backend over HTTP, and the relay routes each request to the running
call it belongs to (the call id travels in a header), so faults and grading stay per call."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from simulator.tools.backend import CALL_ID_HEADER

ExecuteTool = Callable[
    [str, "dict[str, Any] | None", str, int], Awaitable[tuple[str, "dict[str, Any] | None"]]
]


class ToolRelay:
    """Routes an agent's HTTP tool calls (``POST /tools/{name}``, call id in
    ``X-Callsim-Call-Id``) to the ``execute_tool`` of the running call, so faults and grading
    stay per call exactly as for text agents. Serve it with :func:`create_tool_relay_app`."""

    def __init__(self) -> None:
        self._calls: dict[str, tuple[ExecuteTool, list[dict[str, Any]], list[int]]] = {}
        self.requests = 0  # tool requests routed to a running call, over the relay's life

    def register(self, call_id: str, execute_tool: ExecuteTool) -> list[dict[str, Any]]:
        """Route ``call_id``'s tool calls to ``execute_tool``; returns the call's tool log."""
        log: list[dict[str, Any]] = []
        self._calls[call_id] = (execute_tool, log, [0])
        return log

    def unregister(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def call(self, call_id: str, name: str, raw: str) -> tuple[int, str]:
        entry = self._calls.get(call_id)
        if entry is None:
            return 404, json.dumps({"error": "unknown_call",
                                    "message": f"no running call {call_id!r}"})
        execute, log, counter = entry
        self.requests += 1
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            parsed = None
        k = counter[0]
        counter[0] += 1
        result, fault = await execute(name, parsed, raw, k)
        log.append({"name": name, "arguments": parsed, "raw": raw, "result": result,
                    "fault": fault, "k": k})
        return 200, result


def create_tool_relay_app(relay: ToolRelay, token: str | None = None) -> web.Application:
    """``POST /tools/{name}`` -> the running call's ``execute_tool`` (see :class:`ToolRelay`).
    With ``token``, a request without ``Authorization: Bearer TOKEN`` gets 401."""
    expected = f"Bearer {token}".encode() if token else None

    async def handle(request: web.Request) -> web.Response:
        if expected is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), expected):
            return web.Response(status=401, content_type="application/json",
                                text=json.dumps({"error": "unauthorized",
                                                 "message": "missing or wrong bearer token"}),
                                headers={"WWW-Authenticate": "Bearer"})
        call_id = request.headers.get(CALL_ID_HEADER, "")
        raw = (await request.read()).decode("utf-8", "replace")
        status, body = await relay.call(call_id, request.match_info["name"], raw)
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/tools/{name}", handle)
    return app


@dataclass
class RunningRelay:
    """The HTTP tool relay an agent calls (transports whose spec has ``tool_relay``)."""

    relay: Any
    url: str
    runner: Any

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_tool_relay(port: int = 0, host: str = "127.0.0.1",
                           token: str | None = None) -> RunningRelay:
    """Serve the tool relay on ``host``:``port`` (0: any free port); with ``token``, only
    requests carrying ``Authorization: Bearer TOKEN`` are answered. ``url`` names the
    bound address (an IPv6 host in brackets)."""
    relay = ToolRelay()
    runner = web.AppRunner(create_tool_relay_app(relay, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    return RunningRelay(relay, f"http://{shown}:{bound_port}", runner)
