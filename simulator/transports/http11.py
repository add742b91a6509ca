"""A small HTTP/1.1 client for streamed replies: llhttp (through ``httptools``) as the parser,
bytes stamped with the time they reached this machine.

On Linux, a plain ``http`` connection is a socket the loop watches for reading
(``add_reader``); each read asks the kernel when the bytes arrived (``SO_TIMESTAMPNS``,
stamped as the network stack received them) and the stamp is that moment on the
``perf_counter_ns()`` clock. A loop busy with other calls when the reply lands makes the
read late, not the stamp: the first byte's time is the kernel's. Elsewhere, and for
``https`` (TLS through asyncio's ``ssl``), an asyncio Protocol owns the socket and the stamp is
taken first thing in ``data_received``, as the loop reads it. Either way the reply's bytes go
straight to a :class:`ResponseHandler` from the parser's callbacks, in the same call, so a
streamed reply costs no task wake-up per chunk.
llhttp is the parser Node.js uses, in C; it handles chunked and sized bodies, and a body
delimited by the connection's close is ended here, at a clean close. Connections are kept
alive in a LIFO pool.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import sys
import time
from typing import Protocol
from urllib.parse import urlsplit

import httptools

from simulator.errors import InputError, TransportError

_now = time.perf_counter_ns
#: The most header bytes a reply may send before its body (a hostile agent cannot grow
#: memory with endless headers).
MAX_HEAD_BYTES = 64 * 1024

#: Kernel receive stamps (Linux); without them, stamps are taken as the loop reads.
# (Python does not name the option; 35 is its number on Linux's common architectures.)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
_ANC = socket.CMSG_SPACE(16) if _SO_TIMESTAMPNS is not None else 0
_READ = 256 * 1024

# The states of a connection's exchange.
_IDLE, _WAITING, _BODY, _DONE = 0, 1, 2, 3


class ResponseHandler(Protocol):
    """What a connection tells the request it is serving; each call carries the
    ``perf_counter_ns()`` of the socket read that delivered it. Must not raise."""

    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], t: int) -> None: ...

    def on_data(self, data: bytes, t: int) -> None: ...

    def on_end(self, t: int) -> None: ...

    def on_lost(self, category: str, detail: str) -> None: ...


def header_line(name: bytes, value: bytes) -> bytes:
    """``name: value`` and its line break. A line break in either would smuggle a header of
    its own: it becomes a space (a value such as a call id is still told apart)."""
    if b"\r" in value or b"\n" in value or b"\0" in value:
        value = value.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\0", b" ")
    if b"\r" in name or b"\n" in name or b":" in name or b" " in name:
        raise InputError(f"HTTP header name {name!r} is not a token")
    return name + b": " + value + b"\r\n"


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and its header lines, without the blank line that ends the head."""
    return (method + b" " + target + b" HTTP/1.1\r\n"
            + b"".join(header_line(k, v) for k, v in headers))


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection: bytes in -> llhttp callbacks -> the current handler."""

    __slots__ = ("broken", "draining", "got_bytes", "handler", "head_bytes", "headers",
                 "keep_alive", "lost", "parser", "pool", "sized", "state", "t", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.handler: ResponseHandler | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.lost = False
        self.broken = False   # the bytes on this connection can no longer be trusted
        self.got_bytes = False  # any byte of the current reply arrived
        self.pool: HttpPool | None = None
        self.draining = False  # released before its reply ended: back to the pool at the end
        self.state = _IDLE
        self.keep_alive = True
        self.sized = False  # the reply's body has a length or chunks (not ended by a close)
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.t = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received(data, _now())  # before anything else: the stamp is the socket read's

    def received(self, data: bytes, t: int) -> None:
        """``data`` that reached this machine at ``t`` (``perf_counter_ns()``)."""
        self.t = t
        self.got_bytes = True
        parser = self.parser
        if parser is None or self.state == _DONE:
            self._protocol_error("bytes from the agent that answer no request")
            return
        if self.state == _WAITING:
            # Only the head counts against its bound: one read can hold a short head and
            # much of the body after it (a large, fast reply read by a busy loop).
            room = MAX_HEAD_BYTES - self.head_bytes
            if len(data) > room:
                head, data = data[:room], data[room:]
                self.head_bytes = MAX_HEAD_BYTES
                if not self._feed(parser, head) or self.broken:
                    return
                if self.state == _WAITING:
                    self._protocol_error(f"reply headers longer than {MAX_HEAD_BYTES} bytes")
                    return
            else:
                self.head_bytes += len(data)
        self._feed(parser, data)

    def _feed(self, parser: httptools.HttpResponseParser, data: bytes) -> bool:
        """``data`` to llhttp; False (the connection given up) when it is not HTTP."""
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._protocol_error("the agent switched protocols")
            return False
        except httptools.HttpParserError as exc:
            self._protocol_error(str(exc) or type(exc).__name__)
            return False
        return True

    def _protocol_error(self, detail: str) -> None:
        self.broken = True
        if self.handler is not None:
            self.handler.on_lost("protocol_error", f"bad HTTP from the agent: {detail}")
        self.abort()

    # -- llhttp callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:
            self.headers = []  # an informational reply (100 Continue): the real one follows
            return
        self.state = _BODY
        headers = self.headers
        self.sized = status in (204, 304) or any(
            k == b"content-length" or (k == b"transfer-encoding" and b"chunked" in v.lower())
            for k, v in headers)
        if self.handler is not None:
            self.handler.on_headers(status, headers, self.t)

    def on_body(self, body: bytes) -> None:
        if self.handler is not None:
            self.handler.on_data(body, self.t)

    def on_message_complete(self) -> None:
        if self.state != _BODY:
            return  # the end of an informational reply
        assert self.parser is not None
        self.state = _DONE
        self.keep_alive = self.parser.should_keep_alive()
        if self.handler is not None:
            self.handler.on_end(self.t)
        elif self.draining and self.pool is not None:
            self.draining = False
            self.pool.release(self)

    # -- the socket closing --------------------------------------------------------------
    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost tells the handler

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        handler = self.handler
        if handler is None:
            return
        if exc is None:
            # A clean close ends a reply that the close delimits; a chunked or sized reply
            # cut short is a broken stream.
            if self.state == _BODY and not self.sized:
                self.state = _DONE
                self.keep_alive = False
                handler.on_end(_now())
                return
            handler.on_lost("reset", "the agent closed the connection mid-reply")
            return
        handler.on_lost("reset", type(exc).__name__)

    # -- used by the request -------------------------------------------------------------
    def send(self, head: bytes, body: bytes) -> None:
        """Send a request (:func:`request_head` and its body) and expect its reply."""
        self.parser = httptools.HttpResponseParser(self)
        self.state = _WAITING
        self.headers = []
        self.head_bytes = 0
        self.got_bytes = False
        assert self.transport is not None
        self.transport.write(head + body)

    def idle(self) -> bool:
        return not self.lost and not self.broken and self.state == _IDLE

    def reusable(self) -> bool:
        return not self.lost and not self.broken and self.state == _DONE and self.keep_alive

    def abort(self) -> None:
        self.broken = True
        if self.transport is not None:
            self.transport.abort()


class _KernelStamped:
    """The transport of an :class:`HttpConnection` over a plain TCP socket that the loop
    watches for reading: every read carries the kernel's receive stamp (``SO_TIMESTAMPNS``,
    on CLOCK_REALTIME), moved to ``perf_counter_ns()`` by how long ago it was."""

    __slots__ = ("closed", "loop", "proto", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 proto: HttpConnection) -> None:
        self.loop, self.sock, self.proto = loop, sock, proto
        self.closed = False
        loop.add_reader(sock.fileno(), self._readable)
        proto.connection_made(self)  # type: ignore[arg-type]

    def _readable(self) -> None:
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(_READ, _ANC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(exc)
            return
        now = _now()
        if not data:
            self._close(None)
            return
        t = now
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                ago = time.time_ns() - (sec * 1_000_000_000 + nsec)
                if 0 <= ago < 60_000_000_000:  # a clock step is not a stamp
                    t = now - ago
        self.proto.received(data, t)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._close(exc)
            return
        if sent < len(data):  # a full send buffer: the rest goes as the socket drains
            task = self.loop.create_task(self.loop.sock_sendall(self.sock, data[sent:]))
            task.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() is None
                else self._close(f.exception()))  # type: ignore[arg-type]

    def abort(self) -> None:
        self._close(None)

    def _close(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.loop.call_soon(self.proto.connection_lost, exc)


class HttpPool:
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
        self.idle: list[HttpConnection] = []
        self.all: set[HttpConnection] = set()

    async def acquire(self) -> tuple[HttpConnection, int]:
        """A connection and the set-up time spent opening it (0 for a pooled one)."""
        idle = self.idle
        while idle:
            c = idle.pop()
            if c.idle():
                return c, 0
            self._drop(c)
        t0 = _now()
        return await self._open(), _now() - t0

    async def _open(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_s):
                if self.ssl is None and _SO_TIMESTAMPNS is not None:
                    proto = await self._open_stamped(loop)
                else:
                    _, proto = await loop.create_connection(
                        HttpConnection, self.host, self.port, ssl=self.ssl,
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

    async def _open_stamped(self, loop: asyncio.AbstractEventLoop) -> HttpConnection:
        """A plain TCP connection whose reads carry the kernel's receive stamps."""
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {self.host}")
        err: OSError | None = None
        for family, kind, proto_no, _name, addr in infos:
            sock = socket.socket(family, kind, proto_no)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, int(_SO_TIMESTAMPNS or 0), 1)
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                err = exc
                continue
            except BaseException:
                sock.close()
                raise
            conn = HttpConnection()
            _KernelStamped(loop, sock, conn)
            return conn
        assert err is not None
        raise err

    def release(self, c: HttpConnection) -> None:
        """Back to the pool when its exchange is over: reused if the reply ended cleanly,
        kept until it does if only its tail is outstanding, else closed."""
        c.handler = None
        if c.reusable():
            c.state = _IDLE
            c.parser = None
            self.idle.append(c)
        elif not c.lost and not c.broken and c.state == _BODY and c.sized:
            c.draining = True  # e.g. [DONE] read, the chunked terminator still to come
        else:
            self._drop(c)

    def discard(self, c: HttpConnection) -> None:
        """Close ``c`` (a stream given up part-way cannot be reused)."""
        c.handler = None
        self._drop(c)

    def _drop(self, c: HttpConnection) -> None:
        self.all.discard(c)
        if not c.lost:
            c.abort()

    async def warm(self, n: int) -> None:
        """Open up to ``n`` connections ahead of the first request (best effort)."""
        async def one() -> HttpConnection | None:
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
