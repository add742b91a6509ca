"""Deadlines of the openai-chat transport's single per-exchange watchdog (no timer per read)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from simulator.transports.base import Deadlines
from simulator.transports.openai_chat import OpenAIChatTransport
from tests.conftest import TIME_FACTOR, serve_app, sse_app
from tests.transports.test_openai_chat import chunk


async def test_stall_after_early_content_ends_at_stall_deadline_not_first_byte_one() -> None:
    # First content comes at once, then silence: the stall deadline (short) must apply,
    # not the first-byte deadline (long) the watchdog was first armed with.
    async def stalls(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"content": "a"}))
        await asyncio.sleep(3)  # then EOF: a missed deadline shows as 'reset'

    dl = Deadlines(first_byte_s=20.0, stall_s=0.3 * TIME_FACTOR)
    async with serve_app(sse_app(stalls)) as url:
        t = OpenAIChatTransport(url + "/v1", deadlines=dl)
        ex = await t.exchange([], [])
        await t.aclose()
    assert ex.error == "stall"


async def test_trickling_bytes_do_not_extend_first_content_deadline() -> None:
    # Comments keep arriving but no content: the absolute first-content deadline still ends it.
    async def trickle(_req: web.Request, resp: web.StreamResponse) -> None:
        for _ in range(200):
            await resp.write(b": keep-alive\n\n")
            await asyncio.sleep(0.05)

    dl = Deadlines(first_byte_s=0.5 * TIME_FACTOR, stall_s=5.0)
    async with serve_app(sse_app(trickle)) as url:
        t = OpenAIChatTransport(url + "/v1", deadlines=dl)
        ex = await t.exchange([], [])
        await t.aclose()
    assert ex.error == "first_byte_timeout"
    assert ex.first_content_ns is None


async def test_barge_in_fires_on_time_when_tokens_stop_before_the_onset() -> None:
    # The agent sends one token then goes quiet: the interrupt must still fire at its onset
    # (the watchdog is re-armed when first content sets the onset), not at the stall deadline.
    async def one_then_quiet(_req: web.Request, resp: web.StreamResponse) -> None:
        await resp.write(chunk({"content": "Hello"}))
        await asyncio.sleep(3)  # then EOF: a missed deadline shows as 'reset'

    dl = Deadlines(first_byte_s=20.0, stall_s=20.0)
    async with serve_app(sse_app(one_then_quiet)) as url:
        t = OpenAIChatTransport(url + "/v1", deadlines=dl)
        ex = await t.exchange([], [], interrupt_after_s=0.2)
        await t.aclose()
    assert ex.error is None
    assert ex.interrupted_at_ns is not None and ex.first_content_ns is not None
    assert ex.text == "Hello"
