"""Transport ``openai-chat``: OpenAI Chat Completions with SSE streaming.

POSTs ``/chat/completions`` with ``stream: true`` and ``stream_options.include_usage``,
stamps bytes with ``perf_counter_ns()`` as the socket read delivers them, and assembles
text and ``tool_calls`` deltas (:class:`ChatStreamDecoder`, sans-I/O). The hot path is the
protocol-level HTTP/1.1 client of :mod:`simulator.transports.http11` (llhttp; on Linux,
plain-http bytes stamped with the kernel's receive time, else as the loop reads them; the
stream decoded in the same callback as the read). aiohttp
stays as the fallback (``client="aiohttp"`` or ``CALLSIM_HTTP_CLIENT=aiohttp``; its stamps
come from :mod:`simulator.transports.stamps`, on resume of the reading coroutine when its
protocol cannot be swapped). Connection set-up is kept out of first-token latency;
connections are pooled and pre-warmed.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp

from simulator.errors import InputError, TransportError
from simulator.transports import stamps
from simulator.transports.base import Deadlines, Exchange, ToolCallOut
from simulator.transports.http11 import HttpPool, header_line, request_head
from simulator.transports.registry import TransportSpec, register
from simulator.transports.sse import SSEParser

_now = time.perf_counter_ns

_loads: Callable[[str], Any]
_dumps: Callable[[Any], bytes]
try:  # the ``fast`` extra: ~5x faster per chunk; both raise ValueError subclasses
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads

    _loads, _dumps = _orjson_loads, _orjson_dumps
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    _loads = json.loads

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


def _has_content(delta: dict[str, Any]) -> bool:
    """First content: a non-empty text or any tool-call delta (role-only chunks don't count)."""
    content = delta.get("content")
    if isinstance(content, str) and content:
        return True
    return bool(delta.get("tool_calls"))


class OpenAIChatTransport:
    """Streaming Chat Completions client. One instance per run, shared by all calls."""

    def __init__(
        self,
        base_url: str,
        model: str = "callsim-reference",
        *,
        api_key: str | None = None,
        deadlines: Deadlines | None = None,
        max_connections: int = 0,
        extra_body: dict[str, Any] | None = None,
        client: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.deadlines = deadlines or Deadlines()
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._extra = extra_body or {}
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None
        client = client or os.environ.get("CALLSIM_HTTP_CLIENT") or "http11"
        if client not in ("http11", "aiohttp"):
            raise InputError(f"CALLSIM_HTTP_CLIENT: unknown client {client!r} (http11, aiohttp)")
        self.client = client
        self._pool: HttpPool | None = None
        self._ssl = ssl_context
        self._head = b""
        if client == "http11":
            # Fails here, once, on a target that is not an http(s) URL or a key that is not
            # a header value.
            self._pool = HttpPool(self.base_url, connect_s=self.deadlines.connect_s,
                                  ssl_context=ssl_context)
            headers = [(b"host", self._pool.authority), (b"user-agent", b"callsim"),
                       (b"content-type", b"application/json"),
                       (b"accept", b"text/event-stream")]
            if api_key:
                headers.append((b"authorization", f"Bearer {api_key}".encode()))
            # Each request adds its length and call id, and the blank line.
            self._head = request_head(
                b"POST", (self._pool.path + "/chat/completions").encode(), headers)
        #: True when bytes are stamped at the socket read (not on coroutine resume).
        self.stamps_at_arrival = client == "http11"

    def _trace(self) -> aiohttp.TraceConfig:
        tc = aiohttp.TraceConfig()

        async def start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
            if ctx.trace_request_ctx is not None:
                ctx.trace_request_ctx["conn_start"] = _now()

        async def end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
            rc = ctx.trace_request_ctx
            if rc is not None:
                rc["conn_ns"] = _now() - rc.get("conn_start", _now())

        async def chunk_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
            # The body goes out in its own task (aiohttp on Python < 3.12), a loop iteration
            # after ``post()`` is called: under load that wait is the driver's, not the
            # agent's, so the request is stamped when its bytes are handed to the socket.
            rc = ctx.trace_request_ctx
            if rc is not None and "wire_ns" not in rc:
                rc["wire_ns"] = _now()

        tc.on_connection_create_start.append(start)
        tc.on_connection_create_end.append(end)
        tc.on_request_chunk_sent.append(chunk_sent)
        return tc

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=120, ttl_dns_cache=None
            )
            self.stamps_at_arrival = stamps.install(conn)
            self._session = aiohttp.ClientSession(
                connector=conn,
                trace_configs=[self._trace()],
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.deadlines.connect_s),
                auto_decompress=False,
            )
        return self._session

    async def warmup(self, connections: int) -> None:
        """Open up to ``connections`` keep-alive connections before the clock starts."""
        if self._pool is not None:
            await self._pool.warm(max(1, min(connections, 512)))
            return
        session = self._get_session()

        async def one() -> None:
            try:
                async with session.get(f"{self.base_url}/models", headers=self._headers) as r:
                    await r.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass  # warm-up is best effort; the real request reports the error

        n = max(1, min(connections, 512))
        await asyncio.gather(*(one() for _ in range(n)))

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def exchange(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        interrupt_after_s: float | None = None,
        call_id: str | None = None,
    ) -> Exchange:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        body.update(self._extra)
        payload = _dumps(body)
        if self._pool is not None:
            return await self._exchange_http11(self._pool, payload, interrupt_after_s, call_id)
        ex = Exchange()
        trace_ctx: dict[str, int] = {}
        session = self._get_session()
        dl = self.deadlines
        resp: aiohttp.ClientResponse | None = None
        try:
            ex.sent_ns = _now()
            try:
                async with asyncio.timeout(dl.connect_s + dl.first_byte_s):
                    resp = await session.post(
                        f"{self.base_url}/chat/completions",
                        data=payload,
                        headers=(self._headers if call_id is None
                                 else {**self._headers, "X-Callsim-Call-Id": call_id}),
                        trace_request_ctx=trace_ctx,
                    )
            except TimeoutError:
                raise TransportError("first_byte_timeout", "no response headers in time") from None
            ex.first_byte_ns = _now()
            ex.conn_setup_ns = trace_ctx.get("conn_ns", 0)
            if "wire_ns" in trace_ctx:
                # Connection set-up happened before the wire stamp; shift the send stamp
                # back by it so that ``ttft_ms`` (which subtracts it) stays wire -> content.
                ex.sent_ns = trace_ctx["wire_ns"] - ex.conn_setup_ns
            ex.status = resp.status
            if resp.status != 200:
                await self._raise_status(resp)
            await self._read_stream(resp, ex, interrupt_after_s)
        except TransportError as exc:
            ex.error, ex.error_detail = exc.category, str(exc)
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            ex.error = "connect_refused" if refused else "connect_error"
            ex.error_detail = f"{ex.error}: {exc.os_error}"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                ConnectionResetError) as exc:
            ex.error, ex.error_detail = "reset", f"reset: {type(exc).__name__}"
        except aiohttp.ClientResponseError as exc:
            ex.error, ex.error_detail = "protocol_error", f"protocol_error: {exc.message}"
        except (aiohttp.ClientError, OSError) as exc:
            ex.error = "connection_error"
            ex.error_detail = f"connection_error: {type(exc).__name__}"
        finally:
            if resp is not None:
                if ex.error is None and ex.interrupted_at_ns is None:
                    resp.release()  # keep the connection for the next request
                else:
                    resp.close()  # a broken or cancelled stream cannot be reused
        return ex

    async def _exchange_http11(self, pool: HttpPool, payload: bytes,
                               interrupt_after_s: float | None, call_id: str | None) -> Exchange:
        """One exchange over a pooled connection; the reply is decoded as it arrives,
        as the connection reads it, and this coroutine wakes once, at its end."""
        head = self._head + b"content-length: %d\r\n" % len(payload)
        if call_id is not None:
            head += header_line(b"x-callsim-call-id", call_id.encode())
        head += b"\r\n"
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            ex = Exchange()
            try:
                conn, setup_ns = await pool.acquire()
            except TransportError as exc:
                ex.error, ex.error_detail = exc.category, str(exc)
                return ex
            handler = _StreamHandler(ex, self.deadlines, interrupt_after_s, loop)
            conn.handler = handler
            clean = False
            try:
                wire = _now()
                # Connection set-up happened before the wire stamp; the send stamp moves back
                # by it so that ``ttft_ms`` (which subtracts it) stays wire -> content.
                ex.sent_ns, ex.conn_setup_ns = wire - setup_ns, setup_ns
                conn.send(head, payload)
                handler.start()
                await handler.fut
                clean = ex.interrupted_at_ns is None
            except _StaleConnection:
                # A pooled connection the agent had closed while idle: nothing was sent to a
                # live server, so the request goes once more on a fresh connection.
                if attempt == 0 and setup_ns == 0:
                    continue
                ex.error, ex.error_detail = "reset", "reset: the agent closed the connection"
            except TransportError as exc:
                ex.error, ex.error_detail = exc.category, str(exc)
            finally:
                handler.stop()
                if clean:
                    pool.release(conn)
                else:
                    pool.discard(conn)  # broken, cancelled or cut part-way: not reusable
            return ex
        raise AssertionError("unreachable")  # pragma: no cover

    async def _raise_status(self, resp: aiohttp.ClientResponse) -> None:
        retry = resp.headers.get("Retry-After")
        try:
            async with asyncio.timeout(2.0):
                snippet = (await resp.content.read(300)).decode("utf-8", "replace")
        except (TimeoutError, aiohttp.ClientError):
            snippet = ""
        snippet = " ".join(snippet.split())[:120]
        if resp.status == 429:
            extra = f" (Retry-After: {retry})" if retry else ""
            raise TransportError("rate_limited", f"HTTP 429{extra} {snippet}".strip())
        if resp.status >= 500:
            raise TransportError("http_5xx", f"HTTP {resp.status} {snippet}".strip())
        raise TransportError("http_4xx", f"HTTP {resp.status} {snippet}".strip())

    async def _read_stream(
        self, resp: aiohttp.ClientResponse, ex: Exchange, interrupt_after_s: float | None
    ) -> None:
        dl = self.deadlines
        check_content_type(resp.headers.get("Content-Type", ""))
        dec = ChatStreamDecoder(ex, dl, interrupt_after_s)
        # One watchdog timer per exchange instead of an ``asyncio.timeout`` per read (that
        # re-armed a loop timer for every chunk, the transport's largest cost after parsing).
        # It fires at the earliest deadline, re-arms itself if bytes came meanwhile, and
        # wakes the blocked read with ``_Wake`` when a deadline has really passed.
        loop = asyncio.get_running_loop()
        content = resp.content
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            nonlocal timer
            now = _now()
            d = dec.deadline()
            if now >= d:
                timer = None
                content.set_exception(_Wake())
            else:
                timer = loop.call_later((d - now) / 1e9, fire)

        rx = stamps.attach(resp)
        eof = False
        try:
            timer = loop.call_later(max(0, dec.deadline() - _now()) / 1e9, fire)
            while not dec.done:
                try:
                    chunk = await content.readany()
                except _Wake:
                    if dec.interrupt_at is not None and _now() >= dec.interrupt_at:
                        ex.interrupted_at_ns = _now()
                        break
                    dec.raise_deadline()
                if not chunk:
                    eof = True
                    break
                resumed = _now()
                rearm = False
                t = resumed
                for t, piece in ([(resumed, chunk)] if rx is None
                                 else rx.split(chunk, resumed)):
                    rearm |= dec.feed(piece, t)
                    if dec.done:
                        break
                if rearm:
                    # First content moves the deadline (to last + stall, or the interrupt).
                    if timer is not None:
                        timer.cancel()
                    timer = loop.call_later(max(0, dec.deadline() - _now()) / 1e9, fire)
                if dec.interrupt_at is not None and t >= dec.interrupt_at and not dec.done:
                    ex.interrupted_at_ns = t
                    break
        finally:
            if timer is not None:
                timer.cancel()
            if rx is not None:
                rx.detach()
        dec.finish(eof=eof, content_type=resp.headers.get("Content-Type", ""))


def check_content_type(content_type: str) -> None:
    """A 200 reply that announces an HTML page (a proxy's or gateway's error page) is not
    the agent's stream: ``protocol_error`` at once rather than waiting for its end."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        raise TransportError("protocol_error",
                             f"HTTP 200 with a {media} body instead of an SSE stream "
                             "(an error page from a proxy or gateway?)")


def status_error(status: int, retry_after: str | None, body: bytes) -> TransportError:
    """The category of a non-200 reply, with the start of its body for the user."""
    snippet = " ".join(body[:300].decode("utf-8", "replace").split())[:120]
    if status == 429:
        extra = f" (Retry-After: {retry_after})" if retry_after else ""
        return TransportError("rate_limited", f"HTTP 429{extra} {snippet}".strip())
    if status >= 500:
        return TransportError("http_5xx", f"HTTP {status} {snippet}".strip())
    return TransportError("http_4xx", f"HTTP {status} {snippet}".strip())


class _StaleConnection(Exception):
    """A pooled connection was closed by the agent before any byte of the reply came."""


class _StreamHandler:
    """Receives one reply on an :class:`~simulator.transports.http11.HttpConnection` (as its
    bytes are read, each piece with its arrival stamp) and completes ``fut`` when the exchange is
    over: at ``[DONE]``, at the end of the body, at the barge-in onset, or with the error that
    ended it. One loop timer enforces the deadlines (re-armed only when first content moves
    them)."""

    __slots__ = ("content_type", "dec", "dl", "ex", "fut", "interrupt_after_s", "loop",
                 "retry_after", "snippet", "status", "timer")

    def __init__(self, ex: Exchange, dl: Deadlines, interrupt_after_s: float | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.ex, self.dl, self.loop = ex, dl, loop
        self.interrupt_after_s = interrupt_after_s
        self.fut: asyncio.Future[None] = loop.create_future()
        self.dec: ChatStreamDecoder | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.status = 0
        self.content_type = ""
        self.retry_after: str | None = None
        self.snippet = b""

    def start(self) -> None:
        self.dec = ChatStreamDecoder(self.ex, self.dl, self.interrupt_after_s)
        self._arm()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        assert self.dec is not None
        d = (self.dec.deadline() if self.status in (0, 200)
             else (self.ex.first_byte_ns or 0) + 2_000_000_000)  # an error body's snippet
        self.timer = self.loop.call_at(self.loop.time() + max(0, d - _now()) / 1e9, self._fire)

    def _fire(self) -> None:
        self.timer = None
        if self.fut.done() or self.dec is None:
            return
        now = _now()
        if self.status not in (0, 200):
            self._fail(status_error(self.status, self.retry_after, self.snippet))
            return
        d = self.dec.deadline()
        if now < d:
            self._arm()
            return
        if self.dec.interrupt_at is not None and now >= self.dec.interrupt_at:
            self.ex.interrupted_at_ns = now
            self._finish(eof=False)
            return
        try:
            self.dec.raise_deadline()
        except TransportError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)

    def _finish(self, *, eof: bool) -> None:
        if self.fut.done() or self.dec is None:
            return
        try:
            self.dec.finish(eof=eof, content_type=self.content_type)
        except TransportError as exc:
            self.fut.set_exception(exc)
            return
        self.fut.set_result(None)

    # -- ResponseHandler -----------------------------------------------------------------
    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], t: int) -> None:
        if self.fut.done():
            return
        ex = self.ex
        ex.first_byte_ns = t
        ex.status = self.status = status
        for k, v in headers:
            if k == b"content-type":
                self.content_type = v.decode("latin-1")
            elif k == b"retry-after":
                self.retry_after = v.decode("latin-1")
        if status != 200:
            self._arm()  # the body's first bytes are quoted in the error, within 2 s
            return
        try:
            check_content_type(self.content_type)
        except TransportError as exc:
            self._fail(exc)

    def on_data(self, data: bytes, t: int) -> None:
        if self.fut.done():
            return
        if self.status != 200:
            self.snippet += data[: 300 - len(self.snippet)]
            if len(self.snippet) >= 300:
                self._fail(status_error(self.status, self.retry_after, self.snippet))
            return
        dec = self.dec
        assert dec is not None
        try:
            first = dec.feed(data, t)
        except TransportError as exc:
            self._fail(exc)
            return
        if dec.done:
            self._finish(eof=False)
        elif dec.interrupt_at is not None and t >= dec.interrupt_at:
            self.ex.interrupted_at_ns = t
            self._finish(eof=False)
        elif first:
            self._arm()  # first content moves the deadline (to last + stall, or the onset)

    def on_end(self, t: int) -> None:
        if self.status not in (0, 200):
            self._fail(status_error(self.status, self.retry_after, self.snippet))
            return
        self._finish(eof=True)

    def on_lost(self, category: str, detail: str) -> None:
        if self.fut.done():
            return
        if self.status == 0 and category == "reset" and self.ex.first_byte_ns is None:
            self._fail(_StaleConnection())
            return
        self._fail(TransportError(category, detail))


class ChatStreamDecoder:
    """Sans-I/O: the bytes of one streamed Chat Completions reply, fed with their arrival
    stamps, into the :class:`Exchange` (first content, text, tool calls, usage, finish
    reason, gaps and stalls). The socket code around it only reads and enforces deadlines
    (:meth:`deadline` says when the next one is)."""

    __slots__ = ("calls", "done", "events", "ex", "first_deadline", "head", "interrupt_after_s",
                 "interrupt_at", "last", "max_bytes", "parser", "stall_ns", "stall_warn_ms",
                 "stall_s", "text_parts", "total")

    def __init__(self, ex: Exchange, dl: Deadlines, interrupt_after_s: float | None) -> None:
        self.ex = ex
        self.parser = SSEParser(max_event_bytes=dl.max_reply_bytes)
        self.text_parts: list[str] = []
        self.calls: dict[int, ToolCallOut] = {}
        self.total = 0
        self.events = 0
        self.done = False
        self.head = b""  # the body's first bytes, quoted when it turns out not to be SSE
        self.last = ex.first_byte_ns or ex.sent_ns
        self.max_bytes = dl.max_reply_bytes
        self.first_deadline = ex.sent_ns + int(dl.first_byte_s * 1e9)
        self.stall_ns = int(dl.stall_s * 1e9)
        self.stall_s = dl.stall_s
        self.stall_warn_ms = dl.stall_warn_s * 1e3
        self.interrupt_after_s = interrupt_after_s
        self.interrupt_at: int | None = None

    def deadline(self) -> int:
        """Absolute before first content (a server trickling bytes, slowloris, cannot hold
        the call open); after it, the gap since the last read; the interrupt if sooner."""
        d = (self.first_deadline if self.ex.first_content_ns is None
             else self.last + self.stall_ns)
        return d if self.interrupt_at is None else min(d, self.interrupt_at)

    def raise_deadline(self) -> None:
        """The deadline passed without bytes: ``stall`` after first content, else
        ``first_byte_timeout``."""
        if self.ex.first_content_ns is not None:
            raise TransportError("stall", f"no bytes for {self.stall_s:.1f} s") from None
        wait = (self.first_deadline - self.ex.sent_ns) / 1e9
        raise TransportError("first_byte_timeout", f"no bytes for {wait:.1f} s") from None

    def feed(self, piece: bytes, t: int) -> bool:
        """Consume ``piece`` that arrived at ``t``; True when it held the first content
        (the deadline moves). Sets ``done`` at ``[DONE]``."""
        ex = self.ex
        self.total += len(piece)
        if self.total > self.max_bytes:
            raise TransportError("oversized", f"reply larger than {self.max_bytes} bytes")
        if len(self.head) < 160:
            self.head += piece[: 160 - len(self.head)]
        first = False
        gap_ms = (t - self.last) / 1e6
        if ex.first_content_ns is not None:
            if gap_ms > ex.max_gap_ms:
                ex.max_gap_ms = gap_ms
            if gap_ms >= self.stall_warn_ms:
                ex.stalls += 1
        self.last = t
        for data in self.parser.feed_data(piece):
            self.events += 1
            if data == "[DONE]":
                self.done = True
                break
            try:
                obj = _loads(data)
            except ValueError:
                raise TransportError("protocol_error", "SSE data is not JSON") from None
            if not isinstance(obj, dict):
                raise TransportError("protocol_error", "SSE data is not a JSON object")
            if "error" in obj and not obj.get("choices"):
                raise TransportError("agent_error", str(obj["error"])[:200])
            if isinstance(obj.get("usage"), dict):
                ex.usage = obj["usage"]
            for choice in obj.get("choices") or ():
                if not isinstance(choice, dict):
                    raise TransportError("protocol_error", "choice is not an object")
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict):
                    raise TransportError("protocol_error", "delta is not an object")
                if ex.first_content_ns is None and _has_content(delta):
                    ex.first_content_ns = t
                    if self.interrupt_after_s is not None:
                        self.interrupt_at = t + int(self.interrupt_after_s * 1e9)
                    first = True
                content = delta.get("content")
                if isinstance(content, str):
                    self.text_parts.append(content)
                for tc in delta.get("tool_calls") or ():
                    _merge_tool_delta(self.calls, tc)
                if choice.get("finish_reason"):
                    ex.finish_reason = choice["finish_reason"]
        return first

    def finish(self, *, eof: bool, content_type: str = "") -> None:
        """Assemble text and tool calls. At ``eof`` without ``[DONE]`` or a finish reason
        (and not interrupted): ``protocol_error`` when the body held no SSE event at all
        (not a stream: a JSON reply, a plain-text page), else ``incomplete_stream`` (the
        agent ended its stream cleanly but part-way). A broken connection is ``reset`` and
        is raised by the socket code, not here."""
        ex = self.ex
        ex.last_byte_ns = self.last
        ex.text = "".join(self.text_parts)
        ex.tool_calls = [self.calls[i] for i in sorted(self.calls)]
        for c in ex.tool_calls:
            c.arguments = "".join(c.parts)
            c.parts.clear()
            try:
                parsed = json.loads(c.arguments) if c.arguments else {}
                c.parsed = parsed if isinstance(parsed, dict) else None
            except json.JSONDecodeError:
                c.parsed = None
        if (not eof or self.done or ex.finish_reason is not None
                or ex.interrupted_at_ns is not None):
            return
        if self.events == 0 and self.total > 0:
            media = content_type.split(";", 1)[0].strip() or "no Content-Type"
            head = " ".join(self.head.decode("utf-8", "replace").split())[:80]
            raise TransportError("protocol_error",
                                 f"HTTP 200 body is not an SSE stream ({media}): {head!r}")
        raise TransportError("incomplete_stream",
                             "stream ended cleanly without [DONE] or a finish reason")


class _Wake(Exception):
    """Raised into a blocked read by the exchange's watchdog when a deadline has passed."""


def _merge_tool_delta(calls: dict[int, ToolCallOut], tc: Any) -> None:
    if not isinstance(tc, dict):
        raise TransportError("protocol_error", "tool_calls entry is not an object")
    idx = tc.get("index", len(calls))
    if not isinstance(idx, int):
        raise TransportError("protocol_error", "tool_calls index is not an integer")
    fn = tc.get("function") or {}
    cur = calls.get(idx)
    if cur is None:
        cur = calls[idx] = ToolCallOut(id=str(tc.get("id") or f"call_{idx}"), name="", arguments="")
    if fn.get("name"):
        cur.name += str(fn["name"]) if not cur.name else ""
    if isinstance(fn.get("arguments"), str):
        cur.parts.append(fn["arguments"])  # joined once at the end: no quadratic concatenation


register(TransportSpec(
    name="openai-chat", carries="text",
    build=lambda o: OpenAIChatTransport(o.target, o.model, api_key=o.api_key,
                                        deadlines=o.deadlines),
    summary="OpenAI Chat Completions, streamed (SSE)",
))
