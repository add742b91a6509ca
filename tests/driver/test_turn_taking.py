"""The caller takes turns like a person on the phone, against small Twilio-protocol agents
on 127.0.0.1 that send real mu-law audio: it waits for a slow greeting, says "Hello? Are
you still there?" into a silence and then gives up with a categorised failure, counts the
agent talking over it and its ``clear`` events, and takes an agent's hang-up as the end of
the call. With the listener, it hears what the agent said and is graded from it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from simulator.agent_profile import Prices
from simulator.audio import dsp
from simulator.audio.line import SyntheticSpeech, is_voiced_mulaw, synthetic_speech
from simulator.callscript import CallScript
from simulator.driver.audio_call import TurnTaking, run_audio_call
from simulator.driver.session import CallRun
from simulator.metrics.grading import grade_call
from simulator.personas import Caller, generate_calls, load_packs
from simulator.transports.base import Deadlines
from simulator.transports.twilio import TwilioTransport, agent_clear, agent_media
from tests.conftest import serve_app

PACKS = load_packs()
Behaviour = Callable[["Agent"], Awaitable[None]]


def _script(turns: int = 2) -> CallScript:
    s = generate_calls(PACKS, "salon", 1, 1)[0]
    return s.model_copy(update={"turns": s.turns[:turns]})


def _voiced_frames(seconds: float) -> list[bytes]:
    words = max(1, round(seconds / 0.3))
    return dsp.frames_mulaw_20ms(synthetic_speech(words, seconds_per_word=0.3))


class Agent:
    """One Media Streams call seen from the agent's side: what the caller sent (voiced
    frames with their arrival times) and helpers to speak (paced 20 ms frames) and wait."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.sid = ""
        self.voiced_at: list[float] = []   # arrival time of each voiced caller frame
        self.started = asyncio.Event()
        self.utterances = 0                # caller utterances (voiced after >= 0.5 s silence)
        self.ended: asyncio.Queue[float] = asyncio.Queue()  # one entry per utterance end
        self._last_voiced = 0.0
        self._in_utterance = False

    async def speak(self, frames: list[bytes]) -> tuple[float, float]:
        t0 = time.perf_counter()
        nxt = t0
        for f in frames:
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            await self.ws.send_str(agent_media(self.sid, f))
            nxt += 0.020
        return t0, time.perf_counter()

    async def caller_turn_end(self) -> None:
        """Wait for the next end of a caller utterance (0.4 s of silence after voice)."""
        await self.ended.get()

    def on_media(self, payload: bytes) -> None:
        now = time.perf_counter()
        if is_voiced_mulaw(payload):
            if now - self._last_voiced > 0.5:
                self.utterances += 1
            self.voiced_at.append(now)
            self._last_voiced = now
            self._in_utterance = True
        elif self._in_utterance and now - self._last_voiced > 0.4:
            self._in_utterance = False
            self.ended.put_nowait(now)


async def _call(behaviour: Behaviour, tt: TurnTaking, *, script: CallScript | None = None,
                listener: Any = None, first_byte_s: float = 30.0,
                speech_s_per_word: float = 0.1) -> tuple[CallRun, Agent]:
    seen: list[Agent] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        agent = Agent(ws)
        seen.append(agent)
        task: asyncio.Task[None] | None = None
        async for msg in ws:
            obj = json.loads(msg.data)
            if obj["event"] == "start":
                agent.sid = obj["streamSid"]
                task = asyncio.create_task(behaviour(agent))
                task.add_done_callback(lambda _t: None)
            elif obj["event"] == "media":
                import base64

                agent.on_media(base64.b64decode(obj["media"]["payload"]))
            elif obj["event"] == "stop":
                break
        if task is not None:
            task.cancel()
        return ws

    app = web.Application()
    app.router.add_get("/twilio", handler)
    script = script or _script()
    async with serve_app(app) as url:
        transport = TwilioTransport(url.replace("http", "ws") + "/twilio")

        async def no_tools(*_a: Any) -> tuple[str, None]:
            return "{}", None

        try:
            run = await run_audio_call(
                script, Caller(script, PACKS[script.pack]), transport, no_tools,
                deadlines=Deadlines(first_byte_s=first_byte_s, call_s=60.0),
                run_t0_ns=time.perf_counter_ns(), speech=SyntheticSpeech(speech_s_per_word),
                turn_taking=tt, listener=listener)
        finally:
            await transport.aclose()
    return run, seen[0]


async def test_a_silent_agent_gets_a_reprompt_then_a_categorised_failure() -> None:
    async def silent(agent: Agent) -> None:
        await asyncio.sleep(3600)

    tt = TurnTaking(greeting_wait_s=0.3, reprompt_after_s=1.0, reprompts=1)
    run, agent = await _call(silent, tt)
    # Not a 30 s first_byte_timeout: the caller said hello into the silence, once, then
    # gave up as the options say.
    assert run.error == "agent_silent", run.error_detail
    assert [e[0] for e in run.events].count("reprompt") == 1
    assert [c["kind"] for c in run.transcript["caller"]] == ["opening", "reprompt"]
    assert run.transcript["caller"][1]["text"] == "Hello? Are you still there?"
    assert run.transcript["audio"]["reprompts"] == 1
    # The agent really heard two utterances: the opening and the re-prompt.
    assert agent.utterances == 2
    assert (run.finished_ns - run.started_ns) / 1e9 < 30.0


async def test_without_reprompts_the_silent_agent_fails_after_the_silence() -> None:
    async def silent(agent: Agent) -> None:
        await asyncio.sleep(3600)

    run, agent = await _call(silent, TurnTaking(greeting_wait_s=0.0, reprompt_after_s=0.8,
                                                reprompts=0))
    assert run.error == "agent_silent" and agent.utterances == 1
    assert "reprompt" not in [e[0] for e in run.events]


async def _slow_greeter(agent: Agent, log: dict[str, float]) -> None:
    await asyncio.sleep(3.0)  # a bot that takes 3 s to greet
    log["greet_start"], log["greet_end"] = await agent.speak(_voiced_frames(1.5))
    while True:  # then answer each caller turn briefly
        await agent.caller_turn_end()
        await agent.speak(_voiced_frames(0.6))


@pytest.mark.parametrize("wait_s, talked_over", [(5.0, False), (2.0, True)],
                         ids=["greeting-wait-5s", "greeting-wait-2s"])
async def test_a_bot_that_greets_after_3_s_is_not_talked_over_when_the_caller_waits(
        wait_s: float, talked_over: bool) -> None:
    log: dict[str, float] = {}
    run, agent = await _call(lambda a: _slow_greeter(a, log),
                             TurnTaking(greeting_wait_s=wait_s, agent_silence_s=0.4),
                             speech_s_per_word=0.3)
    assert run.error is None, run.error_detail
    assert "greet_end" in log
    first_voice = agent.voiced_at[0]
    if talked_over:
        # The old fixed 2 s window: the caller was already speaking when the bot greeted,
        # and callsim counted the bot starting to talk over it.
        assert first_voice < log["greet_start"]
        assert run.transcript["audio"]["talk_overs"] >= 1
    else:
        # Waiting up to 5 s: the caller let the greeting start and finish, then spoke.
        assert first_voice > log["greet_end"]
        assert run.transcript["audio"]["talk_overs"] == 0
        assert run.exchanges[0].phase == "greeting" and run.exchanges[0].agent_speech_s > 1.0


async def test_an_agent_hang_up_after_speaking_is_a_normal_end_and_clears_are_counted(
        ) -> None:
    async def hangs_up(agent: Agent) -> None:
        await agent.speak(_voiced_frames(0.6))  # greeting
        await agent.caller_turn_end()
        await agent.speak(_voiced_frames(0.4))
        await agent.ws.send_str(agent_clear(agent.sid))  # it interrupts itself
        await agent.speak(_voiced_frames(0.6))  # "goodbye"
        await asyncio.sleep(0.1)
        await agent.ws.close()

    run, _agent = await _call(hangs_up, TurnTaking(greeting_wait_s=2.0, agent_silence_s=1.5),
                              script=_script(3))
    assert run.error is None, run.error_detail
    assert ("agent_hung_up", {}) in run.events
    assert run.transcript["audio"]["agent_hung_up"]
    assert run.transcript["audio"]["clears"] == 1
    caller_turns = [e for e in run.exchanges if e.phase == "caller"]
    assert sum(e.clears or 0 for e in caller_turns) == 1


@pytest.mark.timeout(300)
async def test_the_listener_hears_a_refusal_and_grading_uses_it() -> None:
    pytest.importorskip("pocketsphinx")
    from simulator.audio.listener import Listener
    from simulator.audio.reference_voice import reference_voice_available, synthesize_reference

    if not reference_voice_available()[0]:
        pytest.skip("Piper reference voice not installed")

    def frames(text: str) -> list[bytes]:
        r = synthesize_reference(text)
        return dsp.frames_mulaw_20ms(dsp.resample(r.samples, r.sample_rate, 8000))

    greeting = frames("Thank you for calling. How can I help you today?")
    refusal = frames("I'm sorry, I couldn't find a record matching that phone number.")

    async def refuses(agent: Agent) -> None:
        await agent.speak(greeting)
        await agent.caller_turn_end()
        await agent.speak(refusal)
        await asyncio.sleep(0.3)
        await agent.ws.close()  # and it hangs up

    script = next(c for c in generate_calls(PACKS, "salon", 40, 3) if not c.record_exists)
    script = script.model_copy(update={"turns": script.turns[:1]})
    listener = Listener(1)
    try:
        run, _agent = await _call(refuses, TurnTaking(greeting_wait_s=3.0), script=script,
                                  listener=listener)
    finally:
        listener.close()
    assert run.error is None, run.error_detail
    greet, answer = run.exchanges[0], run.exchanges[1]
    assert greet.phase == "greeting" and greet.text_source == "audio"
    assert "help you today" in (greet.heard_text or "")
    assert answer.text_source == "audio" and answer.listen_ms is not None
    assert "find a record" in (answer.heard_text or ""), answer.heard_text
    assert run.transcript["agent_source"] == "audio"
    outcome, _ = grade_call(script, run.transcript, call_id="c", profile="none", ok=True,
                            error=None, ttft_ms=run.ttft_ms, prices=Prices(),
                            write_tools=set())
    assert outcome.refused and outcome.graded_from == "audio"
    # No usage on Twilio: the cost is the profile's per-minute voice rate, flagged.
    assert outcome.cost_basis == "per_minute" and outcome.cost_estimated
