"""Transport ``openai-realtime``: the OpenAI Realtime API over WebSocket.

Sans-I/O first: builders for client events and :func:`parse_server_event`, which matches on
the event ``type`` and accepts GA and beta names alike (``response.output_audio.delta`` /
``response.audio.delta``, ...), returning one normalised :class:`RtEvent`. Then a small
aiohttp line: ``session.update``, caller audio via ``input_audio_buffer.append`` in real time,
server VAD or explicit ``commit`` + ``response.create``, function calls answered in-band.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import numpy as np

from simulator.audio import dsp
from simulator.audio.line import is_voiced_int16_scale, is_voiced_mulaw
from simulator.callscript import CallScript
from simulator.errors import TransportError
from simulator.transports.base import Deadlines, WebSocketClient, receive_data
from simulator.transports.line import LineEvent
from simulator.transports.registry import TransportOptions, TransportSpec, register

_now = time.perf_counter_ns
AudioFormat = Literal["pcm16", "g711_ulaw"]
CALLER_TEXT_EVENT = "callsim.caller_text"

# Normalised kind <- every server event type that means it (GA first, then beta).
SERVER_EVENTS: dict[str, str] = {
    "response.output_audio.delta": "audio",
    "response.audio.delta": "audio",
    "response.output_text.delta": "text",
    "response.text.delta": "text",
    "response.output_audio_transcript.delta": "transcript",
    "response.audio_transcript.delta": "transcript",
    "response.function_call_arguments.done": "function_call",
    "input_audio_buffer.speech_started": "speech_started",
    "input_audio_buffer.speech_stopped": "speech_stopped",
    "response.done": "done",
    "error": "error",
    "output_audio_buffer.cleared": "cleared",
}


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


# --------------------------------------------------------------------------- client events


def tools_to_realtime(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-Completions tool schemas -> Realtime's flat ``{type, name, description,
    parameters}`` form."""
    out = []
    for t in tools:
        fn = t.get("function", t)
        out.append({"type": "function", "name": fn.get("name"),
                    "description": fn.get("description", ""),
                    "parameters": fn.get("parameters", {"type": "object", "properties": {}})})
    return out


def session_update(*, instructions: str, tools: list[dict[str, Any]], audio_format: AudioFormat,
                   server_vad: bool, silence_ms: int = 500) -> str:
    """``session.update`` (beta field names, which GA servers also accept for these keys)."""
    session: dict[str, Any] = {
        "modalities": ["audio", "text"],
        "instructions": instructions,
        "input_audio_format": audio_format,
        "output_audio_format": audio_format,
        "tools": tools_to_realtime(tools),
        "tool_choice": "auto",
        "turn_detection": ({"type": "server_vad", "silence_duration_ms": silence_ms,
                            "create_response": True} if server_vad else None),
    }
    return _dumps({"type": "session.update", "session": session})


def input_audio_append(audio: bytes) -> str:
    # What json.dumps writes for this message, built by hand: base64 needs no escaping, and
    # a caller turn is 50 of these a second of speech, built before its first is sent.
    return '{"type":"input_audio_buffer.append","audio":"' + \
        base64.b64encode(audio).decode("ascii") + '"}'


def input_audio_commit() -> str:
    return _dumps({"type": "input_audio_buffer.commit"})


def function_call_output(call_id: str, output: str) -> str:
    return _dumps({"type": "conversation.item.create",
                   "item": {"type": "function_call_output", "call_id": call_id, "output": output}})


def response_create() -> str:
    return _dumps({"type": "response.create"})


def response_cancel() -> str:
    return _dumps({"type": "response.cancel"})


def caller_text(text: str) -> str:
    return _dumps({"type": CALLER_TEXT_EVENT, "text": text})


# --------------------------------------------------------------------------- server events


def realtime_usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Realtime ``response.done`` usage -> Chat-Completions field names used by the cost model."""
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens") or 0),
        "completion_tokens": int(usage.get("output_tokens") or 0),
        "prompt_tokens_details": {
            "cached_tokens": int(inp.get("cached_tokens") or 0),
            "audio_tokens": int(inp.get("audio_tokens") or 0),
        },
        "completion_tokens_details": {"audio_tokens": int(out.get("audio_tokens") or 0)},
    }


@dataclass(frozen=True, slots=True)
class RtEvent:
    """A server event, normalised. ``kind`` is a value of :data:`SERVER_EVENTS` or
    ``other`` (events callsim does not act on); ``raw_type`` keeps the wire name."""

    kind: str
    raw_type: str
    audio: bytes = b""
    text: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    usage: dict[str, Any] | None = None
    status: str = ""


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransportError("protocol_error", "Realtime event is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TransportError("protocol_error", "Realtime event has no 'type'")
    return obj


def parse_server_event(text: str | bytes) -> RtEvent:
    """One server event -> :class:`RtEvent`. Raises ``TransportError("protocol_error")`` on
    bad JSON, a missing ``type`` or a delta whose audio is not base64."""
    o = _load(text)
    typ = o["type"]
    kind = SERVER_EVENTS.get(typ, "other")
    if kind == "audio":
        delta = o.get("delta")
        if not isinstance(delta, str):
            raise TransportError("protocol_error", f"{typ} without a 'delta' string")
        try:
            audio = binascii.a2b_base64(delta, strict_mode=True)
        except (binascii.Error, ValueError):
            raise TransportError("protocol_error", f"{typ}: delta is not valid base64") from None
        return RtEvent(kind, typ, audio=audio)
    if kind in ("text", "transcript"):
        return RtEvent(kind, typ, text=str(o.get("delta") or ""))
    if kind == "function_call":
        return RtEvent(kind, typ, call_id=str(o.get("call_id") or ""),
                       name=str(o.get("name") or ""), arguments=str(o.get("arguments") or ""))
    if kind == "done":
        resp = o.get("response") or {}
        usage = resp.get("usage") if isinstance(resp, dict) else None
        return RtEvent(kind, typ, usage=usage if isinstance(usage, dict) else None,
                       status=str(resp.get("status") or "") if isinstance(resp, dict) else "")
    if kind == "error":
        err = o.get("error") or {}
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return RtEvent(kind, typ, text=str(msg or "error"))
    return RtEvent(kind, typ)


# --------------------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True)
class RtClientEvent:
    """A client event as the reference voice agent sees it."""

    type: str
    audio: bytes = b""
    session: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    text: str = ""


def parse_client_event(text: str | bytes) -> RtClientEvent:
    """Server side: one client event. Raises ``TransportError("protocol_error")``."""
    o = _load(text)
    typ = o["type"]
    if typ == "input_audio_buffer.append":
        a = o.get("audio")
        if not isinstance(a, str):
            raise TransportError("protocol_error", "append without 'audio'")
        try:
            return RtClientEvent(typ, audio=binascii.a2b_base64(a, strict_mode=True))
        except (binascii.Error, ValueError):
            raise TransportError("protocol_error", "append: audio is not valid base64") from None
    if typ == "session.update":
        s = o.get("session")
        return RtClientEvent(typ, session=s if isinstance(s, dict) else {})
    if typ == "conversation.item.create":
        item = o.get("item")
        return RtClientEvent(typ, item=item if isinstance(item, dict) else {})
    if typ == CALLER_TEXT_EVENT:
        return RtClientEvent(typ, text=str(o.get("text") or ""))
    return RtClientEvent(typ)


def server_event(typ: str, **fields: Any) -> str:
    return _dumps({"type": typ, **fields})


# --------------------------------------------------------------------------- the line


class RealtimeLine:
    """One Realtime session (see :class:`~simulator.driver.audio_call.AudioLine`).
    Audio crosses this seam as 8 kHz mu-law; pcm16 24 kHz is converted at the edge."""

    agent_calls_tools = False

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, conn_setup_ns: int,
                 audio_format: AudioFormat, chunk_ms: int, server_vad: bool,
                 cancel_on_barge_in: bool, text_hints: bool) -> None:
        self.ws = ws
        self.conn_setup_ns = conn_setup_ns
        self.fmt = audio_format
        self.chunk_ms = chunk_ms
        self.server_vad = server_vad
        self.cancel = cancel_on_barge_in
        self.text_hints = text_hints
        n = chunk_ms * 8
        self.silence_chunk = input_audio_append(
            bytes([dsp.MULAW_SILENCE]) * n if audio_format == "g711_ulaw" else bytes(chunk_ms * 48))
        self.responding = False
        self.encode_key = f"realtime:{audio_format}:{chunk_ms}"  # encode() depends on these
        # the agent's 24 kHz audio onto the 8 kHz line, filtered as one stream
        self._to_line = dsp.MulawFrom24k()
        # False when nothing will hear the agent's audio (no listener): events then carry
        # its duration and voicing but not the samples, and no mu-law is made for them
        self.agent_audio_wanted = True

    def encode(self, pcm8k: np.ndarray) -> list[str]:
        """The turn's ``input_audio_buffer.append`` messages, built when it is queued (a due
        chunk then costs one send)."""
        n = self.chunk_ms * 8
        if self.fmt == "g711_ulaw":
            chunks = dsp.frame_bytes(dsp.encode(pcm8k, "mulaw"), n, dsp.MULAW_SILENCE)
        else:
            pcm = dsp.to_pcm16_bytes(pcm8k, dsp.TELEPHONE_RATE, dsp.REALTIME_RATE)
            chunks = dsp.frame_bytes(pcm, n * 6, 0)
        return [input_audio_append(c) for c in chunks]

    async def send_audio(self, payload: str) -> None:
        await self.ws.send_str(payload)

    async def send_dtmf(self, digit: str) -> None:
        return None  # Realtime has no DTMF event; digits travel as tones in the audio

    async def send_caller_text(self, text: str) -> None:
        if self.text_hints:
            await self.ws.send_str(caller_text(text))

    async def end_of_turn(self) -> None:
        if not self.server_vad:
            await self.ws.send_str(input_audio_commit())
            await self.ws.send_str(response_create())

    async def interrupt(self) -> None:
        if self.cancel:
            await self.ws.send_str(response_cancel())

    async def send_tool_result(self, call_id: str, output: str) -> int:
        await self.ws.send_str(function_call_output(call_id, output))
        await self.ws.send_str(response_create())
        return _now()

    async def receive(self) -> LineEvent | None:
        while True:
            got = await receive_data(self.ws)
            if got is None:
                return None
            data, t = got
            ev = parse_server_event(data)
            if ev.kind == "audio":
                if self.fmt == "g711_ulaw":
                    mu = ev.audio
                    return LineEvent("audio", t, audio=mu, duration_s=len(mu) / 8000.0,
                                     voiced=is_voiced_mulaw(mu))
                y = self._to_line.samples(ev.audio)
                return LineEvent("audio", t, duration_s=len(y) / 8000.0,
                                 audio=dsp.MulawFrom24k.mulaw(y) if self.agent_audio_wanted
                                 else b"",
                                 voiced=is_voiced_int16_scale(y))
            if ev.kind in ("text", "transcript"):
                return LineEvent("text", t, text=ev.text)
            if ev.kind == "function_call":
                return LineEvent("tool_call", t, call_id=ev.call_id, name=ev.name,
                                 arguments=ev.arguments)
            if ev.kind == "done":
                usage = realtime_usage_to_openai(ev.usage) if ev.usage else None
                return LineEvent("done", t, usage=usage, text=ev.status)
            if ev.kind == "cleared":
                return LineEvent("clear", t)
            if ev.kind == "error":
                if "no active response" in ev.text.lower() or "cancel" in ev.text.lower():
                    continue  # a response.cancel that lost the race is not a call failure
                return LineEvent("error", t, text=ev.text)

    async def aclose(self) -> None:
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


class RealtimeTransport(WebSocketClient):
    """Realtime client towards ``url`` (e.g. ``wss://api.openai.com/v1/realtime?model=...``).

    ``audio_format`` pcm16 (24 kHz) or g711_ulaw; ``server_vad`` lets the server detect the
    end of the caller's turn, else callsim commits and asks for a response; ``chunk_ms``
    is the append size (20-40 ms); ``cancel_on_barge_in`` sends ``response.cancel``."""

    def __init__(self, url: str, *, deadlines: Deadlines | None = None, api_key: str | None = None,
                 audio_format: AudioFormat = "pcm16", server_vad: bool = True, chunk_ms: int = 20,
                 cancel_on_barge_in: bool = False, text_hints: bool = False,
                 vad_silence_ms: int = 500) -> None:
        if chunk_ms not in (20, 40):
            raise ValueError("chunk_ms must be 20 or 40")
        self.url = url
        self.deadlines = deadlines or Deadlines()
        self.headers = {"OpenAI-Beta": "realtime=v1"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.audio_format: AudioFormat = audio_format
        self.server_vad = server_vad
        self.chunk_ms = chunk_ms
        self.cancel = cancel_on_barge_in
        self.text_hints = text_hints
        self.vad_silence_ms = vad_silence_ms
        self._session: aiohttp.ClientSession | None = None

    async def open_line(self, call_id: str, script: CallScript, tools: list[dict[str, Any]],
                        system_prompt: str) -> RealtimeLine:
        ws, conn_ns = await self._connect()
        await ws.send_str(session_update(instructions=system_prompt, tools=tools,
                                         audio_format=self.audio_format, server_vad=self.server_vad,
                                         silence_ms=self.vad_silence_ms))
        return RealtimeLine(ws, conn_ns, self.audio_format, self.chunk_ms, self.server_vad,
                            self.cancel, self.text_hints)


def _build(o: TransportOptions) -> RealtimeTransport:
    return RealtimeTransport(o.target, deadlines=o.deadlines, api_key=o.api_key,
                             text_hints=o.text_hints)


register(TransportSpec(name="openai-realtime", carries="audio", build=_build,
                       summary="OpenAI Realtime over WebSocket (pcm16 24 kHz)"))
