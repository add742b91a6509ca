"""Transport ``openai-chat``: OpenAI Chat Completions with SSE streaming.

POSTs ``/chat/completions`` with ``stream: true`` and ``stream_options.include_usage``,
stamps bytes with ``perf_counter_ns()`` as the socket read delivers them (see
:mod:`simulator.transports.stamps`; on resume of the reading coroutine as a fallback),
and assembles text and ``tool_calls`` deltas. Connection set-up is measured with aiohttp
trace hooks and kept out of first-token latency; connections are pooled and pre-warmed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp

from simulator.errors import TransportError
from simulator.transports import stamps
from simulator.transports.base import Deadlines, Exchange, ToolCallOut
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
        #: True when bytes are stamped at the socket read (not on coroutine resume).
        self.stamps_at_arrival = False

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
        parser = SSEParser(max_event_bytes=dl.max_reply_bytes)
        text_parts: list[str] = []
        calls: dict[int, ToolCallOut] = {}
        total = 0
        last = ex.first_byte_ns or _now()
        interrupt_at: int | None = None
        done = False
        # One watchdog timer per exchange instead of an ``asyncio.timeout`` per read (that
        # re-armed a loop timer for every chunk, the transport's largest cost after parsing).
        # It fires at the earliest deadline, re-arms itself if bytes came meanwhile, and
        # wakes the blocked read with ``_Wake`` when a deadline has really passed.
        loop = asyncio.get_running_loop()
        content = resp.content
        first_deadline = ex.sent_ns + int(dl.first_byte_s * 1e9)
        stall_ns = int(dl.stall_s * 1e9)
        timer: asyncio.TimerHandle | None = None

        def deadline() -> int:
            # Absolute before first content: a server trickling bytes (slowloris) cannot
            # hold the call open; after it, the gap since the last read.
            d = first_deadline if ex.first_content_ns is None else last + stall_ns
            return d if interrupt_at is None else min(d, interrupt_at)

        def fire() -> None:
            nonlocal timer
            now = _now()
            d = deadline()
            if now >= d:
                timer = None
                content.set_exception(_Wake())
            else:
                timer = loop.call_later((d - now) / 1e9, fire)

        rx = stamps.attach(resp)
        try:
            timer = loop.call_later(max(0, deadline() - _now()) / 1e9, fire)
            while not done:
                try:
                    chunk = await content.readany()
                except _Wake:
                    if interrupt_at is not None and _now() >= interrupt_at:
                        ex.interrupted_at_ns = _now()
                        break
                    if ex.first_content_ns is not None:
                        raise TransportError("stall", f"no bytes for {dl.stall_s:.1f} s") from None
                    wait = (first_deadline - ex.sent_ns) / 1e9
                    raise TransportError("first_byte_timeout",
                                         f"no bytes for {wait:.1f} s") from None
                if not chunk:
                    break  # EOF
                resumed = _now()
                total += len(chunk)
                if total > dl.max_reply_bytes:
                    raise TransportError("oversized",
                                         f"reply larger than {dl.max_reply_bytes} bytes")
                rearm = False
                t = resumed
                for t, piece in ([(resumed, chunk)] if rx is None
                                 else rx.split(chunk, resumed)):
                    gap_ms = (t - last) / 1e6
                    if ex.first_content_ns is not None:
                        ex.max_gap_ms = max(ex.max_gap_ms, gap_ms)
                        if gap_ms >= dl.stall_warn_s * 1e3:
                            ex.stalls += 1
                    last = t
                    for ev in parser.feed(piece):
                        if ev.data == "[DONE]":
                            done = True
                            break
                        try:
                            obj = _loads(ev.data)
                        except ValueError:
                            raise TransportError("protocol_error",
                                                 "SSE data is not JSON") from None
                        if not isinstance(obj, dict):
                            raise TransportError("protocol_error",
                                                 "SSE data is not a JSON object")
                        if "error" in obj and not obj.get("choices"):
                            raise TransportError("agent_error", str(obj["error"])[:200])
                        if isinstance(obj.get("usage"), dict):
                            ex.usage = obj["usage"]
                        for choice in obj.get("choices") or ():
                            if not isinstance(choice, dict):
                                raise TransportError("protocol_error",
                                                     "choice is not an object")
                            delta = choice.get("delta") or {}
                            if not isinstance(delta, dict):
                                raise TransportError("protocol_error",
                                                     "delta is not an object")
                            if ex.first_content_ns is None and _has_content(delta):
                                ex.first_content_ns = t
                                if interrupt_after_s is not None:
                                    interrupt_at = t + int(interrupt_after_s * 1e9)
                                rearm = True
                            if isinstance(delta.get("content"), str):
                                text_parts.append(delta["content"])
                            for tc in delta.get("tool_calls") or ():
                                _merge_tool_delta(calls, tc)
                            if choice.get("finish_reason"):
                                ex.finish_reason = choice["finish_reason"]
                    if done:
                        break
                if rearm:
                    # First content moves the deadline (to last + stall, or the interrupt).
                    if timer is not None:
                        timer.cancel()
                    timer = loop.call_later(max(0, deadline() - _now()) / 1e9, fire)
                if interrupt_at is not None and t >= interrupt_at and not done:
                    ex.interrupted_at_ns = t
                    break
        finally:
            if timer is not None:
                timer.cancel()
            if rx is not None:
                rx.detach()
        ex.last_byte_ns = last
        ex.text = "".join(text_parts)
        ex.tool_calls = [calls[i] for i in sorted(calls)]
        for c in ex.tool_calls:
            c.arguments = "".join(c.parts)
            c.parts.clear()
            try:
                parsed = json.loads(c.arguments) if c.arguments else {}
                c.parsed = parsed if isinstance(parsed, dict) else None
            except json.JSONDecodeError:
                c.parsed = None
        if ex.interrupted_at_ns is None and not done and ex.finish_reason is None:
            raise TransportError("reset", "stream ended before [DONE]")


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
