"""The openai-chat transport against real SSE servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from simulator.transports.base import Deadlines
from simulator.transports.openai_chat import OpenAIChatTransport
from tests.conftest import TIME_FACTOR, serve_app, sse_app


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    obj["choices"] = [] if delta is None else [{"index": 0, "delta": delta,
                                                 "finish_reason": finish}]
    obj.update(extra)
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def test_role_only_chunk_is_not_first_content_and_usage_is_read() -> None:
    async def handler(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"role": "assistant"}))
        await asyncio.sleep(0.15)
        for tok in ["Hello", " there"]:
            await resp.write(chunk({"content": tok}))
        await resp.write(chunk({}, finish="stop"))
        await resp.write(chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 2,
                                            "total_tokens": 9}))
        await resp.write(b"data: [DONE]\n\n")

    async with serve_app(sse_app(handler)) as url:
        t = OpenAIChatTransport(url + "/v1")
        await t.warmup(1)
        ex = await t.exchange([{"role": "user", "content": "hi"}], [])
        await t.aclose()
    assert ex.error is None
    assert ex.text == "Hello there"
    assert ex.usage == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    # The 150 ms gap sits between the role-only chunk and the first content.
    assert ex.ttft_ms is not None and ex.ttft_ms >= 140
    assert ex.conn_setup_ns == 0  # pre-warmed connection: no set-up inside the request


async def test_tool_call_fragments_are_assembled_by_index() -> None:
    async def handler(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"role": "assistant"}))
        await resp.write(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                                "function": {"name": "lookup", "arguments": ""}}]}))
        for frag in ['{"na', 'me": "Ann', ' Lee"}']:
            await resp.write(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        second = {"index": 1, "id": "call_b", "function": {"name": "other", "arguments": "{}"}}
        await resp.write(chunk({"tool_calls": [second]}))
        await resp.write(chunk({}, finish="tool_calls"))
        await resp.write(b"data: [DONE]\n\n")

    async with serve_app(sse_app(handler)) as url:
        t = OpenAIChatTransport(url + "/v1")
        ex = await t.exchange([{"role": "user", "content": "hi"}], [])
        await t.aclose()
    assert [c.name for c in ex.tool_calls] == ["lookup", "other"]
    assert ex.tool_calls[0].parsed == {"name": "Ann Lee"}
    assert ex.first_content_ns is not None
    assert ex.conn_setup_ns > 0  # cold connection: set-up measured on its own


async def test_http_errors_and_refused_connections_get_categories() -> None:
    async def five(_r: web.Request) -> web.Response:
        return web.Response(status=503, text="overloaded")

    async def rate(_r: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_post("/a/chat/completions", five)
    app.router.add_post("/b/chat/completions", rate)
    async with serve_app(app) as url:
        a = OpenAIChatTransport(url + "/a")
        b = OpenAIChatTransport(url + "/b")
        ea = await a.exchange([], [])
        eb = await b.exchange([], [])
        await a.aclose()
        await b.aclose()
    assert ea.error == "http_5xx" and "503" in ea.error_detail
    assert eb.error == "rate_limited" and "Retry-After: 3" in eb.error_detail
    dead = OpenAIChatTransport(url + "/a")  # the server is gone now
    ed = await dead.exchange([], [])
    await dead.aclose()
    assert ed.error == "connect_refused"


async def test_silent_server_hits_first_byte_deadline_and_stall_is_detected() -> None:
    async def silent(_req: web.Request, resp: web.StreamResponse) -> None:
        await asyncio.sleep(5)

    async def stalls(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"content": "a"}))
        await asyncio.sleep(5)

    dl = Deadlines(first_byte_s=0.3 * TIME_FACTOR, stall_s=0.3 * TIME_FACTOR)
    async with serve_app(sse_app(silent)) as u1, serve_app(sse_app(stalls)) as u2:
        t1 = OpenAIChatTransport(u1 + "/v1", deadlines=dl)
        t2 = OpenAIChatTransport(u2 + "/v1", deadlines=dl)
        e1, e2 = await asyncio.gather(t1.exchange([], []), t2.exchange([], []))
        await t1.aclose()
        await t2.aclose()
    assert e1.error == "first_byte_timeout"
    assert e2.error == "stall"


async def test_barge_in_cancels_the_stream_at_the_onset() -> None:
    async def slow(_req: web.Request, resp: web.StreamResponse) -> None:
        for i in range(40):
            await resp.write(chunk({"content": f"w{i} "}))
            await asyncio.sleep(0.025)
        await resp.write(b"data: [DONE]\n\n")

    async with serve_app(sse_app(slow)) as url:
        t = OpenAIChatTransport(url + "/v1")
        ex = await t.exchange([], [], interrupt_after_s=0.3)
        await t.aclose()
    assert ex.interrupted_at_ns is not None and ex.first_content_ns is not None
    said = ex.text.split()
    assert 3 <= len(said) < 40  # cut part-way, what was said so far is kept
    assert (ex.interrupted_at_ns - ex.first_content_ns) / 1e6 >= 290
