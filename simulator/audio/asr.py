"""A real recogniser for the audio closed loop: pocketsphinx, offline, from its wheel alone.

The ``pocketsphinx`` wheel (the ``asr`` extra) ships a US-English acoustic model, a trigram
language model and CMUdict; nothing is downloaded at run time. :class:`Recogniser` wraps
one decoder per process (loading the model takes about a second) and turns float samples
at any rate into a lower-case transcript. See docs/audio.md, "Closed loop with pocketsphinx".
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from math import gcd
from typing import Any, Literal

import numpy as np
from scipy.signal import resample_poly

from simulator.errors import CallsimError

INSTALL_HINT = "pip install 'callsim[asr]'"
MODEL_RATE = 16_000  # the bundled en-us acoustic model was trained on 16 kHz speech

# Decoder settings. "fast" prunes harder (no second flat-lexicon pass, phone-loop
# lookahead, a cap on active HMMs); measured on the telephone-band TTS set it costs little
# accuracy for ~2x speed (docs/audio.md).
Preset = Literal["default", "fast"]
_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {"fwdflat": False, "pl_window": 10, "maxhmmpf": 3000, "beam": 1e-40,
             "wbeam": 1e-30},
}


class AsrUnavailableError(CallsimError):
    """The recogniser cannot run here (pocketsphinx is not installed or will not load)."""


def _import_pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError:
        raise AsrUnavailableError(
            f"ASR: pocketsphinx is not installed: {INSTALL_HINT}"
        ) from None
    return pocketsphinx


def asr_available() -> tuple[bool, str]:
    """(True, "pocketsphinx-<version>") when the recogniser can run here, else (False,
    the one-line reason, naming the install command)."""
    try:
        _import_pocketsphinx()
    except AsrUnavailableError as exc:
        return False, str(exc)
    try:
        version = importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return True, f"pocketsphinx-{version}"


def to_int16_at(samples: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Float samples in [-1, 1] at ``sr`` -> int16 at ``target_sr`` (polyphase resampling)."""
    x = np.asarray(samples, dtype=np.float64)
    if sr != target_sr:
        g = gcd(int(sr), int(target_sr))
        x = resample_poly(x, target_sr // g, sr // g)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


@dataclass(frozen=True)
class RecogniserConfig:
    """``preset``: "default" or "fast" decoder pruning; ``extra``: any further pocketsphinx
    Config keys (``lw``, ``beam``...), as (key, value) pairs."""

    preset: Preset = "fast"
    extra: tuple[tuple[str, Any], ...] = ()


class Recogniser:
    """pocketsphinx's bundled US-English model behind one method, :meth:`transcribe`.

    Telephone audio (8 kHz) is upsampled to the model's 16 kHz: the 4-8 kHz band is simply
    empty, which the model tolerates better than a retuned 8 kHz front end (measured, see
    docs/audio.md). One decoder is used per instance, under a lock; :func:`get_recogniser`
    keeps one instance per process and config.

    Raises :class:`AsrUnavailableError` (a :class:`CallsimError`, one line) when
    pocketsphinx is not installed.
    """

    def __init__(self, config: RecogniserConfig | None = None) -> None:
        ps = _import_pocketsphinx()
        self.config = config or RecogniserConfig()
        kwargs: dict[str, Any] = {**_PRESETS[self.config.preset], **dict(self.config.extra)}
        try:
            self._decoder = ps.Decoder(samprate=MODEL_RATE, loglevel="FATAL", **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise AsrUnavailableError(f"ASR: pocketsphinx decoder failed to start: {exc}") from None
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, sr: int) -> str:
        """The recognised words of one utterance (float samples at ``sr``), lower case,
        space-separated; "" for silence or when nothing is recognised."""
        pcm = to_int16_at(samples, sr, MODEL_RATE)
        if pcm.size == 0:
            return ""
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""


_recognisers: dict[RecogniserConfig, Recogniser] = {}
_recognisers_lock = threading.Lock()


def get_recogniser(config: RecogniserConfig | None = None) -> Recogniser:
    """The process's :class:`Recogniser` for ``config`` (created on first use)."""
    key = config or RecogniserConfig()
    with _recognisers_lock:
        rec = _recognisers.get(key)
        if rec is None:
            rec = _recognisers[key] = Recogniser(key)
        return rec


def transcribe(samples: np.ndarray, sr: int, config: RecogniserConfig | None = None) -> str:
    """:meth:`Recogniser.transcribe` on the process's shared recogniser."""
    return get_recogniser(config).transcribe(samples, sr)
