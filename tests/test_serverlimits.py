"""What callsim serves refuses too much cleanly: oversized bodies get 413, requests past
the in-flight cap get 503 with Retry-After, and the server keeps serving."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from simulator.agent import AgentConfig, create_agent_app
from simulator.serverlimits import in_flight_limit
from tests.conftest import serve_app


async def test_reference_agent_rejects_an_oversized_body_and_keeps_serving() -> None:
    async with serve_app(create_agent_app(AgentConfig())) as url, aiohttp.ClientSession() as s:
        big = b'{"messages": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        async with s.post(f"{url}/v1/chat/completions", data=big,
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413
        async with s.get(f"{url}/v1/models") as r:
            assert r.status == 200


async def test_requests_past_the_in_flight_cap_get_503() -> None:
    release = asyncio.Event()

    async def slow(_r: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="ok")

    app = web.Application(middlewares=[in_flight_limit(3)])
    app.router.add_get("/", slow)
    async with serve_app(app) as url, aiohttp.ClientSession() as s:
        held = [asyncio.create_task(s.get(url)) for _ in range(3)]
        await asyncio.sleep(0.2)
        async with s.get(url) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "1"
        release.set()
        for t in held:
            resp = await t
            assert resp.status == 200
            resp.release()
        async with s.get(url) as r:
            assert r.status == 200
