"""The reference agent's audio endpoints: end-pointing, replies without text hints, and
protocol errors, on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import numpy as np
import pytest

from simulator.agent.voice import VoiceAgentConfig, create_voice_app
from simulator.audio.line import EnergyVAD, SyntheticSpeech, synthetic_speech
from simulator.driver.audio_call import run_audio_call
from simulator.errors import InputError
from simulator.personas import Caller, generate_calls
from simulator.transports.base import Deadlines
from simulator.transports.twilio import TwilioTransport
from tests.agent.voice_harness import PACKS, voice_config
from tests.conftest import serve_app


def test_vad_ends_speech_at_the_hangover_th_silent_frame() -> None:
    vad = EnergyVAD(hangover_ms=100)
    speech = synthetic_speech(3, seconds_per_word=0.1)
    frames = [speech[i:i + 160] for i in range(0, len(speech) - 159, 160)]
    events = [vad.feed(f) for f in frames]
    assert events[0] == "start" and events.count("start") == 1 and "end" not in events
    silent = [vad.feed(np.zeros(160, dtype=np.float32)) for _ in range(6)]
    assert silent == [None, None, None, None, "end", None]


def test_an_unknown_stt_mode_is_a_user_error() -> None:
    with pytest.raises(InputError, match="--stt"):
        VoiceAgentConfig(stt="whisper")


async def test_without_text_hints_the_agent_still_answers_every_utterance() -> None:
    script = generate_calls(PACKS, "salon", 1, 5)[0]
    script = script.model_copy(update={"turns": script.turns[:2]})
    async with serve_app(create_voice_app(voice_config(), PACKS)) as url:
        transport = TwilioTransport(url.replace("http", "ws") + "/twilio")

        async def no_tools(*_a: object) -> tuple[str, None]:
            return "{}", None

        try:
            run = await run_audio_call(
                script, Caller(script, PACKS[script.pack]), transport, no_tools,
                deadlines=Deadlines(first_byte_s=3.0, call_s=30.0),
                run_t0_ns=time.perf_counter_ns(), speech=SyntheticSpeech(0.04),
                agent_silence_s=0.25, greeting_wait_s=2.0)
        finally:
            await transport.aclose()
    assert run.error is None, run.error_detail
    assert [e[0] for e in run.events][:1] == ["greeting"]
    # No words travel on the wire: the agent's turns (the greeting, then one per
    # utterance) are timed from its audio alone.
    assert [e.phase for e in run.exchanges] == ["greeting", "caller", "caller"]
    assert all(e.ttfa_ms is not None and e.agent_speech_s > 0 and e.text == ""
               for e in run.exchanges)


async def test_garbage_on_the_twilio_endpoint_closes_the_stream() -> None:
    async with serve_app(create_voice_app(voice_config(), PACKS)) as url, \
            aiohttp.ClientSession() as http, \
            http.ws_connect(url.replace("http", "ws") + "/twilio") as ws:
        await ws.send_str("this is not a Media Streams message")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1003


async def _one_call(agent_kw: dict[str, object], tt: object) -> object:
    script = generate_calls(PACKS, "salon", 1, 5)[0]
    script = script.model_copy(update={"turns": script.turns[:2]})
    async with serve_app(create_voice_app(voice_config(**agent_kw), PACKS)) as url:
        transport = TwilioTransport(url.replace("http", "ws") + "/twilio", text_hints=True)

        async def no_tools(*_a: object) -> tuple[str, None]:
            return "{}", None

        try:
            return await run_audio_call(
                script, Caller(script, PACKS[script.pack]), transport, no_tools,
                deadlines=Deadlines(first_byte_s=30.0, call_s=60.0),
                run_t0_ns=time.perf_counter_ns(), speech=SyntheticSpeech(0.04),
                turn_taking=tt)  # type: ignore[arg-type]
        finally:
            await transport.aclose()


async def test_the_silent_reference_agent_gets_a_reprompt_then_the_call_fails_as_silent(
        ) -> None:
    from simulator.driver.turntaking import TurnTaking

    run: Any = await _one_call({"silent": True},
                               TurnTaking(greeting_wait_s=0.5, reprompt_after_s=1.0))
    assert run.error == "agent_silent", run.error_detail
    assert [e[0] for e in run.events] == ["no_greeting", "reprompt"]


async def test_a_slow_greeting_is_waited_for_and_heard_out(
        ) -> None:
    from simulator.driver.turntaking import TurnTaking

    run: Any = await _one_call({"greet_delay_ms": 3000.0},
                               TurnTaking(greeting_wait_s=5.0, agent_silence_s=0.25))
    assert run.error is None, run.error_detail
    greeting = run.exchanges[0]
    assert greeting.phase == "greeting" and greeting.ttfa_ms >= 3000.0
    assert run.transcript["audio"]["talk_overs"] == 0
    # The caller spoke only once the greeting had played out.
    assert run.exchanges[1].sent_s > greeting.sent_s + greeting.agent_end_ms / 1000.0
