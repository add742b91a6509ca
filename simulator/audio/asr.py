"""A real recogniser for the audio closed loop: pocketsphinx, offline, from its wheel alone.

The ``pocketsphinx`` wheel (the ``asr`` extra) ships a US-English acoustic model, a trigram
language model and CMUdict; nothing is downloaded at run time. :class:`Recogniser` wraps
one decoder per process (loading the model takes about a second) and turns float samples
at any rate into a lower-case transcript. See docs/audio.md, "Closed loop with pocketsphinx".
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from dataclasses import dataclass
from math import gcd
from typing import Any, Literal

import numpy as np
from scipy.signal import resample_poly

from simulator.errors import CallsimError

INSTALL_HINT = "pip install 'callsim[asr]'"
MODEL_RATE = 16_000  # the bundled en-us acoustic model was trained on 16 kHz speech
# The recogniser's input is never digitally silent. espeak-ng renders pauses as exact
# zeros, and a line with no noise bed (the `clean` profile) passes them on; pocketsphinx's
# front end (log mel energies, batch cepstral mean normalisation) was trained on recorded
# speech and loses about half the words it otherwise hears when a quarter of the frames
# sit at its log floor (docs/audio.md). A white floor at the level G.712 allows a PCM
# channel's idle noise (-65 dBm0, about -68 dBFS for G.711) removes that: it is ~45 dB
# under the speech, and below every profile's own noise bed, so it only matters where
# there is none. It also fills the empty 4-8 kHz band of upsampled telephone audio.
NOISE_FLOOR_DBFS = -70.0

# Decoder settings. "fast" prunes harder (no second flat-lexicon pass, phone-loop
# lookahead, a cap on active HMMs); measured on the telephone-band TTS set it costs little
# accuracy for ~2x speed (docs/audio.md).
Preset = Literal["default", "fast"]
# "generic": the wheel's en-us.lm.bin; "domain": a trigram over the persona packs' caller
# text (simulator.audio.lm), which is what a deployed voice agent's recogniser would have;
# "listener": a trigram over what the packs' agents say plus their callers' words (callsim
# hearing an agent, simulator.audio.listener).
LanguageModel = Literal["generic", "domain", "listener"]
LANGUAGE_MODELS: tuple[str, ...] = ("generic", "domain", "listener")
# The recognisers whose models ship inside a wheel: pocketsphinx (fast, words in lower case,
# tuned by a language model) and Moonshine (about six times the CPU; cased, punctuated text
# with numerals, and far fewer errors on names and street names).
Engine = Literal["pocketsphinx", "moonshine"]
MOONSHINE_HINT = "pip install moonshine-cpp (or 'callsim[asr]')"
# Shorter input is padded with silence to this (0.25 s at 16 kHz): 20 ms aborts Moonshine.
MOONSHINE_MIN_SAMPLES = 4000
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


def _resample(samples: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if sr != target_sr:
        g = gcd(int(sr), int(target_sr))
        x = resample_poly(x, target_sr // g, sr // g)
    return x


def to_int16_at(samples: np.ndarray, sr: int, target_sr: int,
                noise_floor_dbfs: float | None = None) -> np.ndarray:
    """Float samples in [-1, 1] at ``sr`` -> int16 at ``target_sr`` (polyphase resampling).
    ``noise_floor_dbfs``: add white noise of that RMS (re full scale) first, from
    a Generator seeded by the length, so the same input gives the same samples."""
    x = _resample(samples, sr, target_sr)
    if noise_floor_dbfs is not None and x.size:
        x = x + np.random.default_rng(x.size).standard_normal(x.size) * 10 ** (
            noise_floor_dbfs / 20)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


@dataclass(frozen=True)
class RecogniserConfig:
    """``preset``: "default" or "fast" decoder pruning; ``noise_floor_dbfs``: the white
    floor added to every input (see ``NOISE_FLOOR_DBFS``); ``lm``: "generic" (pocketsphinx's
    en-us LM) or "domain" (built from ``lm_calls`` persona calls generated with
    ``lm_seed``, cached in ``lm_cache_dir``, see :mod:`simulator.audio.lm`); ``extra``: any
    further pocketsphinx Config keys (``lw``, ``beam``...), as (key, value) pairs."""

    preset: Preset = "fast"
    extra: tuple[tuple[str, Any], ...] = ()
    lm: LanguageModel = "generic"
    lm_seed: int | None = None  # None: simulator.audio.lm.LM_SEED
    lm_calls: int | None = None  # None: simulator.audio.lm.LM_CALLS
    lm_cache_dir: str | None = None
    noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS  # None: feed digital silence as is
    # "pocketsphinx" (the fields above apply) or "moonshine" (Moonshine base, English: an
    # encoder-decoder model inside the moonshine-cpp wheel; none of the fields above apply).
    engine: Engine = "pocketsphinx"


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
        if self.config.lm not in LANGUAGE_MODELS:
            raise ValueError(f"lm: expected one of {', '.join(LANGUAGE_MODELS)}, "
                             f"got {self.config.lm!r}")
        self.domain_lm = None
        if self.config.lm == "domain" and "lm" not in kwargs:
            from simulator.audio import lm

            self.domain_lm = lm.build_domain_lm(
                os.path.join(ps.get_model_path(), "en-us", "cmudict-en-us.dict"),
                self.config.lm_cache_dir,
                calls=self.config.lm_calls or lm.LM_CALLS,
                seed=lm.LM_SEED if self.config.lm_seed is None else self.config.lm_seed)
            kwargs["lm"] = str(self.domain_lm.path)
        elif self.config.lm == "listener" and "lm" not in kwargs:
            from simulator.audio import lm

            self.domain_lm = lm.build_listener_lm(
                os.path.join(ps.get_model_path(), "en-us", "cmudict-en-us.dict"),
                self.config.lm_cache_dir,
                calls=self.config.lm_calls or lm.LISTENER_CALLS,
                seed=lm.LM_SEED if self.config.lm_seed is None else self.config.lm_seed)
            kwargs["lm"] = str(self.domain_lm.path)
        try:
            self._decoder = ps.Decoder(samprate=MODEL_RATE, loglevel="FATAL", **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise AsrUnavailableError(f"ASR: pocketsphinx decoder failed to start: {exc}") from None
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, sr: int) -> str:
        """The recognised words of one utterance (float samples at ``sr``), lower case,
        space-separated; "" for silence or when nothing is recognised."""
        pcm = to_int16_at(samples, sr, MODEL_RATE, self.config.noise_floor_dbfs)
        if pcm.size == 0:
            return ""
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""


def moonshine_available() -> tuple[bool, str]:
    """(True, "") when Moonshine can run here, else (False, why)."""
    try:
        import moonshine_cpp  # noqa: F401  (loads its libraries)
    except ImportError:
        return False, f"Moonshine is not installed: {MOONSHINE_HINT}"
    except OSError as exc:
        return False, f"Moonshine's library will not load: {exc}"
    return True, ""


class MoonshineRecogniser:
    """Moonshine base (English) from the ``moonshine-cpp`` wheel, whose model and ONNX
    runtime are inside it, behind :meth:`transcribe`. Its library is called directly
    through ctypes (the wheel's Python ``transcribe`` wrapper does not run); a call releases
    the GIL and runs on one core, about 0.16 s per second of speech here.

    Raises :class:`AsrUnavailableError` when the wheel is missing or will not load."""

    def __init__(self, config: RecogniserConfig | None = None) -> None:
        ok, why = moonshine_available()
        if not ok:
            raise AsrUnavailableError(f"ASR: {why}")
        import moonshine_cpp

        self.config = config or RecogniserConfig(engine="moonshine")
        self._lib = moonshine_cpp.moonshine_lib
        self._model = moonshine_cpp.MoonshineModel()
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, sr: int) -> str:
        """What was said in one utterance (float samples at ``sr``), as Moonshine writes it
        (cased, punctuated, numerals); "" when nothing is recognised."""
        import ctypes

        if samples.size == 0:
            return ""
        x = np.ascontiguousarray(_resample(samples, sr, MODEL_RATE), dtype=np.float32)
        if len(x) < MOONSHINE_MIN_SAMPLES:
            # Its encoder's convolutions abort the process on a few ms of input.
            x = np.concatenate([x, np.zeros(MOONSHINE_MIN_SAMPLES - len(x), np.float32)])
        out = ctypes.c_char_p(0)
        with self._lock:
            err = self._lib.moonshine_transcribe(
                self._model.model_handle, x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                len(x), ctypes.byref(out))
            if err != 0:
                raise AsrUnavailableError(f"ASR: Moonshine failed on an utterance (error {err})")
            try:
                text = (out.value or b"").decode("utf-8", "replace")
            finally:
                self._lib.moonshine_free_text(out)
        return " ".join(text.split())


_recognisers: dict[RecogniserConfig, Recogniser | MoonshineRecogniser] = {}
_recognisers_lock = threading.Lock()


def get_recogniser(config: RecogniserConfig | None = None
                   ) -> Recogniser | MoonshineRecogniser:
    """The process's recogniser for ``config`` (created on first use): a pocketsphinx
    :class:`Recogniser`, or a :class:`MoonshineRecogniser` for ``engine="moonshine"``."""
    key = config or RecogniserConfig()
    with _recognisers_lock:
        rec = _recognisers.get(key)
        if rec is None:
            rec = _recognisers[key] = (MoonshineRecogniser(key) if key.engine == "moonshine"
                                       else Recogniser(key))
        return rec


def transcribe(samples: np.ndarray, sr: int, config: RecogniserConfig | None = None) -> str:
    """:meth:`Recogniser.transcribe` on the process's shared recogniser."""
    return get_recogniser(config).transcribe(samples, sr)
