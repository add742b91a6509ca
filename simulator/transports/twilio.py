"""Transport ``twilio``: callsim plays Twilio Media Streams towards an agent's WebSocket.

Sans-I/O codec first (:class:`TwilioCodec` builds what Twilio sends, :func:`parse_agent_message`
validates what an agent sends back, :func:`parse_twilio_message` is the agent side), then a
small aiohttp line: ``connected``, ``start``, 160-byte mu-law ``media`` frames, ``dtmf``,
``mark`` echoes once the agent's audio up to the mark has played out, ``stop``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from simulator.audio import dsp
from simulator.audio.line import FRAME_SAMPLES, is_voiced_mulaw
from simulator.callscript import CallScript
from simulator.errors import TransportError
from simulator.transports.base import Deadlines, WebSocketClient, receive_data
from simulator.transports.line import LineEvent
from simulator.transports.registry import TransportOptions, TransportSpec, register

_now = time.perf_counter_ns
FRAME_BYTES = 160
SILENCE_FRAME = bytes([dsp.MULAW_SILENCE]) * FRAME_BYTES
SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode("ascii")
# callsim extension (only with text_hints): the caller's words behind its audio, for the
# reference agent when it runs no speech recognition (``--stt none``). Nothing comes back
# the other way: callsim hears the agent's audio (simulator.audio.listener), as it would
# have to with any real bot.
CALLER_TEXT_EVENT = "callsim.caller_text"


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class TwMessage:
    """A parsed Media Streams message. ``event`` is the Twilio event name; the other fields
    are filled according to it (``payload`` decoded from base64)."""

    event: str
    stream_sid: str = ""
    payload: bytes = b""
    name: str = ""          # mark name
    digit: str = ""
    text: str = ""          # callsim.* text extensions
    sequence: int = 0
    chunk: int = 0
    timestamp: int = 0
    call_sid: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: dict[str, Any] = field(default_factory=dict)


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("protocol_error", "Media Streams message is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        raise TransportError("protocol_error", "Media Streams message has no 'event'")
    return obj


def _b64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise TransportError("protocol_error", f"{what}: payload is not a string")
    try:
        return binascii.a2b_base64(s, strict_mode=True)
    except (binascii.Error, ValueError):
        raise TransportError("protocol_error", f"{what}: payload is not valid base64") from None


def _obj(o: Any, key: str, event: str) -> dict[str, Any]:
    v = o.get(key)
    if not isinstance(v, dict):
        raise TransportError("protocol_error", f"'{event}' message without a '{key}' object")
    return v


# The usual shapes of an agent's ``media`` message, Twilio's documented field order written
# compactly (JavaScript's ``JSON.stringify``) or with Python's default ``json.dumps`` spaces:
# read by slicing, without a general JSON decode (about half the time). A value that holds a
# quote, a backslash or a raw control character, or any other shape, takes the full path.
_AGENT_MEDIA_SHAPES = (
    ('{"event":"media","streamSid":"', '","media":{"payload":"', '"}}'),
    ('{"event": "media", "streamSid": "', '", "media": {"payload": "', '"}}'),
)


def _agent_media_fast(text: str) -> tuple[str, str] | None:
    """(stream sid, base64 payload) of a ``media`` message in one of the usual shapes."""
    for head, mid, tail in _AGENT_MEDIA_SHAPES:
        if text.startswith(head) and text.endswith(tail):
            k = text.find(mid, len(head))
            if k < 0:
                return None
            sid, payload = text[len(head):k], text[k + len(mid):-len(tail)]
            if '"' in sid or "\\" in sid or '"' in payload or "\\" in payload:
                return None
            if sid and min(sid) < " ":  # a raw control character: not JSON, say so below
                return None
            return sid, payload
    return None


def parse_agent_message(text: str | bytes) -> TwMessage:
    """An agent -> Twilio message: ``media`` (payload decoded), ``mark`` or ``clear``.
    Raises ``TransportError("protocol_error")`` on bad JSON, bad base64, a missing field or
    an unknown event."""
    if isinstance(text, str) and (fast := _agent_media_fast(text)) is not None:
        return TwMessage("media", fast[0], payload=_b64(fast[1], "media"))
    o = _load(text)
    ev = o["event"]
    sid = str(o.get("streamSid") or "")
    if ev == "media":
        media = _obj(o, "media", ev)
        return TwMessage(ev, sid, payload=_b64(media.get("payload"), "media"))
    if ev == "mark":
        mark = _obj(o, "mark", ev)
        if not isinstance(mark.get("name"), str):
            raise TransportError("protocol_error", "'mark' without a name")
        return TwMessage(ev, sid, name=mark["name"])
    if ev == "clear":
        return TwMessage(ev, sid)
    raise TransportError("protocol_error",
                         f"unknown Media Streams event {ev[:40]!r} from the agent")


def parse_twilio_message(text: str | bytes) -> TwMessage:
    """A Twilio -> agent message (the agent side, used by the reference voice agent):
    ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop`` and
    ``callsim.caller_text``. Raises ``TransportError("protocol_error")``."""
    o = _load(text)
    ev = o["event"]
    sid = str(o.get("streamSid") or "")
    seq = int(o.get("sequenceNumber") or 0)
    if ev == "connected":
        return TwMessage(ev)
    if ev == "start":
        st = _obj(o, "start", ev)
        params = st.get("customParameters") or {}
        return TwMessage(ev, sid or str(st.get("streamSid") or ""), sequence=seq,
                         call_sid=str(st.get("callSid") or ""),
                         custom_parameters={str(k): str(v) for k, v in params.items()},
                         media_format=dict(st.get("mediaFormat") or {}))
    if ev == "media":
        m = _obj(o, "media", ev)
        return TwMessage(ev, sid, payload=_b64(m.get("payload"), "media"), sequence=seq,
                         chunk=int(m.get("chunk") or 0), timestamp=int(m.get("timestamp") or 0))
    if ev == "dtmf":
        return TwMessage(ev, sid, digit=str(_obj(o, "dtmf", ev).get("digit") or ""), sequence=seq)
    if ev == "mark":
        return TwMessage(ev, sid, name=str(_obj(o, "mark", ev).get("name") or ""), sequence=seq)
    if ev == "stop":
        return TwMessage(ev, sid, sequence=seq)
    if ev == CALLER_TEXT_EVENT:
        return TwMessage(ev, sid, text=str(o.get("text") or ""))
    raise TransportError("protocol_error", f"unknown Media Streams event {ev[:40]!r}")


class TwilioCodec:
    """Builds what Twilio sends on one stream. ``sequenceNumber`` counts every message after
    ``connected`` from 1; media ``chunk`` counts media messages from 1; ``timestamp`` is the
    media time in ms since the stream started (20 ms per frame)."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str = "ACcallsim") -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.seq = 0
        self.chunk = 0

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def connected(self) -> str:
        return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: dict[str, str] | None = None) -> str:
        return _dumps({
            "event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid, "accountSid": self.account_sid,
                "callSid": self.call_sid, "tracks": ["inbound"],
                "customParameters": dict(custom_parameters or {}),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        })

    def media(self, payload: bytes) -> str:
        if len(payload) != FRAME_BYTES:
            raise ValueError(f"a Twilio media frame is {FRAME_BYTES} bytes, got {len(payload)}")
        return self.media_b64(base64.b64encode(payload).decode("ascii"))

    def media_b64(self, payload_b64: str) -> str:
        """A ``media`` message for an already base64-encoded 160-byte frame: the caller's
        frames are encoded when a turn is queued, so a due frame costs one string format.
        The same bytes as ``json.dumps`` of the message with compact separators (the
        stream sid is hex, the other fields are digits or base64: nothing to escape)."""
        self.seq += 1
        self.chunk = c = self.chunk + 1
        return (f'{{"event":"media","sequenceNumber":"{self.seq}","streamSid":"{self.stream_sid}",'
                f'"media":{{"track":"inbound","chunk":"{c}","timestamp":"{(c - 1) * 20}",'
                f'"payload":"{payload_b64}"}}}}')

    def dtmf(self, digit: str) -> str:
        return _dumps({"event": "dtmf", "sequenceNumber": self._next(),
                       "streamSid": self.stream_sid,
                       "dtmf": {"track": "inbound_track", "digit": digit}})

    def mark(self, name: str) -> str:
        return _dumps({"event": "mark", "sequenceNumber": self._next(),
                       "streamSid": self.stream_sid,
                       "mark": {"name": name}})

    def stop(self) -> str:
        return _dumps({"event": "stop", "sequenceNumber": self._next(),
                       "streamSid": self.stream_sid,
                       "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    def caller_text(self, text: str) -> str:
        return _dumps({"event": CALLER_TEXT_EVENT, "streamSid": self.stream_sid, "text": text})


def agent_media(stream_sid: str, payload: bytes) -> str:
    """Agent side: one ``media`` message carrying mu-law ``payload``."""
    return _dumps({"event": "media", "streamSid": stream_sid,
                   "media": {"payload": base64.b64encode(payload).decode("ascii")}})


def agent_mark(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def agent_clear(stream_sid: str) -> str:
    return _dumps({"event": "clear", "streamSid": stream_sid})


# --------------------------------------------------------------------------- the line


class TwilioLine:
    """One Media Streams call (see :class:`~simulator.driver.audio_call.AudioLine`)."""

    chunk_ms = 20
    silence_chunk = SILENCE_B64  # chunks are base64 frames, encoded when a turn is queued
    encode_key = "twilio:mulaw:20"  # encode() depends on the samples only
    agent_calls_tools = True

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, codec: TwilioCodec,
                 conn_setup_ns: int, text_hints: bool, max_bytes: int) -> None:
        self.ws = ws
        self.codec = codec
        self.conn_setup_ns = conn_setup_ns
        self.text_hints = text_hints
        self.max_bytes = max_bytes
        self._playout_end = 0
        self._marks: list[tuple[int, str]] = []  # (played-out time, name), in order
        self._mark_task: asyncio.Task[None] | None = None

    def encode(self, pcm8k: np.ndarray) -> list[str]:
        b64 = base64.b64encode
        return [b64(f).decode("ascii") for f in dsp.frames_mulaw_20ms(pcm8k)]

    async def send_audio(self, payload: str) -> None:
        await self.ws.send_str(self.codec.media_b64(payload))

    async def send_dtmf(self, digit: str) -> None:
        await self.ws.send_str(self.codec.dtmf(digit))

    async def send_caller_text(self, text: str) -> None:
        if self.text_hints:
            await self.ws.send_str(self.codec.caller_text(text))

    async def end_of_turn(self) -> None:
        return None

    async def interrupt(self) -> None:
        return None

    async def send_tool_result(self, call_id: str, output: str) -> int:
        raise TransportError("protocol_error", "Twilio agents call tools over HTTP, not in-band")

    async def _echo_marks(self) -> None:
        while self._marks:
            due, name = self._marks[0]
            delay = (due - _now()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._marks.pop(0)
            if not self.ws.closed:
                await self.ws.send_str(self.codec.mark(name))

    def _schedule_marks(self) -> None:
        if self._marks and (self._mark_task is None or self._mark_task.done()):
            self._mark_task = asyncio.create_task(self._echo_marks())

    async def receive(self) -> LineEvent | None:
        while True:
            got = await receive_data(self.ws, binary=True)
            if got is None:
                return None
            data, t = got
            m = parse_agent_message(data)
            if m.event == "media":
                dur = len(m.payload) / 8000.0
                self._playout_end = max(t, self._playout_end) + int(dur * 1e9)
                voiced = is_voiced_mulaw(m.payload) if m.payload else False
                return LineEvent("audio", t, audio=m.payload, duration_s=dur, voiced=voiced)
            if m.event == "mark":
                # Twilio echoes a mark once the audio sent before it has played out.
                self._marks.append((max(t, self._playout_end), m.name))
                self._schedule_marks()
                continue
            if m.event == "clear":
                self._playout_end = t
                self._marks = [(t, name) for _, name in self._marks]  # flushed: echo now
                self._schedule_marks()
                return LineEvent("clear", t)

    async def aclose(self) -> None:
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.send_str(self.codec.stop())
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._mark_task is not None:
            self._mark_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._mark_task


class TwilioTransport(WebSocketClient):
    """Plays Twilio towards ``url`` (a ``ws://``/``wss://`` Media Streams endpoint).

    ``custom_parameters`` go into every ``start`` (plus ``call_id`` and ``pack``, so an agent
    calling the tool backend can send ``X-Callsim-Call-Id``). ``text_hints`` sends the
    caller's words as ``callsim.caller_text`` beside its audio (for the reference agent
    running ``--stt none`` only); the agent's words are never taken from the wire."""

    def __init__(self, url: str, *, deadlines: Deadlines | None = None,
                 custom_parameters: dict[str, str] | None = None, text_hints: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.deadlines = deadlines or Deadlines()
        self.custom = dict(custom_parameters or {})
        self.text_hints = text_hints
        self.headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> TwilioLine:
        from simulator.seeding import derive_seed

        ws, conn_ns = await self._connect()
        h = derive_seed("twilio", call_id)
        codec = TwilioCodec(stream_sid=f"MZ{h:032x}"[:34], call_sid=f"CA{h:032x}"[:34])
        params = {**self.custom, "call_id": call_id, "pack": script.pack}
        if self.text_hints:
            params["callsim_text_hints"] = "1"
        line = TwilioLine(ws, codec, conn_ns, self.text_hints, self.deadlines.max_reply_bytes)
        await ws.send_str(codec.connected())
        await ws.send_str(codec.start(params))
        return line


def _build(o: TransportOptions) -> TwilioTransport:
    return TwilioTransport(o.target, deadlines=o.deadlines, text_hints=o.text_hints)


register(TransportSpec(name="twilio", carries="audio", build=_build, tool_relay=True,
                       summary="Twilio Media Streams (the simulator plays Twilio; mu-law 8 kHz)"))


__all__ = [
    "FRAME_BYTES", "FRAME_SAMPLES", "TwMessage", "TwilioCodec", "TwilioLine", "TwilioTransport",
    "agent_clear", "agent_mark", "agent_media", "parse_agent_message",
    "parse_twilio_message",
]
