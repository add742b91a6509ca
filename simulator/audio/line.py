"""The telephone line's signal side: 20 ms frames at 8 kHz, their level, voicing and an
energy VAD, and synthetic caller speech. Pure functions over samples (no sockets): the audio
call loop, the audio transports and the reference agent's voice endpoints share them."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from simulator.audio import dsp
from simulator.callscript import Turn

SR = dsp.TELEPHONE_RATE
FRAME_S = 0.020
FRAME_SAMPLES = 160
# A 20 ms frame whose RMS is below this (dBFS) is silence: above mu-law idle noise and
# a -45 dB line-noise floor, well below speech (about -26 dBFS active level).
VOICED_DBFS = -40.0


def frame_dbfs(pcm: np.ndarray) -> float:
    """RMS level of float32 samples in dBFS (-inf for digital silence)."""
    if len(pcm) == 0:
        return -math.inf
    p = float(np.mean(np.square(pcm, dtype=np.float64)))
    return 10 * math.log10(p) if p > 0 else -math.inf


# Squared linear value of every mu-law code: a frame's power is one table lookup + mean
# (this runs for every agent frame of every call, on the event loop).
_MULAW_POWER = (dsp.ulaw2lin(np.arange(256, dtype=np.uint8)).astype(np.float64) / 32768.0) ** 2


def is_voiced_mulaw(payload: bytes, threshold_dbfs: float = VOICED_DBFS) -> bool:
    """True when mu-law ``payload`` carries sound above ``threshold_dbfs``."""
    if not payload:
        return False
    # sum / n is what .mean() computes, at half the cost (no wrapper per call)
    p = float(_MULAW_POWER.take(np.frombuffer(payload, dtype=np.uint8)).sum()) / len(payload)
    return p > 10 ** (threshold_dbfs / 10)


_VOICED_POWER_INT16 = 10 ** (VOICED_DBFS / 10) * 32768.0**2


def is_voiced_int16_scale(samples: np.ndarray) -> bool:
    """:func:`is_voiced_mulaw` for samples already on the line as numbers in int16 units
    (a Realtime agent's audio filtered to 8 kHz, before the mu-law step): the same
    threshold, on the samples' own power (a frame within the codec's quantisation of the
    threshold may fall either way)."""
    n = len(samples)
    return n > 0 and float(np.dot(samples, samples)) / n > _VOICED_POWER_INT16


def synthetic_speech(
    n_words: int, *, seconds_per_word: float = 0.3, min_s: float = 0.2, f0_hz: float = 140.0,
    sr: int = SR,
) -> np.ndarray:
    """A deterministic stand-in for speech: a voiced tone (f0 plus harmonics) at about
    -20 dBFS with a 4 Hz syllable envelope that never drops to silence, lasting
    ``max(min_s, n_words * seconds_per_word)``. Used when TTS is off (load tests)."""
    dur = max(min_s, n_words * seconds_per_word)
    n = int(round(dur * sr))
    t = np.arange(n) / sr
    voice = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in (1, 2, 3, 4))
    env = 0.65 + 0.35 * np.sin(2 * np.pi * 4.0 * t)
    ramp = min(int(0.01 * sr), n // 2)
    if ramp:
        env[:ramp] *= np.linspace(0, 1, ramp)
        env[n - ramp:] *= np.linspace(1, 0, ramp)
    return (0.1 * voice * env).astype(np.float32)


class SyntheticSpeech:
    """A :data:`SpeechFn` giving each turn :func:`synthetic_speech` of its word count
    (cached per word count: under load, synthesis must not stall the event loop). The
    ``tones`` caller audio of ``callsim run --caller-audio tones``."""

    mode = "tones"

    def __init__(self, seconds_per_word: float = 0.3, min_s: float = 0.2) -> None:
        self.seconds_per_word = seconds_per_word
        self.min_s = min_s
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, turn: Turn) -> np.ndarray:
        n = len(turn.text.split())
        if n not in self._cache:
            self._cache[n] = synthetic_speech(n, seconds_per_word=self.seconds_per_word,
                                              min_s=self.min_s)
        return self._cache[n]


def fit_to_duration(pcm: np.ndarray, seconds: float, gap_s: float = 0.15,
                    sr: int = SR) -> np.ndarray:
    """``pcm`` said again (after ``gap_s`` of silence) until it lasts at least ``seconds``:
    a caller talking over the agent for a scripted time keeps repeating the same words.
    Never cuts an utterance short."""
    n = int(round(seconds * sr))
    if len(pcm) == 0 or len(pcm) >= n:
        return pcm
    gap = np.zeros(int(round(gap_s * sr)), dtype=np.float32)
    parts = [pcm]
    total = len(pcm)
    while total < n:
        parts += [gap, pcm]
        total += len(gap) + len(pcm)
    return np.concatenate(parts).astype(np.float32)


def samples_sha256(samples: np.ndarray) -> str:
    """sha256 of float32 samples: the caller audio of a turn, before framing."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def voiced_chunks(pcm: np.ndarray, chunk_samples: int,
                  threshold_dbfs: float = VOICED_DBFS) -> list[bool]:
    """Per ``chunk_samples`` chunk of ``pcm`` (last one zero-padded): is it voiced?"""
    n = -(-len(pcm) // chunk_samples)
    if n == 0:
        return []
    x = np.zeros(n * chunk_samples, dtype=np.float64)
    x[: len(pcm)] = pcm
    power = np.mean(np.square(x.reshape(n, chunk_samples)), axis=1)
    thr = 10 ** (threshold_dbfs / 10)
    return [bool(v) for v in power > thr]


class EnergyVAD:
    """Energy end-pointer over 20 ms frames: speech starts at the first voiced frame and
    ends at the ``hangover_frames``-th consecutive silent frame after speech.

    ``feed`` returns ``"start"``, ``"end"`` or None for each frame."""

    def __init__(self, hangover_ms: float = 500.0, threshold_dbfs: float = VOICED_DBFS) -> None:
        self.hangover = max(1, int(round(hangover_ms / 20.0)))
        self.threshold = threshold_dbfs
        self.in_speech = False
        self.voiced = False  # was the last frame fed voiced?
        self._silent = 0

    def feed(self, pcm: np.ndarray) -> str | None:
        voiced = self.voiced = frame_dbfs(pcm) > self.threshold
        if voiced:
            self._silent = 0
            if not self.in_speech:
                self.in_speech = True
                return "start"
            return None
        if self.in_speech:
            self._silent += 1
            if self._silent >= self.hangover:
                self.in_speech = False
                self._silent = 0
                return "end"
        return None
