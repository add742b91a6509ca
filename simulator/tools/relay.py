"""The tool relay: agents that run tools themselves (voice platforms with server-side tools)
call callsim's tool backend over HTTP, and the relay routes each request to the running
call it belongs to (the call id travels in a header), so faults and grading stay per call."""

from __future__ import annotations

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


def create_tool_relay_app(relay: ToolRelay) -> web.Application:
    """``POST /tools/{name}`` -> the running call's ``execute_tool`` (see :class:`ToolRelay`)."""
    async def handle(request: web.Request) -> web.Response:
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


async def start_tool_relay(port: int = 0) -> RunningRelay:
    """Serve the tool relay on 127.0.0.1:``port`` (0: any free port)."""
    relay = ToolRelay()
    runner = web.AppRunner(create_tool_relay_app(relay), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return RunningRelay(relay, f"http://127.0.0.1:{runner.addresses[0][1]}", runner)
