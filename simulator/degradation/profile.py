"""Noise profiles: named YAML files that say how hard the degradation layer hits a call.

A profile has four sections: ``asr`` (text ASR noise and its target WER band),
``conversation`` (partial inputs, barge-in, disfluencies, pauses, backchannels, DTMF),
``tool_faults`` (per-tool-call fault probabilities and latencies) and ``audio`` (used by
the audio stage). A profile may ``extends:`` another; the child is deep-merged over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.errors import ProfileError, format_validation_error
from simulator.yamlio import read_yaml_mapping

Range = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(name: str, r: Range | None, lo: float, hi: float) -> None:
    if r is None:
        return
    if not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{name} must be [lo, hi] with {lo} <= lo <= hi <= {hi}, got {list(r)}")


class ErrorMix(_Model):
    """Shares of ASR error events; they are normalised, so only their ratio matters."""

    substitution: float = Field(0.60, ge=0, le=1)
    deletion: float = Field(0.25, ge=0, le=1)
    insertion: float = Field(0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _nonzero(self) -> ErrorMix:
        if self.substitution + self.deletion + self.insertion <= 0:
            raise ValueError("at least one of substitution/deletion/insertion must be > 0")
        return self


class AsrSection(_Model):
    """Text ASR noise. ``target_wer`` is the band the engine calibrates to (its centre)."""

    target_wer: Range = (0.0, 0.05)
    entity_multiplier: float = Field(2.0, ge=1, le=10)
    mix: ErrorMix = Field(default_factory=ErrorMix)

    @model_validator(mode="after")
    def _ranges(self) -> AsrSection:
        _check_range("target_wer", self.target_wer, 0.0, 0.9)
        return self


class BargeIn(_Model):
    """Caller interrupts the agent's reply to a turn: onset uniform in
    ``[onset_min_s, min(reply - reply_margin_s, onset_max_s)]``, lasting ``duration_s``."""

    rate: float = Field(0.0, ge=0, le=1)
    onset_min_s: float = Field(0.5, ge=0, le=60)
    onset_max_s: float = Field(6.0, ge=0, le=60)
    reply_margin_s: float = Field(0.5, ge=0, le=10)
    duration_s: Range = (1.0, 5.0)

    @model_validator(mode="after")
    def _ranges(self) -> BargeIn:
        _check_range("duration_s", self.duration_s, 0.0, 60.0)
        if self.onset_min_s > self.onset_max_s:
            raise ValueError("onset_min_s must be <= onset_max_s")
        return self


class Pauses(_Model):
    """A pause before a turn with probability ``rate`` and length uniform in ``range_s``."""

    rate: float = Field(0.0, ge=0, le=1)
    range_s: Range = (0.3, 2.0)

    @model_validator(mode="after")
    def _ranges(self) -> Pauses:
        _check_range("range_s", self.range_s, 0.0, 120.0)
        return self


class Backchannel(_Model):
    """"mm-hmm" while the agent speaks: a Bernoulli(``rate_per_s``) chance in each second
    of agent speech after ``after_s``, planned up to ``horizon_s`` (the driver fires only
    those that fall inside the actual reply)."""

    rate_per_s: float = Field(0.0, ge=0, le=1)
    after_s: float = Field(3.0, ge=0, le=60)
    horizon_s: float = Field(20.0, ge=0, le=600)


class ConversationSection(_Model):
    partial_input_rate: float = Field(0.0, ge=0, le=1)
    barge_in: BargeIn = Field(default_factory=BargeIn)
    disfluency_per_100_words: float = Field(0.0, ge=0, le=50)
    self_correction_rate: float = Field(0.0, ge=0, le=1)
    hesitation: Pauses = Field(default_factory=lambda: Pauses(rate=0.0, range_s=(0.3, 2.0)))
    long_silence: Pauses = Field(default_factory=lambda: Pauses(rate=0.0, range_s=(4.0, 10.0)))
    backchannel: Backchannel = Field(default_factory=Backchannel)
    dtmf_rate: float = Field(0.0, ge=0, le=1)


class Latency(_Model):
    """Log-normal latency given by its median and 95th percentile (seconds)."""

    median_s: float = Field(0.4, gt=0, le=60)
    p95_s: float = Field(2.0, gt=0, le=600)

    @model_validator(mode="after")
    def _order(self) -> Latency:
        if self.p95_s < self.median_s:
            raise ValueError("p95_s must be >= median_s")
        return self


FAULT_KINDS: tuple[str, ...] = ("timeout", "slow", "http_5xx", "http_429", "malformed", "empty",
                                "wrong")


class ToolFaultSection(_Model):
    """Per-tool-call probabilities of each fault (at most one fault per call)."""

    timeout: float = Field(0.0, ge=0, le=1)
    slow: float = Field(0.0, ge=0, le=1)
    http_5xx: float = Field(0.0, ge=0, le=1)
    http_429: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    empty: float = Field(0.0, ge=0, le=1)
    wrong: float = Field(0.0, ge=0, le=1)
    latency: Latency = Field(default_factory=Latency)
    hang_s: float = Field(30.0, ge=0, le=3600)
    spare_calls: int = Field(4, ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self) -> ToolFaultSection:
        if sum(self.rates().values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        return self

    def rates(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in FAULT_KINDS}


class Bursts(_Model):
    per_min: Range = (0.0, 0.0)
    level_db: Range = (-5.0, 10.0)

    @model_validator(mode="after")
    def _ranges(self) -> Bursts:
        _check_range("per_min", self.per_min, 0.0, 60.0)
        _check_range("level_db", self.level_db, -60.0, 60.0)
        return self


class PacketLoss(_Model):
    """Gilbert-Elliott loss: long-run ``rate`` of lost frames in bursts of mean length."""

    rate: float = Field(0.0, ge=0, le=0.5)
    mean_burst_ms: float = Field(100.0, ge=20, le=5000)


# The line's sample rate: 8 kHz narrowband telephony (G.711), or 16 kHz wideband linear
# PCM (HD voice, an app or WebRTC caller), which keeps the 4-8 kHz band a phone line cuts.
LINE_RATES: tuple[int, ...] = (8_000, 16_000)


def line_rate_problem(codec: str, sample_rate: object) -> str | None:
    """What is wrong with a line of ``codec`` at ``sample_rate`` ("field: why"), or None."""
    if (not isinstance(sample_rate, int) or isinstance(sample_rate, bool)
            or sample_rate not in LINE_RATES):
        return (f"sample_rate: expected {' or '.join(map(str, LINE_RATES))}, "
                f"got {sample_rate!r}")
    if codec != "pcm16" and sample_rate != 8_000:
        return f"codec: {codec} is an 8 kHz codec; a {sample_rate} Hz line needs pcm16"
    return None


class AudioSection(_Model):
    """Audio degradation (applied by the audio stage). ``snr_db`` null = no noise bed.
    ``noise_beds`` are built-in names (babble, street, car, office) or WAV paths.
    ``sample_rate``: 8000 (telephone) or 16000 (wideband, pcm16 only)."""

    snr_db: Range | None = None
    noise_beds: list[str] = Field(default_factory=list)
    bursts: Bursts = Field(default_factory=Bursts)
    clipping_fraction: Range = (0.0, 0.0)
    rt60_s: Range | None = None
    packet_loss: PacketLoss = Field(default_factory=PacketLoss)
    codec: Literal["mulaw", "alaw", "pcm16"] = "mulaw"
    band_pass: bool = True
    sample_rate: int = 8_000

    @model_validator(mode="after")
    def _ranges(self) -> AudioSection:
        problem = line_rate_problem(self.codec, self.sample_rate)
        if problem:
            raise ValueError(problem)
        _check_range("snr_db", self.snr_db, -20.0, 80.0)
        _check_range("clipping_fraction", self.clipping_fraction, 0.0, 1.0)
        _check_range("rt60_s", self.rt60_s, 0.0, 5.0)
        for bed in self.noise_beds:
            if bed not in NOISE_BEDS and not bed.lower().endswith(".wav"):
                raise ValueError(f"noise bed {bed!r} is neither one of {list(NOISE_BEDS)} "
                                 "nor a .wav path")
        return self


NOISE_BEDS: tuple[str, ...] = ("babble", "street", "car", "office")


class NoiseProfile(_Model):
    name: str
    description: str = ""
    extends: str | None = None
    asr: AsrSection = Field(default_factory=AsrSection)
    conversation: ConversationSection = Field(default_factory=ConversationSection)
    tool_faults: ToolFaultSection = Field(default_factory=ToolFaultSection)
    audio: AudioSection = Field(default_factory=AudioSection)

    @property
    def target_centre(self) -> float:
        lo, hi = self.asr.target_wer
        return (lo + hi) / 2


# --- loading -------------------------------------------------------------------------------

def builtin_dir() -> Path:
    """Where the shipped profiles live: the installed data dir, else the repo's."""
    installed = Path(__file__).resolve().parents[1] / "_data" / "noise_profiles"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "noise_profiles"


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, ProfileError)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _scan(directory: Path, raw: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    if not directory.is_dir():
        raise ProfileError(f"{directory}: not a directory of noise profiles")
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        data = _read_yaml(path)
        name = data.get("name", path.stem)
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{path}: field 'name': expected a non-empty string")
        data = {**data, "name": name}
        raw[name] = (path, data)  # a user profile of the same name replaces the built-in


def _resolve(name: str, raw: dict[str, tuple[Path, dict[str, Any]]],
             chain: tuple[str, ...]) -> dict[str, Any]:
    path, data = raw[name]
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ProfileError(f"{path}: field 'extends': expected a profile name")
    if parent in chain or parent == name:
        cycle = " -> ".join([*chain, name, parent])
        raise ProfileError(f"{path}: field 'extends': cycle {cycle}")
    if parent not in raw:
        raise ProfileError(f"{path}: field 'extends': unknown profile {parent!r} "
                           f"(known: {', '.join(sorted(raw))})")
    base = _resolve(parent, raw, (*chain, name))
    base = {k: v for k, v in base.items() if k not in ("name", "description")}
    return deep_merge(base, data)


def load_profiles(extra_dir: Path | None = None) -> dict[str, NoiseProfile]:
    """All noise profiles: the built-ins plus those in ``extra_dir`` (which win on a name
    clash). Raises :class:`ProfileError` (one line naming file and field)."""
    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    _scan(builtin_dir(), raw)
    if extra_dir is not None:
        _scan(Path(extra_dir), raw)
    out: dict[str, NoiseProfile] = {}
    for name in sorted(raw):
        path = raw[name][0]
        merged = _resolve(name, raw, ())
        try:
            out[name] = NoiseProfile.model_validate(merged)
        except ValidationError as exc:
            raise ProfileError(format_validation_error(str(path), exc)) from None
    return out


def get_profile(name: str, extra_dir: Path | None = None) -> NoiseProfile:
    """One profile by name; an unknown name raises :class:`ProfileError` listing the known."""
    profiles = load_profiles(extra_dir)
    try:
        return profiles[name]
    except KeyError:
        raise ProfileError(f"unknown noise profile {name!r} "
                           f"(known: {', '.join(sorted(profiles))})") from None
