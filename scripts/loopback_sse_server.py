"""A minimal, fast loopback Chat Completions SSE server whose true delays are known.

Raw asyncio ``Protocol`` (uvloop when installed), HTTP/1.1 keep-alive, chunked transfer.
``POST /v1/chat/completions`` streams: a role chunk at once, then ``--tokens`` content
chunks (the first after ``--ttft-ms``, the rest every ``--token-ms`` on an absolute grid),
a finish chunk, a usage chunk and ``[DONE]``. ``GET /v1/models`` answers at once (warm-up).

Each content chunk carries the server's own ``time.perf_counter_ns()`` taken right before
the write, and the first one also the stamp at which the request's first byte arrived:
content ``"r<recv_ns> w<write_ns> "`` then ``"w<write_ns> "``. On Linux perf_counter_ns is
CLOCK_MONOTONIC, system-wide, so a client on the same machine compares stamps directly.

    .venv/bin/python scripts/loopback_sse_server.py --ttft-ms 250 --token-ms 20 --cpu 1

prints ``http://127.0.0.1:PORT/v1`` on its first stdout line and serves until killed.
This is a helper of ``scripts/bench_driver.py``, not a benchmark (hence not ``bench_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time

_now = time.perf_counter_ns
_CL = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
_MODELS = b'{"object":"list","data":[{"id":"bench","object":"model"}]}'
_MODELS_RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_MODELS)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + _MODELS
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
_PRE = b'{"id":"bench","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,'
_ROLE = _PRE + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
_FINISH = _PRE + b'"delta":{},"finish_reason":"stop"}]}'


def _chunk(data: bytes) -> bytes:
    """One SSE event framed as one HTTP chunk."""
    ev = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(ev), ev)


class Config:
    def __init__(self, ttft_ms: float, token_ms: float, tokens: int) -> None:
        self.ttft_ns = int(ttft_ms * 1e6)
        self.token_ns = int(token_ms * 1e6)
        self.tokens = tokens
        usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
        self.tail = (
            _chunk(_FINISH)
            + _chunk(b'{"id":"bench","object":"chat.completion.chunk","model":"bench",'
                     b'"choices":[],"usage":' + json.dumps(usage).encode() + b"}")
            + _chunk(b"[DONE]")
            + b"0\r\n\r\n"
        )


class Conn(asyncio.Protocol):
    __slots__ = ("buf", "cfg", "loop", "recv_ns", "tr", "streaming", "timer")

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.buf = bytearray()
        self.recv_ns = 0
        self.streaming = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr: asyncio.Transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        t = _now()
        if not self.buf:
            self.recv_ns = t  # first byte of a new request
        self.buf += data
        if not self.streaming:
            self._maybe_request()

    def _maybe_request(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        m = _CL.search(buf, 0, end + 2)
        need = end + 4 + (int(m.group(1)) if m else 0)
        if len(buf) < need:
            return
        line = bytes(buf[: buf.find(b"\r\n")])
        del buf[:need]
        recv = self.recv_ns
        if buf:
            self.recv_ns = _now()
        if line.startswith(b"POST ") and b"/chat/completions" in line:
            self.streaming = True
            self.tr.write(_SSE_HEAD + _chunk(_ROLE))
            self._stream(recv)
        elif line.startswith(b"GET ") and b"/models" in line:
            self.tr.write(_MODELS_RESP)
        else:
            self.tr.write(_NOT_FOUND)

    def _stream(self, recv_ns: int) -> None:
        cfg = self.cfg
        loop = self.loop
        # Absolute grid on perf_counter_ns; loop.call_at uses loop.time() (monotonic too).
        base_loop = loop.time() - _now() / 1e9
        k = 0

        def tick() -> None:
            nonlocal k
            if self.tr.is_closing():
                return
            w = _now()
            if k == 0:
                text = b"r%d w%d " % (recv_ns, w)
            else:
                text = b"w%d " % w
            self.tr.write(_chunk(_PRE + b'"delta":{"content":"' + text
                                 + b'"},"finish_reason":null}]}'))
            k += 1
            if k < cfg.tokens:
                due = recv_ns + cfg.ttft_ns + k * cfg.token_ns
                self.timer = loop.call_at(base_loop + due / 1e9, tick)
            else:
                self.timer = None
                self.tr.write(cfg.tail)
                self.streaming = False
                if self.buf:
                    self._maybe_request()

        due = recv_ns + cfg.ttft_ns
        self.timer = loop.call_at(base_loop + due / 1e9, tick)


async def serve(cfg: Config, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(cfg), host, port, backlog=4096)
    sock_port = server.sockets[0].getsockname()[1]
    print(f"http://{host}:{sock_port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=250.0, help="first-token delay D")
    ap.add_argument("--token-ms", type=float, default=20.0, help="inter-token delay")
    ap.add_argument("--tokens", type=int, default=20, help="content chunks per reply")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    ap.add_argument("--no-uvloop", action="store_true")
    a = ap.parse_args(argv)
    if a.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    cfg = Config(a.ttft_ms, a.token_ms, max(1, a.tokens))
    runner = asyncio.run
    if not a.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run  # type: ignore[assignment]
        except ImportError:
            pass
    try:
        runner(serve(cfg, a.host, a.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
