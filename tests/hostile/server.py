"""A hostile Chat Completions server for fault tests (127.0.0.1 only).

Each call (identified by the ``X-Callsim-Call-Id`` header callsim sends) gets one fault,
chosen from the call index: even calls are healthy, odd ones cycle through the faults
(see :func:`fault_for`). ``healthy`` answers like a
well-behaved agent after a fixed think time. Run: ``python -m tests.hostile.server
[--all-healthy] [--think-ms 50]``; it prints its base URL on the first line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

# fault -> the error category callsim must report for it
FAULTS: dict[str, str | None] = {
    "healthy": None,
    "reset": "reset",
    "http_500": "http_5xx",
    "http_429_retry_after": "rate_limited",
    "http_429": "rate_limited",
    "silent": "first_byte_timeout",
    "slowloris": "first_byte_timeout",
    "malformed_sse": "protocol_error",
    "invalid_json": "protocol_error",
    "endless_tool_args": "oversized",
    "huge_reply": "oversized",
    "html_200": "protocol_error",
    "ends_without_done": "incomplete_stream",
}
NAMES = [n for n in FAULTS if n != "healthy"]


def fault_for(call_id: str | None, all_healthy: bool = False) -> str:
    if all_healthy or call_id is None or int(call_id) % 2 == 0:
        return "healthy"
    return NAMES[(int(call_id) // 2) % len(NAMES)]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "h", "object": "chat.completion.chunk", "model": "hostile",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def make_app(all_healthy: bool = False, think_ms: float = 50.0,
             echo_auth: bool = False) -> web.Application:
    # Fault payloads are built once: the server must stay cheap, so that what the test
    # measures is callsim, not an overloaded hostile server.
    endless_head = _chunk({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                           "function": {"name": "x", "arguments": "{"}}]})
    endless_frag = _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"a' * 4000}}]})
    huge = _chunk({"content": "x" * (50 * 1024 * 1024)})
    healthy = [_chunk({"role": "assistant"})] + [
        _chunk({"content": tok})
        for tok in ["I'm", " sorry,", " I", " couldn't", " find", " that.", " Goodbye!"]
    ] + [_chunk({}, "stop"), b"data: [DONE]\n\n"]

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            return await _chat(request)
        except (ConnectionError, asyncio.CancelledError):
            raise asyncio.CancelledError() from None  # the client hung up, as expected

    async def _chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        fault = fault_for(request.headers.get("X-Callsim-Call-Id"), all_healthy)
        if fault == "http_500":
            return web.Response(status=500, text="internal error")
        if fault == "http_429_retry_after":
            return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")
        if fault == "http_429":
            return web.Response(status=429, text="slow down")
        if fault == "silent":
            await asyncio.sleep(3600)
        if fault == "html_200":  # a proxy's error page, sent with status 200
            return web.Response(text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if fault == "slowloris":
            for _ in range(3600):
                await resp.write(b":")
                await asyncio.sleep(1.0)
        if fault == "reset":
            await resp.write(_chunk({"role": "assistant"}))
            await resp.write(_chunk({"content": "I was about to"}))
            assert request.transport is not None
            request.transport.abort()
            return resp
        if fault == "malformed_sse":
            await resp.write(b'data: {"choices": [{"delta": 5}]}\n\n')
            await asyncio.sleep(3600)
        if fault == "invalid_json":
            await resp.write(b"data: {this is not json\n\n")
            await asyncio.sleep(3600)
        if fault == "endless_tool_args":
            await resp.write(endless_head)
            while True:
                await resp.write(endless_frag)
                await asyncio.sleep(0.01)
        if fault == "ends_without_done":
            await resp.write(_chunk({"role": "assistant"}))
            await resp.write(_chunk({"content": "Let me check that for"}))
            return resp  # the chunked body ends properly: no finish reason, no [DONE]
        if fault == "huge_reply":
            view = memoryview(huge)
            for i in range(0, len(view), 65536):  # stops when the client hangs up
                await resp.write(view[i : i + 65536])
            return resp
        await asyncio.sleep(think_ms / 1000)
        if echo_auth:  # a hostile agent that repeats the caller's credentials back
            auth = request.headers.get("Authorization", "")
            if int(request.headers.get("X-Callsim-Call-Id", "0")) % 3 == 0:
                return web.Response(status=401, text=f"bad credentials {auth}")
            await resp.write(_chunk({"content": f"Your key is {auth}. Goodbye!"}))
            await resp.write(_chunk({}, "stop"))
            await resp.write(b"data: [DONE]\n\n")
            return resp
        for part in healthy:
            await resp.write(part)
        return resp

    async def models(_r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--all-healthy", action="store_true")
    ap.add_argument("--think-ms", type=float, default=50.0)
    ap.add_argument("--echo-auth", action="store_true")
    a = ap.parse_args()

    async def run() -> None:
        runner = web.AppRunner(make_app(a.all_healthy, a.think_ms, a.echo_auth), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
