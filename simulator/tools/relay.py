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

from simulator.errors import CallsimError
from simulator.tools.backend import CALL_ID_HEADER

ExecuteTool = Callable[
    [str, "dict[str, Any] | None", str, int], Awaitable[tuple[str, "dict[str, Any] | None"]]
]


def _unknown_call(call_id: str) -> tuple[int, str]:
    """The answer to a request for a call no relay holds: 404 ``unknown_call``."""
    return 404, json.dumps({"error": "unknown_call", "message": f"no running call {call_id!r}"})


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
            return _unknown_call(call_id)
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


Dispatch = Callable[[str, str, str, str], Awaitable[tuple[int, str]]]


def _json_error(status: int, error: str, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, content_type="application/json", headers=headers,
                        text=json.dumps({"error": error, "message": message}))


def _relay_app(dispatch: Dispatch, token: str | None) -> web.Application:
    """``POST /tools/{name}``: the bearer-token check, then ``dispatch(call id, tool name,
    body, Authorization header)`` -> (status, JSON body)."""
    expected = f"Bearer {token}".encode() if token else None

    async def handle(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if expected is not None and not hmac.compare_digest(auth.encode(), expected):
            return _json_error(401, "unauthorized", "missing or wrong bearer token",
                               **{"WWW-Authenticate": "Bearer"})
        call_id = request.headers.get(CALL_ID_HEADER, "")
        raw = (await request.read()).decode("utf-8", "replace")
        status, body = await dispatch(call_id, request.match_info["name"], raw, auth)
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/tools/{name}", handle)
    return app


def create_tool_relay_app(relay: ToolRelay, token: str | None = None) -> web.Application:
    """``POST /tools/{name}`` -> the running call's ``execute_tool`` (see :class:`ToolRelay`).
    With ``token``, a request without ``Authorization: Bearer TOKEN`` gets 401."""

    async def dispatch(call_id: str, name: str, raw: str, _auth: str) -> tuple[int, str]:
        return await relay.call(call_id, name, raw)

    return _relay_app(dispatch, token)


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
    runner, url = await _serve(create_tool_relay_app(relay, token), host, port)
    return RunningRelay(relay, url, runner)


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise CallsimError(f"the tool relay cannot listen on {host}:{port}: "
                           f"{exc.strerror or exc}") from None
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    return runner, f"http://{shown}:{bound_port}"


class _Forwarder:
    """The front of a run spread over workers: each worker serves its own calls' relay,
    and this one, on the address the agent was given, passes each request on to the relay
    of the worker that holds the call (``route``: call id -> that relay's URL, or None for
    a call no worker holds)."""

    def __init__(self, route: Callable[[str], str | None]) -> None:
        self.route = route
        self.requests = 0
        self.session: Any = None

    async def dispatch(self, call_id: str, name: str, raw: str, auth: str) -> tuple[int, str]:
        import aiohttp

        upstream = self.route(call_id)
        if upstream is None:
            return _unknown_call(call_id)
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        headers = {CALL_ID_HEADER: call_id, "Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        self.requests += 1
        try:
            async with self.session.post(f"{upstream}/tools/{name}", data=raw.encode(),
                                         headers=headers) as resp:
                return resp.status, await resp.text()
        except aiohttp.ClientError as exc:
            return 502, json.dumps({"error": "worker_unreachable",
                                    "message": f"the relay of the worker holding call "
                                               f"{call_id!r} did not answer: {exc}"})


@dataclass
class RunningForwarder:
    """The front relay of a distributed run (see :func:`start_forwarding_relay`)."""

    url: str
    runner: Any
    forwarder: _Forwarder

    async def close(self) -> None:
        await self.runner.cleanup()
        if self.forwarder.session is not None:
            await self.forwarder.session.close()


async def start_forwarding_relay(route: Callable[[str], str | None], port: int = 0,
                                 host: str = "127.0.0.1", token: str | None = None
                                 ) -> RunningForwarder:
    """Serve the relay an agent calls on ``host``:``port`` for a run whose calls live on
    several workers: a request for call C is passed on, body, call id and bearer token as
    they came, to ``route(C)`` (the worker's own relay), and its answer returned as is."""
    fwd = _Forwarder(route)
    runner, url = await _serve(_relay_app(fwd.dispatch, token), host, port)
    return RunningForwarder(url, runner, fwd)
