"""Speech rendering: pyttsx3 over espeak-ng, installed by pip alone, cached by content hash.

The ``espeakng-loader`` wheel bundles libespeak-ng and its data. We load that library with
ctypes (by full path, so its soname ``libespeak-ng.so.1`` is already resident when
pyttsx3's driver asks for it) and set ``ESPEAK_DATA_PATH`` before pyttsx3 is imported. A
system libespeak-ng, when present, is used only if the wheel is missing.

pyttsx3's ``save_to_file`` + ``runAndWait`` returns as soon as espeak has *started*
synthesising (espeak calls back from its own thread), so long texts would be lost or written
under the next utterance's name. We therefore render one utterance per call, under a lock,
wait for the driver's ``finished-utterance`` notification, then for the WAV to exist with a
stable length, with a timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import hashlib
import importlib.metadata
import os
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from simulator.errors import CallsimError
from simulator.seeding import rng as seeded_rng

TTS_SAMPLE_RATE = 22_050

# English espeak-ng voices and voice variants ("+name"); every pair is a distinct timbre.
_BASE_VOICES = ("en-us", "en", "en-gb-scotland", "en-us-nyc", "en-029", "en-gb-x-rp")
_VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3")


class TTSUnavailableError(CallsimError):
    """Speech cannot be rendered here (no espeak-ng library, or the engine failed)."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice name (``en-us+f3``), a rate in words per minute and a pitch 0..99."""

    espeak_voice: str = "en-us"
    rate: int = 170
    pitch: int = 50

    def key(self) -> str:
        return f"{self.espeak_voice}|{self.rate}|{self.pitch}"


def voice_for(persona_key: str, seed: int = 0) -> Voice:
    """A deterministic, distinct voice for a persona (any stable string) and a seed."""
    r = seeded_rng("voice", persona_key, seed)
    base = r.choice(_BASE_VOICES)
    variant = r.choice(_VARIANTS)
    return Voice(f"{base}+{variant}", rate=r.randint(145, 195), pitch=r.randint(30, 70))


def voice_from_persona(voice_spec: dict[str, Any], persona_key: str, seed: int = 0) -> Voice:
    """The persona's voice: derived from ``persona_key`` and ``seed``, with any of
    ``espeak_voice``/``rate``/``pitch`` given in the persona's ``voice`` dict overriding."""
    base = voice_for(persona_key, seed)
    return Voice(
        espeak_voice=str(voice_spec.get("espeak_voice", base.espeak_voice)),
        rate=int(voice_spec.get("rate", base.rate)),
        pitch=int(voice_spec.get("pitch", base.pitch)),
    )


def default_cache_dir() -> Path:
    """``$CALLSIM_TTS_CACHE`` or ``~/.cache/callsim/tts``."""
    env = os.environ.get("CALLSIM_TTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "callsim" / "tts"


# --- engine loading ------------------------------------------------------------------------

_lock = threading.Lock()
_engine: Any = None
_engine_version: str | None = None
_load_error: str | None = None


def _load_library() -> str:
    """Make libespeak-ng resident and point espeak at its data. Returns a version string."""
    try:
        import espeakng_loader
    except ImportError:
        espeakng_loader = None
    if espeakng_loader is not None:
        lib_path = espeakng_loader.get_library_path()
        # espeak reads ESPEAK_DATA_PATH when initialised with path=NULL (pyttsx3 does so).
        os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
        lib = ctypes.CDLL(lib_path, mode=ctypes.RTLD_GLOBAL)
        source = f"espeakng-loader-{_dist_version('espeakng-loader')}"
    else:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1", mode=ctypes.RTLD_GLOBAL)
        except OSError:
            raise TTSUnavailableError(
                "TTS: no espeak-ng library: pip install espeakng-loader (or callsim[tts])"
            ) from None
        source = "system:libespeak-ng.so.1"
    info = lib.espeak_Info
    info.restype = ctypes.c_char_p
    info.argtypes = [ctypes.c_void_p]
    version = (info(None) or b"?").decode("ascii", "replace")
    return f"{source}:{version}"


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _get_engine() -> Any:
    """The process's pyttsx3 engine (espeak can be initialised only once per process)."""
    global _engine, _engine_version, _load_error
    if _engine is not None:
        return _engine
    if _load_error is not None:
        raise TTSUnavailableError(_load_error)
    try:
        lib_version = _load_library()
        import pyttsx3
        import pyttsx3.drivers.espeak as espeak_driver

        # The driver prints "Audio saved to ..." from espeak's thread; silence just that
        # module's print rather than swapping the process-wide sys.stdout.
        espeak_driver.print = lambda *a, **k: None
        engine = pyttsx3.init("espeak")
        _engine_version = f"pyttsx3-{_dist_version('pyttsx3')}|{lib_version}"
    except TTSUnavailableError as exc:
        _load_error = str(exc)
        raise
    except Exception as exc:  # any failure to load the engine means "no TTS here"
        _load_error = f"TTS: cannot start pyttsx3/espeak-ng: {type(exc).__name__}: {exc}"
        raise TTSUnavailableError(_load_error) from None
    _engine = engine
    atexit.register(_release_engine)
    return engine


def _release_engine() -> None:
    """Drop the engine while the interpreter is still whole: pyttsx3's ``__del__`` needs
    modules that are already torn down if it runs at the very end of shutdown."""
    global _engine
    _engine = None
    gc.collect()


def engine_version() -> str:
    """A string naming pyttsx3 and the espeak-ng build (part of every cache key)."""
    _get_engine()
    assert _engine_version is not None
    return _engine_version


def tts_available() -> tuple[bool, str]:
    """(True, version) when TTS works here, else (False, the one-line reason)."""
    try:
        return True, engine_version()
    except TTSUnavailableError as exc:
        return False, str(exc)


def _wav_frames(path: Path) -> int | None:
    """The frame count of the WAV at ``path`` when its length matches its header, else
    None (missing, truncated or still being written)."""
    try:
        size = path.stat().st_size
        with wave.open(str(path), "rb") as w:
            frames = w.getnframes()
            expected = frames * w.getsampwidth() * w.getnchannels()
    except (OSError, EOFError, wave.Error):
        return None
    return frames if size >= 44 + expected else None


def _wait_for_complete_file(path: Path, deadline: float) -> int:
    """Wait until the WAV exists, its length is stable and matches its header; returns
    its frame count (0 for the empty WAV pyttsx3 writes on a stale end-of-message)."""
    last = -1
    while True:
        size = path.stat().st_size if path.exists() else -1
        if size >= 44 and size == last:
            frames = _wav_frames(path)
            if frames is not None:
                return frames
        last = size
        if time.monotonic() > deadline:
            raise TTSUnavailableError(f"TTS: {path.name} not complete before timeout")
        time.sleep(0.002)


def _render_to_file(text: str, voice: Voice, path: Path, timeout_s: float) -> int:
    """One render of ``text`` to ``path``; returns the WAV's frame count."""
    engine = _get_engine()
    done = threading.Event()

    def on_finished(name: Any = None, completed: bool = True) -> None:
        done.set()

    token = engine.connect("finished-utterance", on_finished)
    try:
        engine.setProperty("voice", voice.espeak_voice)
        engine.setProperty("rate", voice.rate)
        engine.setProperty("pitch", voice.pitch)
        engine.save_to_file(text, str(path))
        engine.runAndWait()
        deadline = time.monotonic() + timeout_s
        if not done.wait(timeout_s):
            with contextlib.suppress(Exception):
                engine.stop()
            raise TTSUnavailableError(f"TTS: no end of utterance after {timeout_s:.0f} s")
        return _wait_for_complete_file(path, deadline)
    finally:
        engine.disconnect(token)


RENDER_ATTEMPTS = 3


def _render_nonempty(text: str, voice: Voice, path: Path, timeout_s: float) -> None:
    """:func:`_render_to_file`, again when it wrote no audio. pyttsx3's espeak driver
    writes the file on the first end-of-message event it sees, and now and then (about 1
    render in 200 here) that is a stale one from the previous utterance: the file is an
    empty WAV and this utterance's audio is dropped. Rendering again gets it."""
    for _ in range(RENDER_ATTEMPTS):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if _render_to_file(text, voice, path, timeout_s) > 0:
            return
    raise TTSUnavailableError(
        f"TTS: espeak-ng gave no audio for {text[:40]!r} in {RENDER_ATTEMPTS} attempts")


@dataclass(frozen=True)
class Rendered:
    """Rendered speech: float32 mono ``samples`` at ``sample_rate``; ``cached`` if reused."""

    samples: np.ndarray
    sample_rate: int
    cached: bool
    cache_key: str


def cache_key(text: str, voice: Voice) -> str:
    """sha256 of text, voice and engine version."""
    h = hashlib.sha256()
    for part in (text, voice.key(), engine_version()):
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def synthesize(
    text: str,
    voice: Voice | None = None,
    cache_dir: str | Path | None = None,
    timeout_s: float = 30.0,
    use_cache: bool = True,
) -> Rendered:
    """Render ``text`` with ``voice``; returns float32 mono at 22,050 Hz.

    Reuses ``<cache_dir>/<sha256>.wav`` when present (default :func:`default_cache_dir`).
    Empty text renders as 0 samples. Raises :class:`TTSUnavailableError` when espeak-ng
    cannot be loaded or an utterance does not complete within ``timeout_s``.
    """
    voice = voice or Voice()
    text = " ".join(text.split())
    key = cache_key(text, voice)
    if not text:
        return Rendered(np.zeros(0, dtype=np.float32), TTS_SAMPLE_RATE, False, key)
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cdir / f"{key[:2]}" / f"{key}.wav"
    if use_cache and target.exists():
        data, sr = sf.read(str(target), dtype="float32", always_2d=False)
        return Rendered(np.asarray(data, dtype=np.float32), int(sr), True, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        fd, tmp_name = tempfile.mkstemp(suffix=".wav", dir=str(target.parent))
        os.close(fd)
        tmp = Path(tmp_name)
        tmp.unlink()  # the driver must create it: existence is part of "complete"
        try:
            _render_nonempty(text, voice, tmp, timeout_s)
            data, sr = sf.read(str(tmp), dtype="float32", always_2d=False)
            if use_cache:
                os.replace(tmp, target)  # atomic: a reader never sees a partial WAV
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return Rendered(np.asarray(data, dtype=np.float32), int(sr), False, key)
