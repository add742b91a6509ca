"""Caller turns to degraded telephone audio: the library behind ``callsim render``.

A turn's clean audio is: its ``pause_before_s`` of silence, its speech (split where the
degradation layer placed hesitations/silences, see docs/audio.md), then its DTMF digits.
That whole line then goes through :func:`degrade_audio`, so silence carries line noise and
DTMF tones cross the band-pass and codec as they would on a real call.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from simulator.audio import dsp
from simulator.audio.chain import AudioParams, DegradedAudio, degrade_audio
from simulator.audio.tts import TTS_SAMPLE_RATE, Voice, synthesize, voice_from_persona
from simulator.callscript import CallScript, Turn
from simulator.seeding import np_rng

# (text, voice) -> (float32 samples, sample rate); the real one is pyttsx3 via synthesize().
SynthFn = Callable[[str, Voice], tuple[np.ndarray, int]]

SILENCE_EVENTS = ("hesitation", "silence", "pause", "long_silence")
MANIFEST_NAME = "manifest.json"


def tts_synth(cache_dir: str | Path | None = None) -> SynthFn:
    """The pyttsx3/espeak-ng synthesiser with its content-hash cache in ``cache_dir``."""

    def synth(text: str, voice: Voice) -> tuple[np.ndarray, int]:
        r = synthesize(text, voice, cache_dir=cache_dir)
        return r.samples, r.sample_rate

    return synth


@dataclass(frozen=True)
class Silence:
    """A silence placed before word ``at_word`` of the turn's text."""

    at_word: int
    seconds: float


def silences_of(turn: Turn) -> list[Silence]:
    """Hesitations/silences the degradation layer recorded in ``turn.events``: entries with
    ``type`` (or ``kind``) in :data:`SILENCE_EVENTS`, ``duration_s`` (or ``seconds``) and an
    optional ``at_word`` (default 0: before the first word)."""
    out: list[Silence] = []
    for ev in turn.events:
        kind = ev.get("type", ev.get("kind"))
        if kind not in SILENCE_EVENTS:
            continue
        secs = ev.get("duration_s", ev.get("seconds"))
        if not isinstance(secs, int | float) or secs <= 0:
            continue
        at = ev.get("at_word", 0)
        out.append(Silence(int(at) if isinstance(at, int | float) else 0, float(secs)))
    return sorted(out, key=lambda s: s.at_word)


def turn_clean_audio(
    turn: Turn, voice: Voice, synth: SynthFn, sr: int = TTS_SAMPLE_RATE
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The clean line audio of one caller turn at ``sr`` and its timeline of segments
    (``kind`` pause/speech/hesitation/dtmf, ``start_s``, ``duration_s``)."""
    parts: list[np.ndarray] = []
    timeline: list[dict[str, Any]] = []
    pos = 0

    def put(kind: str, audio: np.ndarray, **extra: Any) -> None:
        nonlocal pos
        if len(audio) == 0:
            return
        parts.append(audio.astype(np.float32))
        timeline.append(
            {"kind": kind, "start_s": round(pos / sr, 4), "duration_s": round(len(audio) / sr, 4)}
            | extra
        )
        pos += len(audio)

    put("pause", dsp.silence(sr, turn.pause_before_s))
    words = turn.text.split()
    cuts = silences_of(turn)
    start = 0
    for cut in [*cuts, None]:
        end = len(words) if cut is None else max(start, min(cut.at_word, len(words)))
        if end > start:
            audio, got_sr = synth(" ".join(words[start:end]), voice)
            put("speech", dsp.resample(audio, got_sr, sr), words=[start, end])
            start = end
        if cut is not None:
            put("hesitation", dsp.silence(sr, cut.seconds))
    if turn.dtmf:
        put("dtmf", dsp.dtmf_sequence(turn.dtmf, sr), digits=turn.dtmf)
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return audio, timeline


def call_voice(call: CallScript, seed: int, engine: str = "espeak") -> Voice:
    """The caller's voice in ``engine`` ("espeak" or "piper"): from the persona's ``voice``
    dict, else derived from the persona (pack/name) and ``seed``."""
    return voice_from_persona(call.persona.voice, f"{call.pack}/{call.persona.name}", seed,
                              engine)


def render_turn(
    call: CallScript,
    turn: Turn,
    params: AudioParams,
    seed: int,
    synth: SynthFn,
) -> tuple[DegradedAudio, list[dict[str, Any]]]:
    """One caller turn through TTS and the line; deterministic in (seed, call id, turn)."""
    clean, timeline = turn_clean_audio(turn, call_voice(call, seed), synth)
    rng = np_rng(seed, "audio", call.call_id, turn.index)
    return degrade_audio(clean, TTS_SAMPLE_RATE, params, rng), timeline


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "call"


def render_calls(
    calls: Sequence[CallScript],
    audio_params: AudioParams,
    out_dir: str | Path,
    seed: int,
    synth: SynthFn | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Write one 8 kHz 16-bit PCM WAV per caller turn under ``out_dir`` and a
    ``manifest.json`` (call id, turn index, file, duration, voice, timeline and every
    degradation applied). Same calls, params and seed give the same bytes.

    ``synth`` defaults to pyttsx3/espeak-ng cached in ``cache_dir``. Returns the manifest
    path. Raises :class:`~simulator.audio.tts.TTSUnavailableError` if speech cannot be
    rendered, :class:`~simulator.errors.ProfileError` for a bad noise bed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    synth = synth or tts_synth(cache_dir)
    entries: list[dict[str, Any]] = []
    for call in calls:
        voice = call_voice(call, seed)
        for turn in call.turns:
            degraded, timeline = render_turn(call, turn, audio_params, seed, synth)
            name = f"{_safe(call.call_id)}_t{turn.index:03d}.wav"
            pcm = dsp.to_int16(degraded.samples)
            sf.write(str(out / name), pcm, degraded.sample_rate, subtype="PCM_16", format="WAV")
            entries.append(
                {
                    "call_id": call.call_id,
                    "turn_index": turn.index,
                    "file": name,
                    "duration_s": round(degraded.duration_s, 4),
                    "sample_rate": degraded.sample_rate,
                    "text": turn.text,
                    "voice": dataclasses.asdict(voice),
                    "timeline": timeline,
                    "applied": degraded.applied,
                }
            )
    manifest = {
        "schema_version": 1,
        "seed": seed,
        "params": dataclasses.asdict(audio_params),
        "turns": entries,
    }
    path = out / MANIFEST_NAME
    path.write_text(
        json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return path
