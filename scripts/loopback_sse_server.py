"""A minimal, fast loopback Chat Completions SSE server whose true delays are known.

Raw non-blocking sockets on the asyncio loop (uvloop when installed), read with ``recvmsg``
and ``SO_TIMESTAMPNS``; HTTP/1.1 keep-alive, chunked transfer.
``POST /v1/chat/completions`` streams: a role chunk at once, then ``--tokens`` content
chunks (the first after ``--ttft-ms``, the rest every ``--token-ms`` on an absolute grid),
a finish chunk, a usage chunk and ``[DONE]``. ``GET /v1/models`` answers at once (warm-up).

Each content chunk carries the server's own ``time.perf_counter_ns()`` taken right before
the write, and the first one also when the request's first byte arrived: ``r`` the kernel's
receive stamp of those bytes (so the server's own loop lag before reading them counts as
the server's latency, as it would in a real agent, not as the client's error) and ``u``
when this process read them: content ``"r<recv_ns> w<write_ns> u<read_ns> "`` then
``"w<write_ns> "``. The reply schedule runs from ``r``. On Linux perf_counter_ns is
CLOCK_MONOTONIC, system-wide, so a client on the same machine compares stamps directly.

    .venv/bin/python scripts/loopback_sse_server.py --ttft-ms 250 --token-ms 20 --cpu 1

prints ``http://127.0.0.1:PORT/v1`` on its first stdout line and serves until killed.
With ``--log FILE`` it also writes one JSON line per chat request when its first content is
written: the ``X-Callsim-Call-Id`` header (``call``), the request's order among that call's
requests (``n``, from 0), the kernel receive stamp ``r``, the first content write ``w``, and
``ttft_ns = w - r`` (the server's true time to first token); flushed on SIGTERM/SIGINT.
This is a helper of ``scripts/bench_driver.py`` and ``scripts/bench_run.py``, not a
benchmark (hence not ``bench_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import struct
import sys
import time
from typing import Any

_now = time.perf_counter_ns
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_CMSG = socket.CMSG_SPACE(16)
_CL = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CALL_ID = re.compile(rb"\r\nx-callsim-call-id:[ \t]*([^\r]*)", re.IGNORECASE)

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
    def __init__(self, ttft_ms: float, token_ms: float, tokens: int, log: Any = None) -> None:
        self.log = log  # a text file, or None
        self.order: dict[str, int] = {}  # call id -> requests seen
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


def _kernel_ns(anc: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time of the bytes just read (SO_TIMESTAMPNS, CLOCK_REALTIME),
    converted to ``perf_counter_ns()`` (CLOCK_MONOTONIC on Linux)."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec - (time.time_ns() - _now())
    return None


class Conn:
    """One keep-alive connection, read with ``recvmsg`` so that each request carries the
    kernel's receive stamp: a request's true start is when its bytes reached this socket,
    not when this process's loop got round to reading them."""

    __slots__ = ("buf", "cfg", "closed", "fd", "loop", "out", "recv_ns", "recv_user_ns",
                 "sock", "streaming", "timer")

    def __init__(self, cfg: Config, sock: socket.socket, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self.cfg = cfg
        self.sock = sock
        self.loop = loop
        self.buf = bytearray()
        self.out = bytearray()
        self.recv_ns = self.recv_user_ns = 0
        self.streaming = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.fd = sock.fileno()
        loop.add_reader(self.fd, self._readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.sock.close()

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.out:
            self.out += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.out += data[n:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self.out[:n]
        if not self.out:
            self.loop.remove_writer(self.fd)

    def _readable(self) -> None:
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(65536, _CMSG)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        t = _now()
        if not data:
            self.close()
            return
        if not self.buf:
            # First byte of a new request: its kernel arrival (and, for the record, when
            # this loop read it).
            k = _kernel_ns(anc)
            self.recv_ns = k if k is not None and k <= t else t
            self.recv_user_ns = t
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
        cid = _CALL_ID.search(buf, 0, end + 2)
        call_id = cid.group(1).strip().decode("latin-1") if cid else None
        del buf[:need]
        recv, recv_user = self.recv_ns, self.recv_user_ns
        if buf:
            # A pipelined request already read: it arrived no later than now.
            self.recv_ns = self.recv_user_ns = _now()
        if line.startswith(b"POST ") and b"/chat/completions" in line:
            self.streaming = True
            self.write(_SSE_HEAD + _chunk(_ROLE))
            self._stream(recv, recv_user, call_id)
        elif line.startswith(b"GET ") and b"/models" in line:
            self.write(_MODELS_RESP)
        else:
            self.write(_NOT_FOUND)

    def _stream(self, recv_ns: int, recv_user_ns: int, call_id: str | None) -> None:
        cfg = self.cfg
        n = -1
        if cfg.log is not None:
            key = call_id or ""
            n = cfg.order.get(key, 0)
            cfg.order[key] = n + 1
        loop = self.loop
        # Absolute grid on perf_counter_ns; loop.call_at uses loop.time() (monotonic too).
        base_loop = loop.time() - _now() / 1e9
        k = 0

        def tick() -> None:
            nonlocal k
            if self.closed:
                return
            w = _now()
            if k == 0:
                text = b"r%d w%d u%d " % (recv_ns, w, recv_user_ns)
                if cfg.log is not None:
                    cfg.log.write(json.dumps({"call": call_id, "n": n, "r": recv_ns, "w": w,
                                              "u": recv_user_ns, "ttft_ns": w - recv_ns})
                                  + "\n")
            else:
                text = b"w%d " % w
            self.write(_chunk(_PRE + b'"delta":{"content":"' + text
                              + b'"},"finish_reason":null}]}'))
            k += 1
            if k < cfg.tokens:
                due = recv_ns + cfg.ttft_ns + k * cfg.token_ns
                self.timer = loop.call_at(base_loop + due / 1e9, tick)
            else:
                self.timer = None
                self.write(cfg.tail)
                self.streaming = False
                if self.buf:
                    self._maybe_request()

        due = recv_ns + cfg.ttft_ns
        self.timer = loop.call_at(base_loop + due / 1e9, tick)


async def serve(cfg: Config, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    lsock = socket.create_server((host, port), backlog=4096)
    lsock.setblocking(False)
    conns: set[Conn] = set()

    def accept() -> None:
        while True:
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conns.add(Conn(cfg, sock, loop))
            if len(conns) > 4096:
                for c in [c for c in conns if c.closed]:
                    conns.discard(c)

    loop.add_reader(lsock.fileno(), accept)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"http://{host}:{lsock.getsockname()[1]}/v1", flush=True)
    await stop.wait()
    if cfg.log is not None:
        cfg.log.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=250.0, help="first-token delay D")
    ap.add_argument("--token-ms", type=float, default=20.0, help="inter-token delay")
    ap.add_argument("--tokens", type=int, default=20, help="content chunks per reply")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--log", help="write each chat request's true timings here (JSON lines)")
    a = ap.parse_args(argv)
    if a.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    log = open(a.log, "w", encoding="utf-8") if a.log else None  # noqa: SIM115 (closed below)
    cfg = Config(a.ttft_ms, a.token_ms, max(1, a.tokens), log)
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
    finally:
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
