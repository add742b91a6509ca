"""Shared test helpers: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

# Time bounds in tests scale with this factor on slow machines.
TIME_FACTOR = float(os.environ.get("CALLSIM_TIME_FACTOR", "1"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``timing`` assert real-time bounds (a measured latency within a few ms of
    a configured one): on a shared machine a stray process can spoil one attempt, so they
    get two retries. Their bounds stay as strict as the issues set them."""
    for item in items:
        if item.get_closest_marker("timing") is not None:
            item.add_marker(pytest.mark.flaky(reruns=2))


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1:0; yield ``http://127.0.0.1:PORT``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def sse_app(handler: Callable[[web.Request, web.StreamResponse], Any]) -> web.Application:
    """An app whose POST /v1/chat/completions streams whatever ``handler`` writes."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await handler(request, resp)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app
