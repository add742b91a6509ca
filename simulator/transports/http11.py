"""A small HTTP/1.1 client for streamed replies: h11 as the parser, an asyncio Protocol as
the socket, ``perf_counter_ns()`` taken in ``data_received``.

The loop calls ``data_received`` as it reads the socket; the stamp is taken there, before
h11 parses a byte, and the reply's bytes go straight to a :class:`ResponseHandler` in the
same callback. Nothing waits for a coroutine to be resumed, so a busy loop cannot add its
queueing to a stamp, and a streamed reply costs no task wake-up per chunk. Connections are
kept alive in a LIFO pool (TLS through asyncio's ``ssl`` for ``https`` targets).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Protocol
from urllib.parse import urlsplit

import h11

from simulator.errors import InputError, TransportError

_now = time.perf_counter_ns
_Data, _Response, _End = h11.Data, h11.Response, h11.EndOfMessage
_NEED, _PAUSED = h11.NEED_DATA, h11.PAUSED


class ResponseHandler(Protocol):
    """What a connection tells the request it is serving; each call carries the
    ``perf_counter_ns()`` of the socket read that delivered it. Must not raise."""

    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], t: int) -> None: ...

    def on_data(self, data: bytes, t: int) -> None: ...

    def on_end(self, t: int) -> None: ...

    def on_lost(self, category: str, detail: str) -> None: ...


class H11Connection(asyncio.Protocol):
    """One keep-alive connection: bytes in -> h11 events -> the current handler."""

    def __init__(self) -> None:
        self.h = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.transport: asyncio.Transport | None = None
        self.handler: ResponseHandler | None = None
        self.lost = False
        self.broken = False   # the bytes on this connection can no longer be trusted
        self.got_bytes = False  # any byte of the current reply arrived
        self.pool: H11Pool | None = None
        self.draining = False  # released before its reply ended: back to the pool at the end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        t = _now()  # before anything else: the stamp is the socket read's
        self.got_bytes = True
        h = self.h
        try:
            h.receive_data(data)
            while True:
                ev = h.next_event()
                if ev is _NEED or ev is _PAUSED:
                    return
                handler = self.handler
                tp = type(ev)
                if tp is _Data:
                    if handler is not None:
                        handler.on_data(ev.data, t)  # type: ignore[union-attr]
                elif tp is _Response:
                    if handler is not None:
                        handler.on_headers(ev.status_code, ev.headers, t)  # type: ignore[union-attr]
                elif tp is _End:
                    if handler is not None:
                        handler.on_end(t)
                    elif self.draining and self.pool is not None:
                        self.draining = False
                        self.pool.release(self)
                    return
                elif tp is h11.ConnectionClosed:
                    return
        except h11.RemoteProtocolError as exc:
            self.broken = True
            if self.handler is not None:
                self.handler.on_lost("protocol_error", f"bad HTTP from the agent: {exc}")
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost tells the handler

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        handler = self.handler
        if handler is None:
            return
        if exc is None:
            # A clean close: a reply delimited by the close ends here (h11 says so);
            # a chunked or sized reply cut short is a broken stream.
            try:
                self.h.receive_data(b"")
                ev = self.h.next_event()
                while ev is not _NEED and ev is not _PAUSED:
                    if type(ev) is _End:
                        handler.on_end(_now())
                        return
                    if type(ev) is h11.ConnectionClosed:
                        break
                    ev = self.h.next_event()
            except h11.RemoteProtocolError:
                pass
            handler.on_lost("reset", "the agent closed the connection mid-reply")
            return
        handler.on_lost("reset", type(exc).__name__)

    # -- used by the request -------------------------------------------------------------
    def send(self, request: h11.Request, body: bytes) -> None:
        h = self.h
        out = h.send(request)
        assert out is not None
        out += h.send(h11.Data(data=body)) or b""
        out += h.send(h11.EndOfMessage()) or b""
        self.got_bytes = False
        assert self.transport is not None
        self.transport.write(out)

    def reusable(self) -> bool:
        return (not self.lost and not self.broken and self.h.our_state is h11.DONE
                and self.h.their_state is h11.DONE)

    def abort(self) -> None:
        self.broken = True
        if self.transport is not None:
            self.transport.abort()


class H11Pool:
    """Keep-alive connections to one origin, most recently used first."""

    def __init__(self, base_url: str, *, connect_s: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise InputError(f"--target: not an http(s) URL: {base_url!r}")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.path = u.path.rstrip("/")
        default_port = self.port == (443 if u.scheme == "https" else 80)
        self.authority = (self.host if default_port else f"{self.host}:{self.port}").encode()
        self.ssl: ssl.SSLContext | None = None
        if u.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.connect_s = connect_s
        self.idle: list[H11Connection] = []
        self.all: set[H11Connection] = set()

    async def acquire(self) -> tuple[H11Connection, int]:
        """A connection and the set-up time spent opening it (0 for a pooled one)."""
        idle = self.idle
        while idle:
            c = idle.pop()
            if not c.lost and not c.broken and c.h.our_state is h11.IDLE:
                return c, 0
            self._drop(c)
        t0 = _now()
        return await self._open(), _now() - t0

    async def _open(self) -> H11Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_s):
                _, proto = await loop.create_connection(
                    H11Connection, self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None)
        except TimeoutError:
            raise TransportError("connect_timeout",
                                 f"no connection to {self.host}:{self.port} in time") from None
        except ConnectionRefusedError as exc:
            raise TransportError("connect_refused", str(exc)) from None
        except ssl.SSLError as exc:
            raise TransportError("connect_error", f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise TransportError("connect_error", str(exc)) from None
        proto.pool = self
        self.all.add(proto)
        return proto

    def release(self, c: H11Connection) -> None:
        """Back to the pool when its exchange is over: reused if the reply ended cleanly,
        kept until it does if only its tail is outstanding, else closed."""
        c.handler = None
        if c.reusable():
            c.h.start_next_cycle()
            self.idle.append(c)
        elif (not c.lost and not c.broken and c.h.our_state is h11.DONE
              and c.h.their_state is h11.SEND_BODY):
            c.draining = True  # e.g. [DONE] read, the chunked terminator still to come
        else:
            self._drop(c)

    def discard(self, c: H11Connection) -> None:
        """Close ``c`` (a stream given up part-way cannot be reused)."""
        c.handler = None
        self._drop(c)

    def _drop(self, c: H11Connection) -> None:
        self.all.discard(c)
        if not c.lost:
            c.abort()

    async def warm(self, n: int) -> None:
        """Open up to ``n`` connections ahead of the first request (best effort)."""
        async def one() -> H11Connection | None:
            try:
                return await self._open()
            except TransportError:
                return None

        for c in await asyncio.gather(*(one() for _ in range(max(0, n)))):
            if c is not None:
                self.idle.append(c)

    def close(self) -> None:
        for c in list(self.all):
            self._drop(c)
        self.idle.clear()
