"""Background noise: synthetic beds registered by name, user WAV beds, SNR mixing, bursts.

Beds are synthesised in code from a seeded numpy Generator (babble, street, car, office,
plus white/pink), so no audio ships with callsim; a profile may also name ``.wav`` files.
Mixing sets the noise level so that the SNR over *active speech* hits the target, with an
optional slow drift of the local SNR around it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from simulator.audio.dsp import active_mask, active_power, resample
from simulator.errors import ProfileError
from simulator.registry import Registry

BedFn = Callable[[int, int, np.random.Generator], np.ndarray]
BEDS: Registry[BedFn] = Registry("noise bed")

# Nominal active speech level (ITU-T P.56 practice) used when a turn holds no speech.
NOMINAL_SPEECH_POWER = 10 ** (-26 / 10)


def _norm(x: np.ndarray) -> np.ndarray:
    p = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    return (x / np.sqrt(p) if p > 0 else x).astype(np.float32)


def _filt(x: np.ndarray, sr: int, kind: str, freqs: float | list[float], order: int = 2) -> Any:
    sos = signal.butter(order, freqs, btype=kind, fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _envelope(n: int, sr: int, rng: np.random.Generator, rate_hz: float, floor: float) -> Any:
    """A smooth positive random envelope varying at about ``rate_hz`` (interpolated knots)."""
    k = max(2, int(n / sr * rate_hz) + 2)
    knots = np.maximum(rng.random(k), floor)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by spectral shaping of white noise (unit power)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return _norm(np.fft.irfft(spec / np.sqrt(f), n))


@BEDS.register("white")
def white_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


@BEDS.register("pink")
def pink_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return pink(n, rng)


@BEDS.register("babble")
def babble_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _babble(n, sr, rng, talkers=6)


def _babble(n: int, sr: int, rng: np.random.Generator, talkers: int) -> np.ndarray:
    """Several talkers: each speech-shaped noise gated by a syllabic (~4 Hz) envelope and by
    phrase pauses, summed, then shaped by the long-term speech spectrum.

    A sum of independent Gaussian noises with envelopes e_k has, sample by sample, the
    distribution of one Gaussian noise times sqrt(sum e_k^2); we draw that one noise.
    """
    ctl_rate = 100  # envelopes are built at 100 Hz and interpolated
    m = max(2, int(n / sr * ctl_rate) + 2)
    power = np.zeros(m)
    for _ in range(talkers):
        k = max(2, int(m / ctl_rate * rng.uniform(3.0, 5.5)) + 2)
        syll = np.interp(np.linspace(0, k - 1, m), np.arange(k), rng.random(k)) ** 2
        kp = max(2, int(m / ctl_rate * 0.4) + 2)
        gate = np.interp(np.linspace(0, kp - 1, m), np.arange(kp), rng.random(kp)) > 0.3
        gate_s = np.convolve(gate.astype(np.float64), np.ones(5) / 5, mode="same")
        power += (syll * gate_s * rng.uniform(0.5, 1.0)) ** 2
    env = np.interp(np.linspace(0, m - 1, n), np.arange(m), np.sqrt(power))
    out = rng.standard_normal(n) * env
    # Long-term speech spectrum: band 100-4000 Hz with the -6 dB/oct tilt above ~500 Hz.
    shaped = _filt(out, sr, "bandpass", [100.0, min(4000.0, 0.45 * sr)])
    shaped = _filt(shaped, sr, "lowpass", 600.0, order=1) + 0.3 * shaped
    return _norm(shaped)


@BEDS.register("street")
def street_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Traffic rumble (brown-ish), passing vehicles (slow swells of road noise) and hiss."""
    rumble = _norm(_filt(rng.standard_normal(n), sr, "lowpass", 200.0))
    passing = _norm(_filt(rng.standard_normal(n), sr, "bandpass", [200.0, 2500.0]))
    swell = _envelope(n, sr, rng, rate_hz=0.15, floor=0.05) ** 3
    hiss = _norm(_filt(rng.standard_normal(n), sr, "highpass", 2000.0))
    return _norm(rumble + 1.5 * passing * swell + 0.15 * hiss)


@BEDS.register("car")
def car_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Cabin noise: engine harmonics of a slowly wandering firing frequency plus road noise."""
    f0 = rng.uniform(28.0, 45.0) * (1 + 0.05 * (_envelope(n, sr, rng, 0.2, 0.0) - 0.5))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    engine = sum(
        (0.8**h) * np.sin(h * phase + rng.uniform(0, 2 * np.pi)) for h in range(1, 7)
    )
    road = _norm(_filt(rng.standard_normal(n), sr, "lowpass", 400.0, order=2))
    wind = _norm(_filt(rng.standard_normal(n), sr, "bandpass", [400.0, 1500.0]))
    return _norm(_norm(np.asarray(engine)) + 1.2 * road + 0.2 * wind)


@BEDS.register("office")
def office_bed(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """HVAC hum and air (pink, low-passed), distant babble, and keyboard clicks."""
    t = np.arange(n) / sr
    air = _norm(_filt(pink(n, rng), sr, "lowpass", 1500.0))
    hum = 0.2 * np.sin(2 * np.pi * 50.0 * t) + 0.1 * np.sin(2 * np.pi * 100.0 * t)
    talk = 0.4 * _babble(n, sr, rng, talkers=3)
    clicks = np.zeros(n)
    n_clicks = rng.poisson(3.0 * n / sr)
    click = rng.standard_normal(int(0.004 * sr)) * np.exp(-np.linspace(0, 6, int(0.004 * sr)))
    for pos in rng.integers(0, max(1, n - len(click)), n_clicks):
        clicks[pos : pos + len(click)] += 2.0 * click
    return _norm(air + hum + talk + clicks)


def load_wav_bed(path: str | Path, sr: int) -> np.ndarray:
    """A user WAV bed as float32 mono at ``sr``. Raises ProfileError if unreadable."""
    p = Path(path)
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise ProfileError(f"{p}: cannot read noise bed: {exc}") from None
    mono = data.mean(axis=1)
    if len(mono) == 0:
        raise ProfileError(f"{p}: noise bed is empty")
    return resample(mono, int(file_sr), sr)


def load_wav_beds(directory: str | Path, sr: int) -> dict[str, np.ndarray]:
    """Every ``*.wav`` in ``directory`` by file stem (float32 mono at ``sr``)."""
    d = Path(directory)
    return {p.stem: load_wav_bed(p, sr) for p in sorted(d.glob("*.wav"))}


def make_bed(
    name: str, n: int, sr: int, rng: np.random.Generator, noise_dir: str | Path | None = None
) -> np.ndarray:
    """``n`` samples (unit power) of the bed ``name``: a built-in name, or a ``.wav`` path
    (relative paths resolve under ``noise_dir``). A WAV is looped from a random offset."""
    if name.lower().endswith(".wav"):
        p = Path(name)
        if not p.is_absolute() and noise_dir is not None:
            p = Path(noise_dir) / p
        bed = load_wav_bed(p, sr)
        start = int(rng.integers(0, len(bed)))
        reps = (start + n) // len(bed) + 1
        return _norm(np.tile(bed, reps)[start : start + n])
    try:
        fn = BEDS.get(name)
    except Exception as exc:
        raise ProfileError(f"audio.noise_beds: {exc}") from None
    return fn(n, sr, rng)


def mix_at_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    sr: int,
    snr_db: float,
    rng: np.random.Generator,
    drift_db: float = 0.0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Add ``noise`` to ``speech`` so the SNR over active speech frames is ``snr_db``.

    With ``drift_db`` > 0 the local SNR wanders slowly (knots every ~5 s) within about
    +-``drift_db`` around the target while the overall active SNR stays on target.
    Returns (mixed, record) with ``snr_db`` (achieved, active frames) and the local range.
    """
    n = len(speech)
    noise = np.asarray(noise[:n], dtype=np.float64)
    mask = active_mask(speech, sr)
    p_s = active_power(speech, sr, mask)
    if p_s <= 0:
        p_s, mask = NOMINAL_SPEECH_POWER, np.ones(len(mask), dtype=bool)
    if drift_db > 0:
        curve_db = drift_db * (2 * _envelope(n, sr, rng, rate_hz=0.2, floor=0.0) - 1)
        noise = noise * 10 ** (curve_db / 20)
    p_n = active_power(noise, sr, mask)
    if p_n <= 0:
        p_n = float(np.mean(noise * noise)) or 1.0
    gain = np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))
    scaled = noise * gain
    achieved = 10 * np.log10(p_s / max(active_power(scaled, sr, mask), 1e-20))
    record = {"snr_db": round(float(achieved), 3), "target_snr_db": round(float(snr_db), 3)}
    if drift_db > 0:
        record["drift_db"] = float(drift_db)
    return (speech + scaled).astype(np.float32), record


def _burst_shape(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "horn":
        f = rng.uniform(350, 500)
        y = np.sin(2 * np.pi * f * t) + 0.6 * np.sin(2 * np.pi * 1.26 * f * t)
        return np.asarray(y * np.minimum(1.0, t / 0.02))
    x = rng.standard_normal(n)
    if kind == "door":  # a thump: low-passed, fast decay
        return np.asarray(_filt(x, sr, "lowpass", 800.0) * np.exp(-t / 0.08))
    if kind == "cough":  # band noise with two quick pulses
        env = np.exp(-(((t - 0.05) / 0.03) ** 2)) + 0.7 * np.exp(-(((t - 0.2) / 0.04) ** 2))
        return np.asarray(_filt(x, sr, "bandpass", [300.0, 3000.0]) * env)
    return np.asarray(x * np.exp(-t / 0.05))  # clatter


BURST_KINDS = ("door", "cough", "horn", "clatter")


def add_bursts(
    x: np.ndarray,
    sr: int,
    per_min: float,
    level_db: tuple[float, float],
    rng: np.random.Generator,
    ref_power: float,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Add transient noises (door, cough, horn, clatter), Poisson at ``per_min``, each at a
    level uniform in ``level_db`` relative to ``ref_power`` (the active speech power).
    Returns (signal, events with time, kind and level)."""
    y = np.array(x, dtype=np.float32, copy=True)
    dur_min = len(x) / sr / 60.0
    count = int(rng.poisson(per_min * dur_min)) if per_min > 0 else 0
    events: list[dict[str, Any]] = []
    for _ in range(count):
        kind = BURST_KINDS[int(rng.integers(len(BURST_KINDS)))]
        length = int(rng.uniform(0.15, 0.6) * sr)
        start = int(rng.integers(0, max(1, len(x) - length)))
        shape = _burst_shape(kind, length, sr, rng)[: len(x) - start]
        level = float(rng.uniform(*level_db))
        p = float(np.mean(shape * shape)) or 1.0
        gain = np.sqrt(ref_power * 10 ** (level / 10) / p)
        y[start : start + len(shape)] += (shape * gain).astype(np.float32)
        events.append({"t_s": round(start / sr, 3), "kind": kind, "level_db": round(level, 2)})
    events.sort(key=lambda e: e["t_s"])
    return y, events
