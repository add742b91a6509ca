"""Limits on what callsim itself serves (reference agent, tool backend, tool relay).

Bodies are capped by aiohttp's ``client_max_size`` (413); this adds a cap on requests in
flight: past it a request gets a clean ``503 busy`` with ``Retry-After`` instead of piling
up until memory runs out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

MAX_IN_FLIGHT = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def in_flight_limit(limit: int = MAX_IN_FLIGHT) -> Any:
    """aiohttp middleware: at most ``limit`` requests (WebSocket sessions included) at once."""
    active = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal active
        if active >= limit:
            return web.json_response(
                {"error": {"type": "busy", "message": f"more than {limit} requests in flight"}},
                status=503, headers={"Retry-After": "1"})
        active += 1
        try:
            return await handler(request)
        finally:
            active -= 1

    return middleware
