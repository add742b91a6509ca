"""Issue 4, audio path: `callsim run --caller-audio tts` speaks each caller turn with TTS
through the profile's line, and the reference agent in pocketsphinx mode hears it, answers
what it heard and speaks with TTS; on 127.0.0.1, Twilio and Realtime."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.agent.voice import SPEECH_KEY, create_voice_app, resolve_stt
from simulator.audio.caller_audio import CallerAudio, resolve_caller_voice, spoken_text
from simulator.audio.chain import AudioParams
from simulator.audio.line import SyntheticSpeech, samples_sha256
from simulator.degradation import degrade_calls, get_profile
from simulator.personas import generate_calls
from simulator.storage.store import RunStore
from simulator.transports.twilio import TwilioTransport
from tests.agent.voice_harness import PACKS, call_reference, script_with_tool_and_barge_in
from tests.conftest import serve_app

pytest.importorskip("pyttsx3")
pytest.importorskip("pocketsphinx")

SEED = 3
PROFILE = "typical_call"
# Words a user would not count as "the agent understood something".
STOP = {"the", "and", "you", "for", "that", "this", "with", "are", "can", "have", "i'm", "its",
        "it's", "was", "but", "not", "all", "him", "her", "his", "she", "they", "what", "one"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 3 and w not in STOP}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scripts(n: int = 1) -> list[Any]:
    calls = generate_calls(PACKS, "salon", n, SEED)
    return degrade_calls(calls, get_profile(PROFILE), SEED)


def _energy_above(x: np.ndarray, hz: float, sr: int = 8000) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[f > hz].sum() / max(spec.sum(), 1e-12))


async def test_tts_caller_audio_is_speech_and_the_same_seed_gives_the_same_bytes(
        tmp_path: Path) -> None:
    script = _scripts()[0]
    params = AudioParams.from_dict(get_profile(PROFILE).audio.model_dump())
    got: list[list[str]] = []
    for seed in (SEED, SEED, SEED + 1):
        ca = CallerAudio(params, seed, cache_dir=tmp_path / "tts", workers=1)
        try:
            await ca.prerender([script])
            speech = ca.speech_for(script)
            audio = [await speech(t) for t in script.turns]
        finally:
            ca.close()
        got.append([samples_sha256(a) for a in audio])
        if seed == SEED:
            tones = SyntheticSpeech()
            for t, a in zip(script.turns, audio, strict=True):
                n = len(spoken_text(t).split())
                # Speech, not a tone: its length follows the voice's rate (not 0.3 s a
                # word exactly) and its energy reaches the upper telephone band.
                assert 0.15 * n < len(a) / 8000 < 1.2 * n + 1.5
                assert abs(len(a) - len(tones(t))) > 80
                assert _energy_above(a, 1000) > 0.05
                assert _energy_above(tones(t), 1000) < 0.01
    assert got[0] == got[1]           # same seed: byte-identical caller audio
    assert got[0] != got[2]           # another seed: another line (noise, losses)


async def test_barge_in_still_stops_the_agent_when_it_hears(tmp_path: Path) -> None:
    from simulator.audio.listener import Listener

    script = script_with_tool_and_barge_in(onset_s=0.3)
    # The caller hears the agent (no words on the wire): without a listener it would answer
    # blind, past the agent's goodbye.
    listener = Listener(1)
    try:
        run = await call_reference(lambda u: TwilioTransport(u), script,
                                   greeting_wait_s=6.0, path="/twilio", listener=listener,
                                   # tones the agent cannot understand: it re-asks until the
                                   # caller's patience runs out, a few turns of recognition.
                                   call_s=240.0,
                                   # espeak-ng: renders in tens of ms where Piper takes
                                   # seconds on a loaded box; this test is about barge-in.
                                   agent_kw={"stt": "pocketsphinx", "ttft_ms": 0.0,
                                             "voice": "espeak"})
    finally:
        listener.close()
    assert run.error is None, (run.error_detail, run.events,
                               [(e.phase, e.text) for e in run.exchanges])
    barge = [e for e in run.events if e[0] == "barge_in"]
    assert len(barge) == 1 and barge[0][1]["cleared"], run.events
    assert [e for e in run.exchanges if e.phase == "caller"][0].interrupted


def test_auto_stt_means_pocketsphinx_when_installed() -> None:
    assert resolve_stt("auto") == ("pocketsphinx", None)
    assert resolve_stt("none") == ("none", None)


@pytest.mark.parametrize("transport", ["twilio", "openai-realtime"])
async def test_cli_run_with_tts_caller_against_the_hearing_agent(
        transport: str, tmp_path: Path) -> None:
    relay = _free_port()
    from simulator.agent.voice import VoiceAgentConfig

    app = create_voice_app(VoiceAgentConfig(ttft_ms=0.0, vad_silence_ms=500.0,
                                            stt="pocketsphinx",
                                            tools_url=f"http://127.0.0.1:{relay}"), PACKS)
    env_cache = tmp_path / "tts"
    async with serve_app(app) as url:
        path = "/twilio" if transport == "twilio" else "/v1/realtime"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "--target",
            url.replace("http://", "ws://") + path, "--transport", transport,
            "--caller-audio", "tts", "--profile", PROFILE, "--pack", "salon", "--count", "1",
            "--concurrency", "1", "--seed", str(SEED), "--tools-port", str(relay),
            "--no-pauses", "--runs-dir", str(tmp_path / "runs"), "--json",
            # The agent recognises, decides and speaks (Piper) on a shared 2-core box:
            # give it time before the caller says "hello?".
            "--reprompt-after", "25",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**__import__("os").environ, "CALLSIM_TTS_CACHE": str(env_cache)})
        out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert summary["calls"]["ok"] == 1, err.decode()[-2000:]
    store = RunStore(Path(summary["run_dir"]))
    call = next(store.calls())
    store_turns = list(store.turns())
    store.close()
    tr = call["transcript"]
    assert tr["audio"]["caller_audio"] == "tts"
    caller = [c for c in tr["caller"] if c["kind"] != "barge_in"]
    heard = [e for e in app[SPEECH_KEY].heard if e["endpoint"] in transport]
    assert len(caller) >= 2 and len(heard) >= 2
    # The agent heard words the caller said (pocketsphinx is weak on espeak voices: one turn
    # with a shared content word is what we ask), and answered what it heard.
    said = set().union(*(_words(c["clean_text"] or c["text"]) for c in caller))
    assert any(_words(e["heard"]) & said for e in heard), (heard, caller)
    assert all(e["reply"] is not None for e in heard)
    # No words on the wire: on Twilio callsim's listener heard the agent's speech; Realtime
    # carries the agent's transcript.
    assert tr["agent_source"] == ("audio" if transport == "twilio" else "text")
    turns = [t for t in store_turns if t["phase"] in ("greeting", "caller")]
    assert turns and all(t["text_source"] == tr["agent_source"] for t in turns
                         if t["agent_speech_s"])
    if transport == "twilio":
        assert any("calling" in (t["heard_text"] or "") for t in turns), turns
        # `callsim export` carries each turn's heard text and timings.
        exp = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "export", summary["run_dir"], "--format",
            "jsonl", stdout=asyncio.subprocess.PIPE)
        exported, _ = await asyncio.wait_for(exp.communicate(), 60)
        assert exp.returncode == 0
        rows = [json.loads(x) for x in exported.decode().splitlines()]
        ex_turns = [r for r in rows if r["record"] == "turn"]
        assert [r["heard_text"] for r in ex_turns] == [t["heard_text"] for t in store_turns]
        assert all("listen_ms" in r and "agent_end_ms" in r and "talk_overs" in r
                   for r in ex_turns)
    # The call went somewhere sensible: a tool call, or the agent closing the call.
    agent_said = " ".join(tr["agent"]).lower()
    assert tr["tool_calls"] or "goodbye" in agent_said or "anything else" in agent_said
    # The caller audio is the same bytes the library renders for this seed.
    script = _scripts()[0]
    params = AudioParams.from_dict(get_profile(PROFILE).audio.model_dump())
    # in the voice `callsim run` picked (Piper when installed: --caller-voice's default)
    engine = resolve_caller_voice(None)[0]
    ca = CallerAudio(params, SEED, cache_dir=env_cache, workers=1, engine=engine)
    try:
        speech = ca.speech_for(script)
        first = next(c for c in tr["caller"] if c["index"] == 0)
        assert samples_sha256(await speech(script.turns[0])) == first["audio_sha256"]
    finally:
        ca.close()
