"""The caller's bytes on the wire do not change when the frame path is made faster.

A seeded Twilio call against a recording agent on 127.0.0.1: every voiced ``media`` payload
and every DTMF digit, in order, hash to the value recorded before the frame path was
rewritten (pre-encoded frames, one timer per call), and every ``media`` message is,
byte for byte, what the general Media Streams encoder builds for its sequence number and
chunk. Silence frames are left out of the hash: how many the line sends between turns
depends on how long the agent takes, not on the code."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from aiohttp import web

from simulator.audio.line import SyntheticSpeech
from simulator.callscript import CallScript
from simulator.driver.audio_call import run_audio_call
from simulator.personas import Caller, generate_calls
from simulator.transports.base import Deadlines
from simulator.transports.twilio import SILENCE_FRAME, TwilioTransport, agent_media
from tests.agent.voice_harness import PACKS
from tests.conftest import serve_app

# sha256 of the voiced payloads and digits of the call below, recorded on the code before
# the frame-path rewrite (commit 32e93d2).
GOLDEN = "2d80d475c1b6c4d8a75070c5c6d2d802e47d692499509d2772182aa9036b7b14"


def _script() -> CallScript:
    s = generate_calls(PACKS, "salon", 1, 7)[0]
    turns = list(s.turns[:3])
    turns[1] = turns[1].model_copy(update={"dtmf": "42#"})
    return s.model_copy(update={"turns": turns})


async def _record_call() -> tuple[list[str], Any]:
    raw: list[str] = []

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        voiced_run = quiet = 0
        async for msg in ws:
            raw.append(msg.data)
            obj = json.loads(msg.data)
            if obj["event"] == "media":
                silent = obj["media"]["payload"] == _SILENT_B64
                if not silent:
                    voiced_run, quiet = voiced_run + 1, 0
                else:
                    quiet += 1
                if voiced_run and quiet == 10:  # the caller stopped talking: answer briefly
                    voiced_run = 0
                    for _ in range(8):
                        await ws.send_str(agent_media(obj["streamSid"], b"\x10\x90" * 80))
            if obj["event"] == "stop":
                break
        return ws

    app = web.Application()
    app.router.add_get("/ws", agent)
    script = _script()
    async with serve_app(app) as url:
        transport = TwilioTransport(url.replace("http", "ws") + "/ws")

        async def no_tools(*_a: Any) -> tuple[str, None]:
            return "{}", None

        try:
            run = await run_audio_call(
                script, Caller(script, PACKS[script.pack]), transport, no_tools,
                deadlines=Deadlines(first_byte_s=3.0, call_s=60.0),
                run_t0_ns=time.perf_counter_ns(), speech=SyntheticSpeech(0.05),
                agent_silence_s=0.2, greeting_wait_s=0, honour_pauses=False)
        finally:
            await transport.aclose()
    return raw, run


_SILENT_B64 = base64.b64encode(SILENCE_FRAME).decode()


async def test_a_seeded_twilio_call_sends_the_same_bytes() -> None:
    raw, run = await _record_call()
    assert run.error is None, run.error_detail
    msgs = [json.loads(m) for m in raw]
    start = msgs[1]
    sid = start["streamSid"]
    h = hashlib.sha256()
    voiced = digits = 0
    for text, m in zip(raw[2:], msgs[2:], strict=True):
        if m["event"] == "media":
            # byte for byte the message a general JSON encoder builds from its fields
            payload = base64.b64decode(m["media"]["payload"])
            chunk = int(m["media"]["chunk"])
            assert text == json.dumps({
                "event": "media", "sequenceNumber": m["sequenceNumber"], "streamSid": sid,
                "media": {"track": "inbound", "chunk": str(chunk),
                          "timestamp": str((chunk - 1) * 20),
                          "payload": base64.b64encode(payload).decode()},
            }, separators=(",", ":"))
            if m["media"]["payload"] != _SILENT_B64:
                h.update(payload)
                voiced += 1
        elif m["event"] == "dtmf":
            h.update(m["dtmf"]["digit"].encode())
            digits += 1
    assert voiced > 50 and digits == 3
    assert h.hexdigest() == GOLDEN


class _Wire:
    """Stands in for the WebSocket under a line: keeps what the line sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    async def send_str(self, text: str) -> None:
        self.sent.append(text)


REALTIME_GOLDEN = {
    "pcm16": "e5039a155eed02f05258a30753f486cd85d6e6a8c3a5a981fa85123ae8463320",
    "g711_ulaw": "97f7ce25a0fb5e76cd4ba84a689240b814bacae6b51e8336ec245b8d7fdff6b7",
}


async def test_realtime_appends_are_the_same_bytes_each_format_and_each_call() -> None:
    # Through the call loop's encoder, which shares an utterance's chunks between calls:
    # the same samples said on a pcm16 line and then on a G.711 line, twice each (a second
    # call reuses the first's chunks), are each format's own bytes.
    from simulator.callscript import Turn
    from simulator.driver.audio_call import _frames
    from simulator.transports.realtime import RealtimeLine

    pcm = SyntheticSpeech(0.05)(Turn(index=0, text="my number is 555 0199 and my name is Ann"))
    for fmt in ("pcm16", "g711_ulaw", "pcm16", "g711_ulaw"):
        wire = _Wire()
        line = RealtimeLine(wire, 0, fmt, 20, True, False, False)  # type: ignore[arg-type]
        chunks, voiced = _frames(line, pcm)
        assert len(voiced) == len(chunks)
        for chunk in chunks:
            await line.send_audio(chunk)
        assert len(wire.sent) > 20
        assert hashlib.sha256("\n".join(wire.sent).encode()).hexdigest() == REALTIME_GOLDEN[fmt]
