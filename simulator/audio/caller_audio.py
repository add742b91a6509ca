"""The caller's voice on the audio transports (``callsim run --caller-audio tts``).

Each caller turn is rendered with pyttsx3/espeak-ng in the persona's voice and sent through
the run's noise profile's line (:func:`~simulator.audio.chain.degrade_audio`), seeded per
call and turn. :func:`render_caller_turn` is the pure core; :class:`CallerAudio` renders a
run's turns in worker processes *before* the run clock starts (rendering on the event
loop, or in a thread holding the GIL, would show up as send jitter and loop lag) and hands
each call an async speech function. See docs/audio.md, "Caller audio on a call".
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.audio import dsp
from simulator.audio.chain import AudioParams, degrade_audio
from simulator.audio.render import call_voice, tts_synth, turn_clean_audio
from simulator.audio.render_cache import default_cache_dir
from simulator.audio.tts import ENGINES, TTS_SAMPLE_RATE, Voice, tts_available
from simulator.callscript import CallScript, Turn
from simulator.choices import pick_engine
from simulator.seeding import np_rng

CALLER_AUDIO_MODES = ("tts", "tones")


def resolve_caller_audio(requested: str | None) -> tuple[str, str | None]:
    """The caller-audio mode to use and a one-line notice (or None).

    ``None`` (the default) picks ``tts`` when pyttsx3/espeak-ng works here, else ``tones``
    with a notice saying why. An explicit ``tts`` that cannot run raises
    :class:`~simulator.errors.InputError` with the reason; ``tones`` is always available.
    """
    return pick_engine("--caller-audio", requested, CALLER_AUDIO_MODES, engine="tts",
                       fallback="tones", available=tts_available,
                       notice=lambda why: f"caller audio: synthetic tones ({why})")


def resolve_caller_voice(requested: str | None) -> tuple[str, str | None]:
    """The caller voice engine for ``--caller-audio tts`` and a one-line notice (or None).

    ``None`` (the default) picks ``piper`` (natural speech a recogniser hears like a
    recording) when Piper and its voice are installed, else ``espeak`` with a notice. An
    explicit engine that cannot run raises :class:`~simulator.errors.InputError`."""
    from simulator.audio.reference_voice import reference_voice_available

    return pick_engine("--caller-voice", requested, ENGINES, engine="piper", fallback="espeak",
                       available=reference_voice_available,
                       notice=lambda why: f"caller voice: espeak-ng ({why}); agents' "
                                          "recognisers hear it poorly")


def describe_caller_voice(engine: str) -> str:
    """What the run summary says about a run's caller voice."""
    if engine == "piper":
        from simulator.audio.reference_voice import VOICE_NAME

        return f"piper {VOICE_NAME}, rate and pitch per persona"
    return "espeak-ng, a voice per persona"


def spoken_text(turn: Turn) -> str:
    """What the caller actually says: the turn before text-level ASR noise
    (``clean_text``, with its disfluencies and self-corrections), else ``text``. On an
    audio call the agent's own recogniser makes the recognition errors."""
    return turn.clean_text if turn.clean_text is not None else turn.text


@dataclass(frozen=True)
class TurnAudio:
    """One rendered caller turn: the line's codec ``payload``, its codec and sample rate."""

    payload: bytes
    codec: str
    sample_rate: int = dsp.TELEPHONE_RATE

    def samples(self) -> np.ndarray:
        """The 8 kHz float32 samples the transports carry: bit-exact with the renderer on
        a telephone line; a wideband line's audio is resampled to 8 kHz (Twilio and the
        Realtime transport's audio path are narrowband, docs/audio.md)."""
        if self.codec == "pcm16":
            x = dsp.from_int16(np.frombuffer(self.payload, dtype="<i2"))
        else:
            x = dsp.decode(self.payload, self.codec)
        return dsp.resample(x, self.sample_rate, dsp.TELEPHONE_RATE)


def render_caller_turn(text: str, events: list[dict[str, Any]], voice: Voice,
                       params: AudioParams, seed: int, call_id: str, turn_index: int,
                       kind: str, take: int = 0, cache_dir: str | Path | None = None
                       ) -> TurnAudio:
    """``text`` spoken in ``voice`` (hesitations/silences from ``events`` placed as
    :func:`~simulator.audio.render.turn_clean_audio` places them), through the line
    ``params`` with a Generator seeded from (seed, call id, turn index, kind, take).
    ``take`` counts earlier renderings of the same turn in the call (a repeated answer is
    a new utterance on a new stretch of line). The turn's ``pause_before_s`` and DTMF
    stay with the call session, as for synthetic audio. Deterministic: the same arguments
    give the same bytes, rendered now or read from the TTS cache; raises
    :class:`~simulator.audio.tts.TTSUnavailableError` without a TTS engine."""
    turn = Turn(index=turn_index, kind="answer", text=text, events=events)
    clean, _ = turn_clean_audio(turn, voice, tts_synth(cache_dir))
    rng = np_rng(seed, "caller-audio", call_id, turn_index, kind, take)
    d = degrade_audio(clean, TTS_SAMPLE_RATE, params, rng)
    return TurnAudio(d.payload, d.codec, d.sample_rate)


def _barge_in_turns(turn: Turn) -> list[Turn]:
    return [Turn(index=turn.index, kind="barge_in", text=str(e.get("text") or "Sorry, wait."))
            for e in turn.events if e.get("type") == "barge_in"]


def _key(call_id: str, turn: Turn, take: int) -> tuple[str, int, str, str, int]:
    return (call_id, turn.index, turn.kind, spoken_text(turn), take)


def _worker_init() -> None:
    # Worker processes only render; keep them out of the way of the timed parent.
    try:
        os.nice(5)
    except OSError:
        pass


def _render_job(args: tuple[Any, ...]) -> TurnAudio:
    return render_caller_turn(*args)


class CallSpeech:
    """One call's caller audio: ``await speech(turn)`` gives 8 kHz float32 samples.

    Pre-rendered turns are returned at once; anything else (a re-spoken answer, a give-up
    line) is rendered in the run's worker processes, never on the event loop. Every
    rendering is remembered in :attr:`rendered` (turn index, kind, seconds, sha256 of the
    samples) for the call's transcript."""

    mode = "tts"

    def __init__(self, owner: CallerAudio, script: CallScript) -> None:
        self.owner = owner
        self.script = script
        self.voice = call_voice(script, owner.seed, owner.engine)
        self._takes: dict[tuple[int, str], int] = {}

    async def __call__(self, turn: Turn) -> np.ndarray:
        k = (turn.index, turn.kind)
        take = self._takes.get(k, 0)
        self._takes[k] = take + 1
        audio = await self.owner.get(self.script, self.voice, turn, take)
        return audio.samples()


class CallerAudio:
    """A run's TTS caller audio: worker processes, pre-rendering and a per-call
    :class:`CallSpeech`. ``params`` is the profile's line; ``seed`` the run seed;
    ``engine`` the voices ("piper" or "espeak", one voice per persona either way).
    Rendered turns are kept as codec bytes (8 kB per second of speech for G.711)."""

    def __init__(self, params: AudioParams, seed: int, *, cache_dir: str | Path | None = None,
                 workers: int | None = None, engine: str = "espeak") -> None:
        self.params = params
        self.seed = seed
        self.engine = engine  # "espeak" or "piper" (see resolve_caller_voice)
        self.cache_dir = str(cache_dir if cache_dir is not None else default_cache_dir())
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._done: dict[tuple[str, int, str, str, int], TurnAudio] = {}
        self._pending: dict[tuple[str, int, str, str, int], asyncio.Future[TurnAudio]] = {}
        self.misses = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork of a process running an event loop and its threads is unsafe.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init)
        return self._pool

    def _submit(self, script: CallScript, voice: Voice, turn: Turn, take: int
                ) -> asyncio.Future[TurnAudio]:
        key = _key(script.call_id, turn, take)
        fut = self._pending.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            args = (spoken_text(turn), list(turn.events), voice, self.params, self.seed,
                    script.call_id, turn.index, turn.kind, take, self.cache_dir)
            fut = self._pending[key] = loop.run_in_executor(self._executor(), _render_job, args)
        return fut

    async def prerender(self, scripts: Iterable[CallScript]) -> int:
        """Render every turn (and scripted barge-in line) of ``scripts``; returns how many.
        Raises :class:`~simulator.audio.tts.TTSUnavailableError` if rendering fails."""
        futs: list[tuple[tuple[str, int, str, str, int], asyncio.Future[TurnAudio]]] = []
        seen: set[str] = set()
        for script in scripts:
            if script.call_id in seen:
                continue
            seen.add(script.call_id)
            voice = call_voice(script, self.seed, self.engine)
            for turn in script.turns:
                for t in (turn, *_barge_in_turns(turn)):
                    key = _key(script.call_id, t, 0)
                    if key not in self._done:
                        futs.append((key, self._submit(script, voice, t, 0)))
        for key, fut in futs:
            self._done[key] = await fut
            self._pending.pop(key, None)
        return len(futs)

    async def get(self, script: CallScript, voice: Voice, turn: Turn, take: int) -> TurnAudio:
        key = _key(script.call_id, turn, take)
        got = self._done.get(key)
        if got is not None:
            return got
        self.misses += 1
        fut = self._submit(script, voice, turn, take)
        audio = await asyncio.shield(fut)
        self._done[key] = audio
        self._pending.pop(key, None)
        return audio

    def speech_for(self, script: CallScript) -> CallSpeech:
        """The speech function for one call of ``script``."""
        return CallSpeech(self, script)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

