"""What the driver needs from a transport, and what one request/response exchange records.

A text transport (``openai-chat``, ``http``) turns a message list into one timed
``Exchange``. Stamps are ``time.perf_counter_ns()`` taken as raw bytes arrive, before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Every deadline the driver enforces, in seconds (all configurable from the CLI)."""

    connect_s: float = 5.0
    first_byte_s: float = 30.0
    stall_s: float = 10.0       # a gap between bytes longer than this ends the exchange
    call_s: float = 600.0       # whole call
    tool_s: float = 10.0        # the driver's deadline on a tool execution
    stall_warn_s: float = 1.0   # a gap this long between deltas is counted as a stall
    max_reply_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class ToolCallOut:
    id: str
    name: str
    arguments: str
    parsed: dict[str, Any] | None = None
    parts: list[str] = field(default_factory=list)   # argument fragments while streaming


@dataclass(slots=True)
class Exchange:
    """One request to the agent and its (streamed) answer."""

    sent_ns: int = 0                 # request handed to the socket (end of caller input)
    conn_setup_ns: int = 0           # connection set-up inside this request (kept out of TTFT)
    first_byte_ns: int | None = None
    first_content_ns: int | None = None
    last_byte_ns: int | None = None
    text: str = ""
    tool_calls: list[ToolCallOut] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    interrupted_at_ns: int | None = None
    stalls: int = 0
    max_gap_ms: float = 0.0
    status: int = 0
    error: str | None = None         # error category, None when the exchange succeeded
    error_detail: str = ""

    @property
    def ttft_ms(self) -> float | None:
        """End of caller input -> first content, connection set-up excluded."""
        if self.first_content_ns is None:
            return None
        return (self.first_content_ns - self.sent_ns - self.conn_setup_ns) / 1e6


class TextTransport(Protocol):
    """One method that matters, plus ``aclose`` (after httpx's AsyncBaseTransport)."""

    async def exchange(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        interrupt_after_s: float | None = None,
        call_id: str | None = None,
    ) -> Exchange: ...

    async def warmup(self, connections: int) -> None: ...

    async def aclose(self) -> None: ...


def check_close(msg: Any, ws: Any) -> None:
    """A WebSocket closed by the agent with an error code is a ``ws_closed`` error; a
    normal close (1000 / 1001) is the agent hanging up."""
    code = msg.data if isinstance(msg.data, int) else getattr(ws, "close_code", None)
    if code not in (None, 1000, 1001, 1005):
        from simulator.errors import TransportError

        reason = str(msg.extra or "")[:120]
        raise TransportError("ws_closed", f"agent closed the WebSocket with code {code}"
                             + (f": {reason}" if reason else ""))


class SessionClient:
    """One aiohttp session per run, opened on first use (or by ``warmup``) and closed with
    the transport; connecting is bounded by ``deadlines.connect_s``. ``connection_limit``:
    aiohttp's cap on open connections (0: none; None: aiohttp's default)."""

    deadlines: Deadlines
    connection_limit: int | None = 0
    _session: Any = None

    def _get_session(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = (None if self.connection_limit is None
                         else aiohttp.TCPConnector(limit=self.connection_limit))
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.deadlines.connect_s))
        return self._session

    async def warmup(self, connections: int) -> None:
        self._get_session()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class WebSocketClient(SessionClient):
    """What the WebSocket transports (twilio, openai-realtime) share: one pooled session
    per run, and a connect whose failures map to the same error categories as HTTP."""

    url: str
    headers: dict[str, str]

    async def _connect(self) -> tuple[Any, int]:
        """Open the call's WebSocket; returns it and the set-up time in ns."""
        import asyncio
        import time

        import aiohttp

        from simulator.errors import TransportError

        session = self._get_session()
        t0 = time.perf_counter_ns()
        try:
            async with asyncio.timeout(self.deadlines.connect_s):
                ws = await session.ws_connect(self.url, headers=self.headers, autoping=True,
                                              max_msg_size=self.deadlines.max_reply_bytes)
        except TimeoutError:
            raise TransportError("connect_timeout", f"no WebSocket to {self.url} in time") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise TransportError("http_4xx" if exc.status < 500 else "http_5xx",
                                 f"WebSocket handshake: HTTP {exc.status}") from None
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            raise TransportError("connect_refused" if refused else "connect_error",
                                 str(exc.os_error)) from None
        return ws, time.perf_counter_ns() - t0


async def receive_data(ws: Any, *, binary: bool = False) -> tuple[Any, int] | None:
    """The next data message of an agent's WebSocket and its arrival stamp
    (``perf_counter_ns``), or None when the agent closed it normally. A close with an error
    code is ``ws_closed`` (see :func:`check_close`), a socket error ``reset``; control
    frames (and binary ones unless ``binary``) are skipped."""
    import time

    import aiohttp

    from simulator.errors import TransportError

    while True:
        msg = await ws.receive()
        t = time.perf_counter_ns()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED):
            check_close(msg, ws)
            return None
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise TransportError("reset", f"WebSocket error: {ws.exception()}")
        if msg.type == aiohttp.WSMsgType.TEXT or (binary and msg.type == aiohttp.WSMsgType.BINARY):
            return msg.data, t
