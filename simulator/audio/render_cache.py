"""Rendered speech and its cache, shared by the espeak-ng voices (:mod:`simulator.audio.tts`)
and the Piper voice (:mod:`simulator.audio.reference_voice`): one WAV per content hash under
``$CALLSIM_TTS_CACHE``, written atomically and read back, so a fresh render and a cached one
are the same samples."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from simulator.errors import CallsimError


class TTSUnavailableError(CallsimError):
    """Speech cannot be rendered here (no espeak-ng library, or the engine failed)."""


def default_cache_dir() -> Path:
    """``$CALLSIM_TTS_CACHE`` or ``~/.cache/callsim/tts``."""
    env = os.environ.get("CALLSIM_TTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "callsim" / "tts"


@dataclass(frozen=True)
class Rendered:
    """Rendered speech: float32 mono ``samples`` at ``sample_rate``; ``cached`` if reused."""

    samples: np.ndarray
    sample_rate: int
    cached: bool
    cache_key: str


def cache_key_of(*parts: str) -> str:
    """sha256 of ``parts``, separated (so ("ab", "c") and ("a", "bc") differ)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def cached_render(key: str, cache_dir: str | Path | None, use_cache: bool,
                  render: Callable[[Path], None]) -> Rendered:
    """``<cache_dir>/<key[:2]>/<key>.wav`` when present (default :func:`default_cache_dir`),
    else ``render(path)`` writes the WAV to a temporary path, which is read back (so a
    fresh render and a cached one are the same samples) and moved into place atomically."""
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cdir / f"{key[:2]}" / f"{key}.wav"
    if use_cache and target.exists():
        data, sr = sf.read(str(target), dtype="float32", always_2d=False)
        return Rendered(np.asarray(data, dtype=np.float32), int(sr), True, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".wav", dir=str(target.parent))
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        render(tmp)
        data, sr = sf.read(str(tmp), dtype="float32", always_2d=False)
        if use_cache:
            os.replace(tmp, target)  # atomic: a reader never sees a partial WAV
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return Rendered(np.asarray(data, dtype=np.float32), int(sr), False, key)
