"""First-token stamps are taken when the socket read delivers the bytes, not when the busy
event loop gets round to resuming the reading coroutine."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from simulator.transports import stamps
from simulator.transports.openai_chat import OpenAIChatTransport

BUSY_S = 0.004  # each busy callback holds the client's loop this long


def _event(obj: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


@pytest.fixture
def stamping_server() -> Iterator[str]:
    """An SSE server in its own thread and loop (so the client's busy loop cannot delay
    it). Its first content carries the server's ``perf_counter_ns()`` taken just before
    the write; the same process shares the clock."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
        await asyncio.sleep(0.05)
        stamp = str(time.perf_counter_ns())
        await resp.write(_event({"choices": [{"index": 0, "delta": {"content": stamp}}]}))
        await resp.write(_event({"choices": [{"index": 0, "delta": {},
                                              "finish_reason": "stop"}]}))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield str(box["url"])
    runner = box["runner"]
    assert isinstance(runner, web.AppRunner)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


async def _errors_under_busy_loop(url: str, n: int, client: str = "http11"
                                  ) -> tuple[bool, list[float]]:
    """(stamped at arrival?, first-content stamp - server write stamp in ms, per exchange)
    while the client's loop runs a chain of callbacks that each block ``BUSY_S``."""
    loop = asyncio.get_running_loop()
    busy = True

    def hog() -> None:
        time.sleep(BUSY_S)
        if busy:
            loop.call_soon(hog)

    t = OpenAIChatTransport(url, client=client)
    errors: list[float] = []
    try:
        await t.exchange([{"role": "user", "content": "warm"}], [])
        for _ in range(n):
            loop.call_soon(hog)
            busy = True
            ex = await t.exchange([{"role": "user", "content": "hi"}], [])
            busy = False
            await asyncio.sleep(0.01)
            assert ex.error is None, ex.error_detail
            assert ex.first_content_ns is not None
            errors.append((ex.first_content_ns - int(ex.text)) / 1e6)
    finally:
        busy = False
        await t.aclose()
    return t.stamps_at_arrival, errors


@pytest.mark.timing
async def test_first_content_is_stamped_at_the_socket_read_not_on_resume(
    stamping_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The http11 client (the default) stamps in its protocol's data_received.
    at_arrival, arrival_err = await _errors_under_busy_loop(stamping_server, 12)
    assert at_arrival
    # The aiohttp fallback stamps at the socket read too, through its swapped factory...
    fallback, fallback_err = await _errors_under_busy_loop(stamping_server, 12, "aiohttp")
    assert fallback, "aiohttp's protocol factory could not be swapped: stamps fall back"
    # ...and without it, on resume of the reading coroutine.
    monkeypatch.setattr(stamps, "install", lambda _conn: False)
    at_resume, resume_err = await _errors_under_busy_loop(stamping_server, 12, "aiohttp")
    assert not at_resume
    # On resume the stamp also waits for the busy callback queued behind the read (the
    # task step is a loop iteration later): one whole BUSY_S more, measured 12.1 vs 8.0 ms
    # on asyncio's loop, 7.5 vs 3.4 ms on uvloop's.
    assert min(resume_err) >= BUSY_S * 1e3 * 0.9
    assert statistics.median(arrival_err) < statistics.median(resume_err) - BUSY_S * 1e3 / 2
    assert statistics.median(fallback_err) < statistics.median(resume_err) - BUSY_S * 1e3 / 2


def test_split_gives_each_piece_its_arrival_stamp() -> None:
    class Reader:
        total_bytes = 0

    class Proto:
        rx = None

    reader = Reader()
    log = stamps.ArrivalLog(reader, Proto())  # type: ignore[arg-type]
    reader.total_bytes = 10  # fed before attaching: arrival unknown
    log.base = 0
    log.marks.extend([(100, 10)])
    reader.total_bytes = 25
    log.marks.extend([(200, 18), (300, 25)])
    chunk = bytes(range(25))
    pieces = log.split(chunk, fallback_ns=999)
    assert pieces == [(100, chunk[:10]), (200, chunk[10:18]), (300, chunk[18:])]
    assert not log.marks
    # Bytes with no mark (fed before the log was attached) get the fallback stamp.
    log2 = stamps.ArrivalLog(reader, Proto())  # type: ignore[arg-type]
    reader.total_bytes = 30
    log2.marks.append((400, 30))
    assert log2.split(bytes(10), fallback_ns=7) == [(7, bytes(5)), (400, bytes(5))]


@pytest.mark.timing
@pytest.mark.skipif(__import__("sys").platform != "linux",
                    reason="kernel receive stamps are Linux's")
async def test_a_reply_that_lands_while_the_loop_is_blocked_keeps_its_arrival_time(
    stamping_server: str,
) -> None:
    # The client's loop is blocked for 300 ms from just after the request goes out, so the
    # first content (written by the server 50 ms in) is read about 250 ms after it arrived.
    # Its stamp is still the kernel's: when the bytes reached this machine.
    t = OpenAIChatTransport(stamping_server)
    try:
        await t.exchange([{"role": "user", "content": "warm"}], [])
        errors = []
        for _ in range(3):
            asyncio.get_running_loop().call_later(0.005, time.sleep, 0.3)
            ex = await t.exchange([{"role": "user", "content": "hi"}], [])
            assert ex.error is None and ex.first_content_ns is not None
            errors.append((ex.first_content_ns - int(ex.text)) / 1e6)
            read_late_ms = (ex.last_byte_ns - ex.sent_ns) / 1e6
            assert read_late_ms < 1000
    finally:
        await t.aclose()
    assert max(errors) < 20.0, errors  # not the ~250 ms the loop was blocked after arrival
