"""Transport ``twilio``: the Media Streams codec, and whole calls against real WebSocket
servers on 127.0.0.1 (the reference voice agent, and small hand-written agents)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import statistics
import time
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given
from hypothesis import strategies as st

from simulator.audio.line import SyntheticSpeech
from simulator.callscript import CallScript
from simulator.driver.audio_call import run_audio_call
from simulator.errors import TransportError
from simulator.personas import Caller
from simulator.transports.base import Deadlines
from simulator.transports.twilio import (
    TwilioCodec,
    TwilioTransport,
    agent_mark,
    agent_media,
    parse_agent_message,
    parse_twilio_message,
)
from tests.agent.voice_harness import (
    PACKS,
    TTFT_MS,
    VAD_MS,
    call_reference,
    script_with_tool_and_barge_in,
)
from tests.conftest import TIME_FACTOR, serve_app


@given(st.binary(min_size=160, max_size=160))
def test_media_frame_round_trips_through_the_agent_side_parser(payload: bytes) -> None:
    codec = TwilioCodec("MZ1", "CA1")
    msg = parse_twilio_message(codec.media(payload))
    assert msg.event == "media" and msg.payload == payload and msg.chunk == 1


def test_codec_counts_sequence_chunk_and_timestamp() -> None:
    codec = TwilioCodec("MZ1", "CA1")
    start = json.loads(codec.start({"call_id": "c1"}))
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                             "channels": 1}
    frames = [json.loads(codec.media(bytes([0xFF]) * 160)) for _ in range(3)]
    assert [f["sequenceNumber"] for f in frames] == ["2", "3", "4"]
    assert [f["media"]["chunk"] for f in frames] == ["1", "2", "3"]
    assert [f["media"]["timestamp"] for f in frames] == ["0", "20", "40"]
    with pytest.raises(ValueError):
        codec.media(b"\xff" * 159)


@pytest.mark.parametrize("raw", [
    "not json",
    '{"event": "media", "media": {"payload": "***not base64***"}}',
    '{"event": "media"}',
    '{"event": "hangup"}',
    '{"no_event": 1}',
    '{"event":"media","streamSid":"MZ\x01","media":{"payload":"AA=="}}',
], ids=["bad-json", "bad-base64", "no-media-object", "unknown-event", "no-event",
        "control-character-in-usual-shape"])
def test_bad_agent_messages_are_protocol_errors(raw: str) -> None:
    with pytest.raises(TransportError) as ei:
        parse_agent_message(raw)
    assert ei.value.category == "protocol_error"


_B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
               max_size=24)


@given(sid=st.one_of(st.text(max_size=12), st.from_regex(r"MZ[0-9a-f]{8}", fullmatch=True)),
       payload=st.one_of(st.binary(max_size=160).map(lambda b: base64.b64encode(b).decode()),
                         _B64, st.text(max_size=24)),
       extra=st.booleans(), compact=st.booleans())
def test_agent_media_is_read_as_a_json_decoder_reads_it(sid: str, payload: str, extra: bool,
                                                       compact: bool) -> None:
    # Media in the usual shapes is read by slicing: quotes, backslashes and unicode in the
    # values, or extra fields, must give what the full JSON path gives (or its error).
    media: dict[str, str] = {"payload": payload}
    if extra:
        media["track"] = "outbound"
    text = json.dumps({"event": "media", "streamSid": sid, "media": media},
                      separators=(",", ":") if compact else (", ", ": "))
    try:
        want: tuple[str, bytes] | str = (sid, binascii.a2b_base64(payload, strict_mode=True))
    except (ValueError, binascii.Error):
        want = "protocol_error"
    try:
        msg = parse_agent_message(text)
        got: tuple[str, bytes] | str = (msg.stream_sid, msg.payload)
    except TransportError as exc:
        got = exc.category
    assert got == want


def test_agent_media_mark_and_clear_parse() -> None:
    assert parse_agent_message(agent_media("MZ", b"\x01\x02")).payload == b"\x01\x02"
    assert parse_agent_message(agent_mark("MZ", "m1")).name == "m1"
    assert parse_agent_message('{"event": "clear", "streamSid": "MZ"}').event == "clear"


def _one_turn_script() -> CallScript:
    from simulator.personas import generate_calls

    s = generate_calls(PACKS, "salon", 1, 1)[0]
    return s.model_copy(update={"turns": s.turns[:1]})


async def _call(url: str, script: CallScript) -> Any:
    transport = TwilioTransport(url)

    async def no_tools(*_a: Any) -> tuple[str, None]:
        return "{}", None

    try:
        return await run_audio_call(
            script, Caller(script, PACKS[script.pack]), transport, no_tools,
            deadlines=Deadlines(first_byte_s=2.0, call_s=20.0), run_t0_ns=time.perf_counter_ns(),
            speech=SyntheticSpeech(0.04), agent_silence_s=0.2, greeting_wait_s=0)
    finally:
        await transport.aclose()


async def test_frames_are_160_byte_base64_with_increasing_sequence_numbers() -> None:
    seen: list[dict[str, Any]] = []

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        replied = False
        async for msg in ws:
            obj = json.loads(msg.data)
            seen.append(obj)
            if obj["event"] == "media" and len(seen) > 30 and not replied:
                replied = True  # one short voiced reply, then silence: the call ends
                for _ in range(5):
                    await ws.send_str(agent_media(obj["streamSid"], b"\x10\x90" * 80))
            if obj["event"] == "stop":
                break
        return ws

    app = web.Application()
    app.router.add_get("/ws", agent)
    async with serve_app(app) as url:
        run = await _call(url.replace("http", "ws") + "/ws", _one_turn_script())
    assert run.error is None, run.error_detail
    events = [m["event"] for m in seen]
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    media = [m for m in seen if m["event"] == "media"]
    assert len(media) > 30
    assert all(len(base64.b64decode(m["media"]["payload"], validate=True)) == 160 for m in media)
    seqs = [int(m["sequenceNumber"]) for m in seen[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    assert run.exchanges and run.exchanges[0].ttfa_ms is not None


def _silence_streaming_agent(reply_after_s: float | None) -> web.Application:
    """An agent that streams silent frames all call long, as SIP and WebRTC lines and some
    WebSocket bots do; ``reply_after_s`` after the caller's speech ends (its first 200 ms
    of silence) it says 200 ms of tone, then keeps streaming silence (None: it never
    speaks)."""
    from simulator.audio.line import is_voiced_mulaw

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state = {"sid": "", "spoke": False, "quiet": 0, "reply_at": None}

        async def stream() -> None:
            nxt = time.perf_counter()
            while not ws.closed:
                nxt += 0.020
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
                at = state["reply_at"]
                if at is not None and time.perf_counter() >= at:
                    state["reply_at"] = None
                    for _ in range(10):
                        await ws.send_str(agent_media(state["sid"], b"\x10\x90" * 80))
                    continue
                if state["sid"] and not ws.closed:
                    await ws.send_str(agent_media(state["sid"], b"\xff" * 160))

        task = asyncio.create_task(stream())
        try:
            async for msg in ws:
                obj = json.loads(msg.data)
                if obj["event"] == "start":
                    state["sid"] = obj["streamSid"]
                elif obj["event"] == "media":
                    voiced = is_voiced_mulaw(base64.b64decode(obj["media"]["payload"]))
                    state["spoke"] = state["spoke"] or voiced
                    state["quiet"] = 0 if voiced else state["quiet"] + 1
                    if (state["spoke"] and state["quiet"] == 10 and reply_after_s is not None):
                        state["reply_at"] = time.perf_counter() + reply_after_s
                        state["spoke"] = False
                elif obj["event"] == "stop":
                    break
        finally:
            task.cancel()
        return ws

    app = web.Application()
    app.router.add_get("/ws", agent)
    return app


async def test_silent_frames_are_no_answer_first_token_latency_is_the_first_voiced_one() -> None:
    async with serve_app(_silence_streaming_agent(reply_after_s=0.5)) as url:
        run = await _call(url.replace("http", "ws") + "/ws", _one_turn_script())
    assert run.error is None, run.error_detail
    turn = run.exchanges[0]
    # silence reached callsim at once; the answer came 200 ms + 500 ms after the caller
    # stopped talking, and that is the turn's first-token latency
    assert turn.ttfa_ms is not None and turn.ttfa_ms < turn.first_voiced_ms
    assert turn.ttft_ms == turn.first_voiced_ms and turn.ttft_ms >= 600


async def test_an_agent_that_only_streams_silence_is_reprompted_then_agent_silent() -> None:
    from simulator.driver.turntaking import TurnTaking

    async with serve_app(_silence_streaming_agent(reply_after_s=None)) as url:
        t = TwilioTransport(url.replace("http", "ws") + "/ws")
        script = _one_turn_script()

        async def no_tools(*_a: Any) -> tuple[str, None]:
            return "{}", None

        try:
            run = await run_audio_call(
                script, Caller(script, PACKS[script.pack]), t, no_tools,
                deadlines=Deadlines(first_byte_s=10.0, call_s=20.0),
                run_t0_ns=time.perf_counter_ns(), speech=SyntheticSpeech(0.04),
                turn_taking=TurnTaking(greeting_wait_s=0, agent_silence_s=0.2,
                                       reprompt_after_s=0.5, reprompts=1))
        finally:
            await t.aclose()
    assert run.error == "agent_silent", run.error_detail
    assert [e for e in run.events if e[0] == "reprompt"]


async def test_bad_base64_from_the_agent_is_a_protocol_error() -> None:
    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and json.loads(msg.data)["event"] == "start":
                await ws.send_str('{"event":"media","streamSid":"x","media":{"payload":"%%%"}}')
        return ws

    app = web.Application()
    app.router.add_get("/ws", agent)
    async with serve_app(app) as url:
        run = await _call(url.replace("http", "ws") + "/ws", _one_turn_script())
    assert run.error == "protocol_error", run.error_detail


async def test_mark_is_echoed_only_after_the_audio_before_it_has_played_out() -> None:
    got: dict[str, float] = {}

    async def agent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            obj = json.loads(msg.data)
            if obj["event"] == "start":
                sid = obj["streamSid"]
                for _ in range(25):  # 500 ms of audio, sent at once (Twilio buffers it)
                    await ws.send_str(agent_media(sid, b"\x10\x90" * 80))
                await ws.send_str(agent_mark(sid, "end-of-reply"))
                got["sent"] = time.perf_counter()
            elif obj["event"] == "mark":
                got[obj["mark"]["name"]] = time.perf_counter()
            elif obj["event"] == "stop":
                break
        return ws

    app = web.Application()
    app.router.add_get("/ws", agent)
    async with serve_app(app) as url:
        await _call(url.replace("http", "ws") + "/ws", _one_turn_script())
    assert "end-of-reply" in got
    assert got["end-of-reply"] - got["sent"] >= 0.4


@pytest.mark.timing
async def test_multi_turn_call_with_tool_call_and_barge_in_against_reference_agent() -> None:
    script = script_with_tool_and_barge_in()
    said: list[str] = []
    run = await call_reference(lambda u: TwilioTransport(u, text_hints=True), script,
                               greeting_wait_s=2.0, path="/twilio", said=said)
    assert run.error is None, run.error_detail
    caller_turns = [e for e in run.exchanges if e.phase == "caller"]
    assert len(caller_turns) >= 4
    # The agent called the tool backend itself (over HTTP, through the relay).
    made = [c["name"] for c in run.transcript["tool_calls"]]
    assert [c.name for c in script.expected_tool_calls] == made
    barge = [e for e in run.events if e[0] == "barge_in"]
    assert len(barge) == 1 and barge[0][1]["cleared"]
    assert caller_turns[0].interrupted and caller_turns[0].barge_in_reaction_ms is not None
    # The greeting is a turn of its own, before the caller's first.
    assert run.exchanges[0].phase == "greeting" and run.exchanges[0].agent_speech_s
    # The agent's words stay off the wire (its own log has them); tones are not words, so
    # callsim heard none and graded from none.
    assert any("all set" in t.lower() or "booked" in t.lower() for t in said)
    assert run.transcript["agent"] == [] and run.transcript["agent_source"] == "none"
    # Time to first audio = the agent's VAD hangover + its configured delay (see docs).
    plain = [e.ttfa_ms - VAD_MS for e in caller_turns
             if not e.interrupted and e.ttfa_ms is not None]
    assert abs(statistics.median(plain) - TTFT_MS) <= 25 * TIME_FACTOR, plain
