"""Error categories a user can act on, against real servers on 127.0.0.1: a 200 reply that
is not an SSE stream is ``protocol_error``; a stream that ends cleanly part-way is
``incomplete_stream``; only a broken connection is ``reset``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from simulator.transports.base import Deadlines, Exchange
from simulator.transports.openai_chat import OpenAIChatTransport
from tests.conftest import TIME_FACTOR, serve_app, sse_app

PROXY_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
              b"<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>")


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


@pytest.fixture(autouse=True, params=["http11", "aiohttp"])
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both HTTP clients of the transport (the llhttp hot path and the aiohttp fallback)."""
    monkeypatch.setenv("CALLSIM_HTTP_CLIENT", request.param)
    return str(request.param)


async def _exchange(app: web.Application, **kw: Any) -> Exchange:
    dl = Deadlines(first_byte_s=2.0 * TIME_FACTOR, stall_s=2.0 * TIME_FACTOR)
    async with serve_app(app) as url:
        t = OpenAIChatTransport(url + "/v1", deadlines=dl, **kw)
        try:
            return await t.exchange([{"role": "user", "content": "hi"}], [])
        finally:
            await t.aclose()


def _app(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


async def test_a_proxy_html_page_with_status_200_is_a_protocol_error() -> None:
    async def proxy(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=PROXY_PAGE, content_type="text/html")

    ex = await _exchange(_app(proxy))
    assert ex.error == "protocol_error", ex.error_detail
    assert "text/html" in ex.error_detail


async def test_an_html_page_held_open_is_a_protocol_error_at_once_not_a_timeout() -> None:
    async def proxy(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
        await resp.prepare(request)
        await resp.write(PROXY_PAGE)
        await asyncio.sleep(30)
        return resp

    ex = await _exchange(_app(proxy))
    assert ex.error == "protocol_error", ex.error_detail


async def test_a_page_without_content_type_that_is_not_sse_is_a_protocol_error() -> None:
    async def proxy(request: web.Request) -> web.Response:
        await request.read()
        resp = web.Response(body=PROXY_PAGE)
        resp.headers.pop("Content-Type", None)
        return resp

    ex = await _exchange(_app(proxy))
    assert ex.error == "protocol_error", ex.error_detail
    assert "502 Bad Gateway" in ex.error_detail


async def test_a_non_streamed_json_completion_is_a_protocol_error() -> None:
    async def plain(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"choices": [{"index": 0, "message": {
            "role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]})

    ex = await _exchange(_app(plain))
    assert ex.error == "protocol_error", ex.error_detail
    assert "application/json" in ex.error_detail


async def test_a_stream_that_ends_cleanly_before_done_is_incomplete_not_reset() -> None:
    async def short(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"role": "assistant"}))
        await resp.write(chunk({"content": "Your appointment is"}))
        # returns: aiohttp ends the chunked body properly; no finish reason, no [DONE]

    ex = await _exchange(sse_app(short))
    assert ex.error == "incomplete_stream", ex.error_detail
    assert ex.text == "Your appointment is"  # what was said is kept


async def test_an_empty_200_stream_is_incomplete() -> None:
    async def empty(_req: web.Request, resp: web.StreamResponse) -> None:
        return None

    ex = await _exchange(sse_app(empty))
    assert ex.error == "incomplete_stream", ex.error_detail


async def test_a_finish_reason_without_done_is_a_complete_reply() -> None:
    async def no_done(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"content": "Bye."}))
        await resp.write(chunk({}, finish="stop"))

    ex = await _exchange(sse_app(no_done))
    assert ex.error is None and ex.text == "Bye."


async def test_a_connection_broken_mid_stream_is_still_reset() -> None:
    async def broken(req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"content": "I was about to"}))
        assert req.transport is not None
        req.transport.abort()

    ex = await _exchange(sse_app(broken))
    assert ex.error == "reset", ex.error_detail


@pytest.mark.parametrize("status", [500, 404])
async def test_error_statuses_keep_their_categories(status: int) -> None:
    async def err(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, body=PROXY_PAGE, content_type="text/html")

    ex = await _exchange(_app(err))
    assert ex.error == ("http_5xx" if status == 500 else "http_4xx")
