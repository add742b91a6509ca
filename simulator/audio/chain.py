"""The telephone-line degradation chain, driven by a noise profile's ``audio`` section.

Order (docs/audio.md): speech effects (reverb), background noise at an SNR, bursts, clipping,
telephony (band-pass, resample to 8 kHz, G.711), packet loss with concealment. Every random
choice comes from the Generator passed in, and everything applied is recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simulator.audio import dsp
from simulator.audio.noise import NOMINAL_SPEECH_POWER, add_bursts, make_bed, mix_at_snr
from simulator.degradation.profile import line_rate_problem
from simulator.errors import ProfileError

Range = tuple[float, float]
Codec = Literal["mulaw", "alaw", "pcm16"]


def _range(where: str, v: Any, default: Range | None) -> Range | None:
    if v is None:
        return default
    if isinstance(v, int | float):
        return (float(v), float(v))
    if isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        lo, hi = float(v[0]), float(v[1])
        if lo > hi:
            raise ProfileError(f"audio.{where}: range [{lo}, {hi}] has lo > hi")
        return (lo, hi)
    raise ProfileError(f"audio.{where}: expected a number or [lo, hi], got {v!r}")


@dataclass(frozen=True)
class AudioParams:
    """What to do to the audio. Ranges are sampled once per turn from the turn's Generator.

    ``snr_db`` None means no background bed; ``noise_beds`` are built-in names or ``.wav``
    paths (relative to ``noise_dir``), one picked per turn. ``sample_rate`` is the line's:
    8 kHz telephony, or 16 kHz wideband (``pcm16`` only). Raises :class:`ProfileError`
    for a G.711 codec on a wideband line.
    """

    snr_db: Range | None = None
    snr_drift_db: float = 2.0
    noise_beds: tuple[str, ...] = ("babble",)
    noise_dir: str | None = None
    bursts_per_min: Range = (0.0, 0.0)
    burst_level_db: Range = (-5.0, 10.0)
    clipping_fraction: Range = (0.0, 0.0)
    rt60_s: Range | None = None
    packet_loss: float = 0.0
    burst_ms: float = 100.0
    codec: Codec = "mulaw"
    bandpass: bool = True
    sample_rate: int = dsp.TELEPHONE_RATE

    def __post_init__(self) -> None:
        problem = line_rate_problem(self.codec, self.sample_rate)
        if problem:
            raise ProfileError(f"audio.{problem}")

    @classmethod
    def clean(cls) -> AudioParams:
        """Telephone band and mu-law only: no noise, no loss."""
        return cls()

    @classmethod
    def from_dict(cls, audio: Any, noise_dir: str | Path | None = None) -> AudioParams:
        """From a profile's ``audio`` section: a dict, a pydantic model or a dataclass.

        Keys (as in ``noise_profiles/*.yaml``): ``snr_db``, ``snr_drift_db``,
        ``noise_beds`` (or ``noise_bed``), ``noise_dir``, ``bursts: {per_min, level_db}``,
        ``clipping_fraction``, ``rt60_s``, ``packet_loss: {rate, mean_burst_ms}`` (or a
        number plus ``burst_ms``), ``codec``, ``band_pass`` (or ``bandpass``),
        ``sample_rate``.
        Raises :class:`ProfileError` naming the field on anything else.
        """
        if audio is None:
            return cls()
        if hasattr(audio, "model_dump"):
            audio = audio.model_dump()
        elif dataclasses.is_dataclass(audio) and not isinstance(audio, type):
            audio = dataclasses.asdict(audio)
        if not isinstance(audio, Mapping):
            raise ProfileError(f"audio: expected a mapping, got {type(audio).__name__}")
        d = dict(audio)
        kw: dict[str, Any] = {}
        if "snr_db" in d:
            kw["snr_db"] = _range("snr_db", d.pop("snr_db"), None)
        if "snr_drift_db" in d:
            kw["snr_drift_db"] = float(d.pop("snr_drift_db"))
        beds = d.pop("noise_beds", None) or d.pop("noise_bed", None)
        d.pop("noise_bed", None)
        if beds:
            kw["noise_beds"] = (beds,) if isinstance(beds, str) else tuple(str(b) for b in beds)
        nd = d.pop("noise_dir", None) or noise_dir
        if nd is not None:
            kw["noise_dir"] = str(nd)
        bursts = d.pop("bursts", None)
        if bursts is not None:
            if not isinstance(bursts, Mapping):
                raise ProfileError("audio.bursts: expected {per_min: [lo, hi], level_db: [lo, hi]}")
            b = dict(bursts)
            kw["bursts_per_min"] = _range("bursts.per_min", b.pop("per_min", None), (0.0, 0.0))
            kw["burst_level_db"] = _range("bursts.level_db", b.pop("level_db", None), (-5.0, 10.0))
            if b:
                raise ProfileError(f"audio.bursts: unknown field {sorted(b)[0]!r}")
        if "clipping_fraction" in d:
            kw["clipping_fraction"] = _range(
                "clipping_fraction", d.pop("clipping_fraction"), (0.0, 0.0)
            )
        if "rt60_s" in d:
            kw["rt60_s"] = _range("rt60_s", d.pop("rt60_s"), None)
        loss = d.pop("packet_loss", None)
        if isinstance(loss, Mapping):
            pl = dict(loss)
            kw["packet_loss"] = float(pl.pop("rate", 0.0))
            kw["burst_ms"] = float(pl.pop("mean_burst_ms", pl.pop("burst_ms", 100.0)))
            if pl:
                raise ProfileError(f"audio.packet_loss: unknown field {sorted(pl)[0]!r}")
        elif loss is not None:
            kw["packet_loss"] = float(loss)
        if "burst_ms" in d:
            kw["burst_ms"] = float(d.pop("burst_ms"))
        if "codec" in d:
            codec = d.pop("codec")
            if codec not in ("mulaw", "alaw", "pcm16"):
                raise ProfileError(f"audio.codec: expected mulaw, alaw or pcm16, got {codec!r}")
            kw["codec"] = codec
        for key in ("band_pass", "bandpass"):
            if key in d:
                kw["bandpass"] = bool(d.pop(key))
        if "sample_rate" in d:
            kw["sample_rate"] = d.pop("sample_rate")  # checked with the codec, below
        if d:
            raise ProfileError(f"audio: unknown field {sorted(d)[0]!r}")
        if not 0.0 <= kw.get("packet_loss", 0.0) < 1.0:
            raise ProfileError("audio.packet_loss.rate: expected 0 <= rate < 1")
        return cls(**kw)


@dataclass(frozen=True)
class DegradedAudio:
    """The line's output: float32 ``samples`` at the line's rate (8 kHz unless wideband;
    what the far end decodes, with loss concealed), the codec ``payload`` bytes of those
    samples, and ``applied``: a JSON-ready record of every stage (achieved SNR, bursts,
    clipping, frames lost, ...)."""

    samples: np.ndarray
    sample_rate: int
    codec: str
    payload: bytes
    applied: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _pick(r: Range, rng: np.random.Generator) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def degrade_audio(
    samples: np.ndarray, sr: int, params: AudioParams, rng: np.random.Generator
) -> DegradedAudio:
    """Run the whole chain on float32 mono ``samples`` at ``sr``; returns audio at the
    line's rate (``params.sample_rate``: 8 kHz, or 16 kHz for a wideband line).

    The same input, params and Generator state give the same bytes.
    """
    x = np.asarray(samples, dtype=np.float32)
    applied: dict[str, Any] = {"input_sr": sr, "input_s": round(len(x) / sr, 4)}
    mask = dsp.active_mask(x, sr)
    p_speech = dsp.active_power(x, sr, mask) or NOMINAL_SPEECH_POWER

    # 1. speech effects
    if params.rt60_s is not None and params.rt60_s[1] > 0:
        rt60 = _pick(params.rt60_s, rng)
        x = dsp.reverb(x, sr, rt60, rng)
        applied["rt60_s"] = round(rt60, 3)

    # 2. background noise at an SNR over active speech
    if params.snr_db is not None and len(x):
        bed = params.noise_beds[int(rng.integers(len(params.noise_beds)))]
        target = _pick(params.snr_db, rng)
        noise = make_bed(bed, len(x), sr, rng, params.noise_dir)
        x, rec = mix_at_snr(x, noise, sr, target, rng, params.snr_drift_db)
        applied["noise"] = {"bed": bed, **rec}

    # 3. bursts
    if params.bursts_per_min[1] > 0 and len(x):
        rate = _pick(params.bursts_per_min, rng)
        x, events = add_bursts(x, sr, rate, params.burst_level_db, rng, p_speech)
        applied["bursts"] = {"per_min": round(rate, 3), "events": events}

    # 4. clipping
    if params.clipping_fraction[1] > 0:
        frac = _pick(params.clipping_fraction, rng)
        x, got = dsp.clip(x, frac)
        applied["clipping"] = {"target_fraction": round(frac, 4), "fraction": round(got, 4)}
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.99:  # keep the line out of accidental saturation (clipping is explicit)
        x = (x * (0.99 / peak)).astype(np.float32)
        applied["normalised_gain_db"] = round(float(20 * np.log10(0.99 / peak)), 2)

    # 5. telephony
    if params.bandpass:
        x = dsp.bandpass_telephone(x, sr)
    sr_line = params.sample_rate  # 8 kHz, or 16 kHz for a wideband line
    x = dsp.resample(x, sr, sr_line)
    applied["telephony"] = {"bandpass": params.bandpass, "sr": sr_line, "codec": params.codec}
    if params.codec == "pcm16":
        x = dsp.from_int16(dsp.to_int16(x))
    else:
        x = dsp.decode(dsp.encode(x, params.codec), params.codec)

    # 6. packet loss in 20 ms frames
    if params.packet_loss > 0:
        n_frames = -(-len(x) // (sr_line * dsp.FRAME_MS // 1000))
        model = dsp.GilbertElliott.from_rate(params.packet_loss, params.burst_ms / dsp.FRAME_MS)
        lost = model.lost_mask(n_frames, rng)
        x = dsp.conceal(x, sr_line, lost)
        applied["packet_loss"] = {
            "target_rate": params.packet_loss,
            "mean_burst_ms": params.burst_ms,
            "frames": int(n_frames),
            "frames_lost": int(lost.sum()),
            "lost_frames": [int(i) for i in np.flatnonzero(lost)],
        }

    if params.codec == "pcm16":
        payload = dsp.to_int16(x).astype("<i2").tobytes()
    else:
        payload = dsp.encode(x, params.codec)
        x = dsp.decode(payload, params.codec)  # what the far end hears, bit for bit
    return DegradedAudio(x.astype(np.float32), sr_line, params.codec, payload, applied)
