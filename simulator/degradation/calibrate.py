"""``callsim calibrate``: per profile, target vs. measured WER over generated utterances,
and the observed rate of every perturbation and fault over generated calls, each with
its 99% binomial interval. Pure: the CLI renders the result (:func:`render_calibration`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.degradation.asr_noise import (
    calibrated_p_word,
    degrade_text,
    entity_words,
    error_counts,
)
from simulator.degradation.corpus import sample_calls
from simulator.degradation.engine import _degrade, _Plan
from simulator.degradation.profile import NoiseProfile
from simulator.seeding import derive_seed


@dataclass(frozen=True)
class RateCheck:
    """One perturbation or fault: configured rate, events over chances, 99% interval of
    the event count under the configured rate, and whether the count falls inside it."""

    name: str
    configured: float
    events: int
    chances: int
    interval: tuple[int, int]

    @property
    def observed(self) -> float:
        return self.events / self.chances if self.chances else 0.0

    @property
    def ok(self) -> bool:
        return self.interval[0] <= self.events <= self.interval[1]


@dataclass(frozen=True)
class ProfileCalibration:
    profile: str
    target_wer: tuple[float, float]
    measured_wer: float
    utterances: int
    calls: int
    rates: tuple[RateCheck, ...]

    @property
    def in_band(self) -> bool:
        lo, hi = self.target_wer
        return lo <= self.measured_wer <= hi

    @property
    def near_centre(self) -> bool:
        return abs(self.measured_wer - sum(self.target_wer) / 2) <= 0.02


def _binom_interval(n: int, p: float, confidence: float = 0.99) -> tuple[int, int]:
    from scipy.stats import binom  # scipy only where the interval is needed

    if n == 0 or p <= 0:
        return (0, 0)
    if p >= 1:
        return (n, n)
    lo, hi = binom.interval(confidence, n, p)
    return int(lo), int(hi)


def _configured(profile: NoiseProfile) -> dict[str, float]:
    c = profile.conversation
    out = {
        "partial_input": c.partial_input_rate, "barge_in": c.barge_in.rate,
        "disfluency": c.disfluency_per_100_words / 100.0,
        "self_correction": c.self_correction_rate, "hesitation": c.hesitation.rate,
        "long_silence": c.long_silence.rate, "backchannel": c.backchannel.rate_per_s,
        "dtmf": c.dtmf_rate,
    }
    out |= {f"fault_{k}": v for k, v in profile.tool_faults.rates().items()}
    return out


def _utterances(n: int, seed: int) -> list[tuple[str, frozenset[str]]]:
    items: list[tuple[str, frozenset[str]]] = []
    k = 0
    while len(items) < n:
        batch = sample_calls(max(1, (n - len(items)) // 6 + 1), derive_seed(seed, "utt", k))
        for call in batch:
            ents = entity_words(call.slots.values())
            items.extend((t.text, ents) for t in call.turns)
        k += 1
    return items[:n]


def calibrate(profiles: Iterable[NoiseProfile], utterances: int, seed: int,
              calls: int = 2000) -> list[ProfileCalibration]:
    """Measure each profile: pooled WER (errors / reference words, normalised, as jiwer
    counts them) of the ASR pass over ``utterances`` generated caller utterances, and the
    observed rates of perturbations and faults over ``calls`` generated calls."""
    utts = _utterances(utterances, seed)
    scripts = sample_calls(calls, derive_seed(seed, "calls")) if calls else []
    out: list[ProfileCalibration] = []
    for profile in profiles:
        p_word = calibrated_p_word(profile.asr)
        r = random.Random(derive_seed(seed, profile.name, "wer"))
        errs = words = 0
        for text, ents in utts:
            res = degrade_text(text, r, p_word, profile.asr, ents)
            e, w = error_counts(text, res.text)
            errs += e
            words += w
        stats: Counter[str] = Counter()
        plan = _Plan.of(profile)
        for s in scripts:
            _degrade(s, profile, seed, stats, plan)
        checks = []
        for name, rate in _configured(profile).items():
            n = stats.get(name + ":n", 0)
            checks.append(RateCheck(name, rate, stats.get(name, 0), n, _binom_interval(n, rate)))
        out.append(ProfileCalibration(profile.name, profile.asr.target_wer,
                                      errs / words if words else 0.0, len(utts), len(scripts),
                                      tuple(checks)))
    return out


def render_calibration(results: list[ProfileCalibration]) -> object:
    """A rich Table of :func:`calibrate`'s results (print it with a rich Console)."""
    from rich.table import Table

    table = Table(title="Noise profile calibration")
    table.add_column("profile")
    table.add_column("target WER")
    table.add_column("measured", justify="right")
    table.add_column("ok")
    table.add_column("perturbations and faults: observed / configured (99% ok)")
    for res in results:
        lo, hi = res.target_wer
        cells = [f"{c.name} {c.observed:.3f}/{c.configured:.3f}{'' if c.ok else ' !'}"
                 for c in res.rates if c.configured > 0 or c.events]
        table.add_row(res.profile, f"{lo:.0%}-{hi:.0%}", f"{res.measured_wer:.1%}",
                      "yes" if res.in_band and res.near_centre else "NO",
                      ", ".join(cells) or "-")
    return table
