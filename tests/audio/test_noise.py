"""Noise beds and SNR mixing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from simulator.audio.noise import BEDS, add_bursts, make_bed, mix_at_snr
from simulator.errors import ProfileError

SR = 22_050


def _measured_snr(clean: np.ndarray, mixed: np.ndarray) -> float:
    """SNR over the frames where the clean signal is non-zero, from the noise actually
    present in the mix (mixed - clean)."""
    frame = SR // 50
    k = len(clean) // frame
    c = clean[: k * frame].reshape(k, frame).astype(np.float64)
    nz = (mixed[: k * frame] - clean[: k * frame]).reshape(k, frame).astype(np.float64)
    active = np.abs(c).max(axis=1) > 0
    return 10 * math.log10(np.mean(c[active] ** 2) / np.mean(nz[active] ** 2))


@pytest.mark.parametrize("bed", ["babble", "street", "car", "office", "pink"])
@pytest.mark.parametrize("target", [0.0, 15.0, 25.0])
def test_mixed_snr_over_active_speech_is_within_half_a_db(
    speech: np.ndarray, bed: str, target: float
) -> None:
    rng = np.random.default_rng(3)
    noise = make_bed(bed, len(speech), SR, rng)
    mixed, rec = mix_at_snr(speech, noise, SR, target, rng, drift_db=0.0)
    assert abs(_measured_snr(speech, mixed) - target) < 0.5
    assert abs(rec["snr_db"] - target) < 0.5


def test_drift_moves_local_snr_but_keeps_the_average(speech: np.ndarray) -> None:
    long = np.tile(speech, 5)  # 30 s
    rng = np.random.default_rng(5)
    noise = make_bed("pink", len(long), SR, rng)
    mixed, _ = mix_at_snr(long, noise, SR, 15.0, rng, drift_db=3.0)
    assert abs(_measured_snr(long, mixed) - 15.0) < 0.5
    halves = [
        _measured_snr(long[i : i + len(speech)], mixed[i : i + len(speech)])
        for i in range(0, len(long), len(speech))
    ]
    assert max(halves) - min(halves) > 1.0  # the local SNR really wanders


def test_beds_are_seeded_and_distinct() -> None:
    a = make_bed("babble", SR, SR, np.random.default_rng(1))
    b = make_bed("babble", SR, SR, np.random.default_rng(1))
    c = make_bed("babble", SR, SR, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_car_bed_energy_is_mostly_low_frequency() -> None:
    x = make_bed("car", 2 * SR, SR, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    assert spec[f < 500].sum() > 0.8 * spec.sum()


def test_user_wav_bed_is_loaded_resampled_and_looped(tmp_path: Path) -> None:
    tone = np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000).astype(np.float32)
    sf.write(tmp_path / "hum.wav", tone, 16000)
    bed = make_bed("hum.wav", 3 * SR, SR, np.random.default_rng(0), noise_dir=tmp_path)
    assert len(bed) == 3 * SR
    f = np.fft.rfftfreq(len(bed), 1 / SR)
    assert abs(f[np.argmax(np.abs(np.fft.rfft(bed)))] - 1000) < 2


def test_unknown_bed_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="babble"):
        make_bed("jungle", 100, SR, np.random.default_rng(0))
    assert {"babble", "street", "car", "office"} <= set(BEDS.names())


def test_bursts_follow_the_rate_and_levels(speech: np.ndarray) -> None:
    x = np.zeros(SR * 600, dtype=np.float32)  # 10 minutes of silence
    y, events = add_bursts(x, SR, 6.0, (-5.0, 10.0), np.random.default_rng(0), 0.01)
    assert 40 <= len(events) <= 80  # Poisson(60)
    assert all(-5.0 <= e["level_db"] <= 10.0 for e in events)
    assert np.abs(y).max() > 0
