"""Sans-I/O Server-Sent Events parser.

Feed it raw bytes as they arrive; it returns the complete events those bytes finished.
It never touches a socket, so it is tested (and fuzzed) without a server. Follows the
WHATWG event-stream rules that matter for LLM streaming: lines end in LF, CRLF or CR;
``data:`` lines of one event are joined with ``\\n``; comments (``:``) are ignored; an
event ends at a blank line.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import TransportError


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEParser:
    """Incremental SSE parser with a bound on buffered bytes (``max_event_bytes``)."""

    def __init__(self, max_event_bytes: int = 4 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._pending = 0
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk``; return the events completed by it.

        Raises :class:`TransportError` (``oversized``) when one event grows past the bound,
        and (``protocol_error``) on bytes that are not UTF-8.
        """
        self._buf += chunk
        out: list[SSEEvent] = []
        buf = self._buf
        if b"\r" not in buf:
            # Fast path for LF-only streams (what LLM servers send): decode every complete
            # line at once and split in C, instead of one find/slice/decode per line.
            end = buf.rfind(b"\n")
            if end >= 0:
                try:
                    block = buf[:end].decode("utf-8")
                except UnicodeDecodeError:
                    raise TransportError("protocol_error",
                                         "SSE stream is not valid UTF-8") from None
                del buf[: end + 1]
                data = self._data
                for text in block.split("\n"):
                    # The two lines LLM streams are made of, inline; the rest as the spec says.
                    if text[:6] == "data: ":
                        data.append(text[6:])
                        self._pending += len(text) - 6
                        continue
                    if text == "" and data and not self._event:
                        out.append(SSEEvent("\n".join(data), "message", self._id))
                        data = self._data = []
                        self._pending = 0
                        continue
                    ev = self._text_line(text)
                    data = self._data
                    if ev is not None:
                        out.append(ev)
            if len(buf) + self._pending > self._max:
                raise TransportError("oversized", f"SSE event larger than {self._max} bytes")
            return out
        while True:
            line, ok = self._take_line()
            if not ok:
                break
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        if len(self._buf) + self._pending > self._max:
            raise TransportError("oversized", f"SSE event larger than {self._max} bytes")
        return out

    def feed_data(self, chunk: bytes) -> list[str]:
        """:meth:`feed`, keeping only each event's data (what a chat stream reads).

        The common case, a read that holds whole ``data: ...`` events and nothing else,
        is split in one pass; anything else goes through :meth:`feed`. Same results."""
        if (self._buf or self._data or self._event or not chunk.endswith(b"\n\n")
                or b"\r" in chunk or len(chunk) > self._max):
            return [ev.data for ev in self.feed(chunk)]
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            raise TransportError("protocol_error", "SSE stream is not valid UTF-8") from None
        out: list[str] = []
        for block in text[:-2].split("\n\n"):
            if block[:6] == "data: " and "\n" not in block:
                out.append(block[6:])
                continue
            for line in block.split("\n"):  # the spec's way: comments, fields, ids
                ev = self._text_line(line)
                if ev is not None:
                    out.append(ev.data)
            ev = self._text_line("")
            if ev is not None:
                out.append(ev.data)
        return out

    def _take_line(self) -> tuple[bytes, bool]:
        buf = self._buf
        lf = buf.find(b"\n")
        cr = buf.find(b"\r")
        if lf < 0 and cr < 0:
            return b"", False
        if cr >= 0 and (lf < 0 or cr < lf):
            if cr == len(buf) - 1:
                # A CR at the very end may be the first half of CRLF: wait for more.
                return b"", False
            end, skip = cr, 2 if buf[cr + 1 : cr + 2] == b"\n" else 1
        else:
            end, skip = lf, 1
        line = bytes(buf[:end])
        del buf[: end + skip]
        return line, True

    def _line(self, raw: bytes) -> SSEEvent | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TransportError("protocol_error", "SSE stream is not valid UTF-8") from None
        return self._text_line(line)

    def _text_line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            ev = SSEEvent("\n".join(self._data), self._event or "message", self._id)
            self._data, self._event, self._pending = [], "", 0
            return ev
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._pending += len(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value
        return None

    def close(self) -> list[SSEEvent]:
        """End of stream: a trailing event without its blank line is still delivered."""
        out = self.feed(b"\n\n") if self._buf or self._data else []
        return out
