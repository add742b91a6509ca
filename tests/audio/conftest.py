from __future__ import annotations

import numpy as np
import pytest


def speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A speech stand-in: voiced harmonic bursts of 100-400 ms with exact silent gaps,
    aligned to 20 ms frames so 'active' frames are unambiguous."""
    rng = np.random.default_rng(seed)
    frame = sr // 50
    n_frames = int(seconds * 50)
    x = np.zeros(n_frames * frame, dtype=np.float32)
    i = 0
    while i < n_frames:
        on = int(rng.integers(5, 20))
        f0 = rng.uniform(100, 220)
        t = np.arange(min(on, n_frames - i) * frame) / sr
        burst = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12))
        x[i * frame : i * frame + len(t)] = 0.1 * burst * rng.uniform(0.5, 1.0)
        i += on + int(rng.integers(3, 15))
    return x


@pytest.fixture
def speech() -> np.ndarray:
    return speechlike(6.0, 22_050)
