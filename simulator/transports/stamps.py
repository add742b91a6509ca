"""Arrival stamps for aiohttp responses: ``perf_counter_ns()`` when the bytes left the socket.

aiohttp hands a response's bytes to the reading coroutine only when the event loop resumes
it; under load that is after every other callback ready in the same loop iteration, so a
stamp taken on resume includes the driver's own queueing. aiohttp has no public hook at the
socket read, so :func:`install` swaps the connector's protocol factory for
:class:`StampingResponseHandler`, whose ``data_received`` (called by the loop as the socket
is read, before the HTTP parser runs) notes the time and how many payload bytes the
response had once those bytes were parsed. :meth:`ArrivalLog.split` then cuts what
``readany()`` returned back into the pieces that arrived together, each with its stamp.

If aiohttp's internals change so that the factory cannot be swapped, :func:`install`
returns False and the transport falls back to stamping on resume (tested, so an upgrade
that breaks it is noticed).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

_now = time.perf_counter_ns


class ArrivalLog:
    """Arrivals of one response's payload: (stamp, payload bytes fed so far) per socket
    read. ``base``: bytes fed before the log was attached (their arrival is unknown)."""

    __slots__ = ("reader", "base", "marks", "proto")

    def __init__(self, reader: aiohttp.StreamReader, proto: StampingResponseHandler) -> None:
        self.reader = reader
        self.base = reader.total_bytes
        self.marks: deque[tuple[int, int]] = deque()
        self.proto = proto

    def detach(self) -> None:
        """Stop logging (the connection goes back to the pool for other responses; aiohttp
        may already have released it when the payload ended)."""
        if self.proto.rx is self:
            self.proto.rx = None

    def split(self, chunk: bytes, fallback_ns: int) -> list[tuple[int, bytes]]:
        """``chunk``, just returned by ``readany()`` (which drains the buffer), as
        (arrival stamp, bytes) pieces in order. Bytes fed before the log was attached get
        ``fallback_ns``."""
        end = self.reader.total_bytes
        start = end - len(chunk)
        marks = self.marks
        if not marks or marks[0][1] > end:
            # Nothing recorded for these bytes (fed before attaching): stamp on resume.
            while marks and marks[0][1] <= end:
                marks.popleft()
            return [(fallback_ns, chunk)]
        pieces: list[tuple[int, bytes]] = []
        pos = start
        if start < self.base:
            cut = min(self.base, end)
            pieces.append((fallback_ns, chunk[: cut - start]))
            pos = cut
        while marks and marks[0][1] <= end:
            t, total = marks.popleft()
            if total > pos:
                pieces.append((t, chunk[pos - start: total - start]))
                pos = total
        if pos < end:
            pieces.append((fallback_ns, chunk[pos - start:]))
        return pieces


class StampingResponseHandler(ResponseHandler):
    """aiohttp's client protocol, noting when each socket read arrived for the response
    whose :class:`ArrivalLog` is attached (``rx``)."""

    rx: ArrivalLog | None = None

    def data_received(self, data: bytes) -> None:
        log = self.rx
        if log is None or not data:  # b"": aiohttp resuming a paused parser, not a read
            super().data_received(data)
            return
        t = _now()
        super().data_received(data)
        if self.rx is log:
            total = log.reader.total_bytes
            marks = log.marks
            if not marks or total > marks[-1][1]:
                marks.append((t, total))


def install(connector: aiohttp.BaseConnector) -> bool:
    """Make ``connector`` create :class:`StampingResponseHandler` protocols. True when it
    did (aiohttp's factory is the partial of ResponseHandler it has been since 3.0)."""
    factory: Any = getattr(connector, "_factory", None)
    if not isinstance(factory, functools.partial) or factory.func is not ResponseHandler:
        return False
    connector._factory = functools.partial(  # type: ignore[assignment]
        StampingResponseHandler, *factory.args, **factory.keywords)
    return True


def attach(resp: aiohttp.ClientResponse) -> ArrivalLog | None:
    """Start logging arrivals of ``resp``'s payload; None when its connection's protocol
    does not stamp (see :func:`install`). :meth:`ArrivalLog.detach` when done."""
    conn = resp.connection
    proto = conn.protocol if conn is not None else None
    if not isinstance(proto, StampingResponseHandler):
        return None
    log = ArrivalLog(resp.content, proto)
    proto.rx = log
    return log
