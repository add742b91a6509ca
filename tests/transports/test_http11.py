"""The HTTP/1.1 client (llhttp) under the openai-chat transport, against real servers on 127.0.0.1:
keep-alive reuse, a pooled connection the agent closed while idle, a stream cut at the
barge-in onset, TLS, and the request it sends."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
import trustme
from aiohttp import web

from simulator.errors import InputError
from simulator.transports.openai_chat import OpenAIChatTransport
from tests.conftest import serve_app, sse_app


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def reply(_req: web.Request, resp: web.StreamResponse) -> None:
    await resp.write(chunk({"role": "assistant"}))
    await resp.write(chunk({"content": "Hello"}))
    await resp.write(chunk({}, "stop"))
    await resp.write(b"data: [DONE]\n\n")


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_asked() -> None:
    seen: list[dict[str, Any]] = []
    peers: set[Any] = set()

    async def handler(req: web.Request, resp: web.StreamResponse) -> None:
        body = await req.json()
        seen.append({"call": req.headers.get("X-Callsim-Call-Id"),
                     "auth": req.headers.get("Authorization"),
                     "accept": req.headers.get("Accept"), "body": body, "path": req.path})
        peers.add(req.transport.get_extra_info("peername") if req.transport else None)
        await reply(req, resp)

    async with serve_app(sse_app(handler)) as url:
        t = OpenAIChatTransport(url + "/v1", model="m1", api_key="sk-test")
        assert t.client == "http11" and t.stamps_at_arrival
        await t.warmup(1)
        a = await t.exchange([{"role": "user", "content": "hi"}], [], call_id="000007")
        b = await t.exchange([{"role": "user", "content": "again"}], [])
        await t.aclose()
    assert a.error is None and b.error is None and a.text == b.text == "Hello"
    assert a.conn_setup_ns == 0 and b.conn_setup_ns == 0  # the warmed connection, twice
    assert len(peers) == 1
    assert seen[0]["call"] == "000007" and seen[1]["call"] is None
    assert seen[0]["auth"] == "Bearer sk-test" and seen[0]["accept"] == "text/event-stream"
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["body"]["model"] == "m1" and seen[0]["body"]["stream"] is True
    assert seen[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]


async def test_a_pooled_connection_the_agent_closed_while_idle_is_replaced() -> None:
    # The agent closes idle keep-alive connections after 0.1 s.
    runner = web.AppRunner(sse_app(reply), access_log=None, keepalive_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        t = OpenAIChatTransport(f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
        first = await t.exchange([], [])
        await asyncio.sleep(0.5)
        second = await t.exchange([], [])
        await t.aclose()
    finally:
        await runner.cleanup()
    assert first.error is None
    assert second.error is None and second.text == "Hello"
    assert second.conn_setup_ns > 0  # a new connection, its set-up kept out of TTFT


async def test_a_stream_cut_at_the_barge_in_onset_does_not_spoil_the_next_exchange() -> None:
    async def slow(_req: web.Request, resp: web.StreamResponse) -> None:
        for i in range(40):
            await resp.write(chunk({"content": f"w{i} "}))
            await asyncio.sleep(0.025)
        await resp.write(b"data: [DONE]\n\n")

    async with serve_app(sse_app(slow)) as url:
        t = OpenAIChatTransport(url + "/v1")
        cut = await t.exchange([], [], interrupt_after_s=0.2)
        whole = await t.exchange([], [])
        await t.aclose()
    assert cut.interrupted_at_ns is not None and cut.error is None
    assert 2 <= len(cut.text.split()) < 40
    assert whole.error is None and len(whole.text.split()) == 40


async def test_https_targets_are_served_over_tls() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    runner = web.AppRunner(sse_app(reply), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        t = OpenAIChatTransport(f"https://127.0.0.1:{port}/v1", ssl_context=client_ctx)
        ok = await t.exchange([], [])
        await t.aclose()
        untrusted = OpenAIChatTransport(f"https://127.0.0.1:{port}/v1")
        bad = await untrusted.exchange([], [])
        await untrusted.aclose()
    finally:
        await runner.cleanup()
    assert ok.error is None and ok.text == "Hello"
    assert bad.error == "connect_error" and "CERTIFICATE_VERIFY_FAILED" in bad.error_detail


def test_a_target_that_is_not_an_http_url_is_an_input_error() -> None:
    with pytest.raises(InputError, match="--target: not an http"):
        OpenAIChatTransport("ftp://example.com/v1")
    with pytest.raises(InputError, match="CALLSIM_HTTP_CLIENT"):
        OpenAIChatTransport("http://127.0.0.1:9/v1", client="curl")


async def test_a_refused_connection_is_connect_refused() -> None:
    t = OpenAIChatTransport("http://127.0.0.1:9/v1")
    ex = await t.exchange([], [])
    await t.aclose()
    assert ex.error == "connect_refused", ex.error_detail


async def _raw_server(answer: Any) -> tuple[asyncio.Server, str, list[bytes]]:
    """A server on 127.0.0.1 that reads one request head and answers with ``answer(writer)``;
    the heads it read are kept."""
    heads: list[bytes] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if await answer(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1", heads


async def _one_exchange(answer: Any, call_id: str | None = None) -> tuple[Any, list[bytes]]:
    """One exchange of a fresh client with a :func:`_raw_server` that answers with
    ``answer``: the exchange, and the request heads the server read."""
    server, url, heads = await _raw_server(answer)
    async with server:
        t = OpenAIChatTransport(url)
        ex = await t.exchange([], [], call_id=call_id)
        await t.aclose()
    return ex, heads


async def test_a_reply_ended_by_the_connection_closing_is_whole_and_not_reused() -> None:
    # An HTTP/1.0-style reply: no length, no chunks; the close ends it.
    async def answer(w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        w.write(chunk({"content": "Hello there"}) + chunk({}, "stop") + b"data: [DONE]\n\n")
        await w.drain()
        return True

    server, url, heads = await _raw_server(answer)
    async with server:
        t = OpenAIChatTransport(url)
        a = await t.exchange([], [])
        b = await t.exchange([], [])
        await t.aclose()
    assert a.error is None and a.text == "Hello there" and a.finish_reason == "stop"
    assert b.error is None and b.text == "Hello there"
    assert b.conn_setup_ns > 0  # the closed connection was not taken from the pool again
    assert len(heads) == 2


async def test_endless_headers_from_a_hostile_agent_are_a_protocol_error() -> None:
    async def answer(w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(20_000):  # 20,000 headers of 20 bytes, never ending the head
            w.write(b"x-pad-%05d: 0123456\r\n" % i)
            if i % 500 == 0:
                await w.drain()
        await asyncio.sleep(5)
        return True

    ex, _ = await _one_exchange(answer)
    assert ex.error == "protocol_error"
    assert "headers longer than" in (ex.error_detail or "")


async def test_a_call_id_with_a_line_break_cannot_add_a_header() -> None:
    async def answer(w: asyncio.StreamWriter) -> bool:
        body = chunk({"content": "ok"}) + b"data: [DONE]\n\n"
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"content-length: %d\r\n\r\n" % len(body) + body)
        await w.drain()
        return False

    ex, heads = await _one_exchange(answer, call_id="c1\r\nx-injected: yes")
    assert ex.error is None and ex.text == "ok"
    lines = heads[0].lower().split(b"\r\n")
    assert not any(line.startswith(b"x-injected") for line in lines)
    assert b"x-callsim-call-id: c1  x-injected: yes" in lines


async def test_a_short_head_and_a_large_body_read_at_once_are_not_long_headers() -> None:
    # A fast agent's large reply: one socket read can hold the head and hundreds of KiB of
    # body. Only the head counts against the 64 KiB bound on headers.
    events = b"".join(chunk({"content": "x" * 1000}) for _ in range(300))  # ~330 KB
    body = chunk({"role": "assistant"}) + events + chunk({}, "stop") + b"data: [DONE]\n\n"

    async def answer(w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
        await w.drain()
        return True

    ex, _ = await _one_exchange(answer)
    assert ex.error is None, ex.error_detail
    assert len(ex.text) == 300 * 1000
