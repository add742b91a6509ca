"""Seeded bootstrap confidence intervals for the gate numbers (percentile method).

The unit of resampling is a call (all of its turns move together), or, when both runs
replayed the same set of call scripts, a script id: the shared ids are resampled once and
both arms take their calls for them (a paired bootstrap, which removes the between-script
variance from the difference). Resampling is vectorised: a resample is a row of counts over
units, ratio metrics are a matrix product and quantiles a weighted inverted-CDF over items
sorted once (see :func:`_weighted_quantiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.metrics.numbers import _QEPS, Metric, Quantile, Ratio, metric, point
from simulator.results import CallOutcome
from simulator.seeding import np_rng

# Resamples are drawn in blocks so memory stays bounded (block x items int32) however many
# resamples the rubric asks for. The block size is fixed so results do not depend on it.
_BLOCK = 250


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its bootstrap interval; ``n`` is the number of calls behind it."""

    value: float | None
    lo: float | None
    hi: float | None
    n: int = 0


@dataclass(frozen=True, slots=True)
class PairEstimate:
    """Baseline, candidate and ``candidate - baseline`` (raw, not oriented) for one metric."""

    baseline: Estimate
    candidate: Estimate
    diff: Estimate


@dataclass(frozen=True, slots=True)
class _Arm:
    unit_of_call: np.ndarray
    n_units: int


def _units(base: Sequence[CallOutcome], cand: Sequence[CallOutcome],
           paired: bool | None) -> tuple[_Arm, _Arm, bool]:
    b_ids = {o.script_id for o in base}
    c_ids = {o.script_id for o in cand}
    can_pair = bool(b_ids) and b_ids == c_ids
    if paired is None:
        paired = can_pair
    if paired and not can_pair:
        raise ValueError("a paired bootstrap needs both runs to replay the same script ids")
    if paired:
        index = {sid: i for i, sid in enumerate(sorted(b_ids))}
        ab = _Arm(np.fromiter((index[o.script_id] for o in base), np.int64, len(base)),
                  len(index))
        ac = _Arm(np.fromiter((index[o.script_id] for o in cand), np.int64, len(cand)),
                  len(index))
        return ab, ac, True
    return (_Arm(np.arange(len(base)), len(base)), _Arm(np.arange(len(cand)), len(cand)),
            False)


def _counts(gen: np.random.Generator, n_units: int, rows: int) -> np.ndarray:
    """``rows`` resamples with replacement of ``n_units`` units, as counts (rows x units)."""
    if n_units == 0:
        return np.zeros((rows, 0), np.int32)
    draws = gen.integers(0, n_units, size=(rows, n_units))
    flat = (draws + (np.arange(rows) * n_units)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n_units).reshape(rows, n_units).astype(np.int32)


def _weighted_quantiles(m: Quantile, item_unit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The inverted-CDF ``m.q`` quantile for each row of unit counts.

    Items are already sorted by value, so each row is a cumulative sum of the item weights
    and the quantile is the first item whose cumulative weight reaches ``q * total``.
    Only the upper tail can hold a high quantile, so the cumulative sum runs from the top
    over the smallest suffix that surely contains it; rows where it does not (rare, heavy
    resampling of the tail) fall back to the whole array.
    """
    rows = counts.shape[0]
    out = np.full(rows, np.nan)
    n = m.values.size
    if n == 0:
        return out
    items_per_unit = np.bincount(item_unit, minlength=counts.shape[1])
    total = counts.astype(np.int64) @ items_per_unit
    # Weight allowed strictly above the answer: the quantile is the first item i whose
    # cumulative weight reaches q * total, i.e. whose weight above is <= (1 - q) * total.
    above_max = (1.0 - m.q) * total + _QEPS * np.maximum(total, 1)
    k = min(n, int(np.ceil((1.0 - m.q) * n * 2)) + 64)
    w = counts[:, item_unit[n - k:]]                      # rows x k, the upper tail
    cum = np.cumsum(w, axis=1, dtype=np.int64)
    tail = cum[:, -1]
    idx = (n - k) + np.argmax(cum >= (tail - above_max)[:, None], axis=1)
    out[:] = m.values[idx]
    short = np.flatnonzero((tail <= above_max) & (k < n))   # the answer lies below the tail
    if short.size:
        cum_all = np.cumsum(counts[short][:, item_unit], axis=1, dtype=np.int64)
        idx_all = np.argmax(cum_all >= (total[short] - above_max[short])[:, None], axis=1)
        out[short] = m.values[idx_all]
    out[total == 0] = np.nan
    return out


def _ratio_block(nums: np.ndarray, dens: np.ndarray, counts: np.ndarray) -> np.ndarray:
    c = counts.astype(np.float64)
    num = c @ nums
    den = c @ dens
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _per_unit(arm: _Arm, values: np.ndarray) -> np.ndarray:
    return np.bincount(arm.unit_of_call, weights=values, minlength=arm.n_units)


class _ArmMetrics:
    """Precomputed per-unit sums (ratios) and item->unit maps (quantiles) for one arm."""

    def __init__(self, arm: _Arm, metrics: dict[str, Metric]) -> None:
        self.names = list(metrics)
        self.ratio_names = [k for k, m in metrics.items() if isinstance(m, Ratio)]
        self.quant: dict[str, tuple[Quantile, np.ndarray]] = {
            k: (m, arm.unit_of_call[m.call]) for k, m in metrics.items()
            if isinstance(m, Quantile)
        }
        ratios = [metrics[k] for k in self.ratio_names]
        shape = (arm.n_units, len(ratios))
        self.nums = np.zeros(shape)
        self.dens = np.zeros(shape)
        for j, r in enumerate(ratios):
            assert isinstance(r, Ratio)
            self.nums[:, j] = _per_unit(arm, r.num)
            self.dens[:, j] = _per_unit(arm, r.den)

    def block(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.ratio_names:
            r = _ratio_block(self.nums, self.dens, counts)
            for j, k in enumerate(self.ratio_names):
                out[k] = r[:, j]
        for k, (m, item_unit) in self.quant.items():
            out[k] = _weighted_quantiles(m, item_unit, counts)
        return out


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    s = samples[~np.isnan(samples)]
    # Fewer than half the resamples defined means the number barely exists on this data.
    if s.size == 0 or s.size < samples.size / 2:
        return None, None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(s, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def _resample(
    arms: list[tuple[_Arm, _ArmMetrics]], shared: bool, resamples: int, seed: object,
) -> list[dict[str, np.ndarray]]:
    gen = np_rng(seed, "gate-bootstrap")
    acc: list[dict[str, list[np.ndarray]]] = [{k: [] for k in am.names} for _, am in arms]
    done = 0
    while done < resamples:
        rows = min(_BLOCK, resamples - done)
        counts = _counts(gen, arms[0][0].n_units, rows) if shared else None
        for (arm, am), a in zip(arms, acc, strict=True):
            c = counts if counts is not None else _counts(gen, arm.n_units, rows)
            for k, v in am.block(c).items():
                a[k].append(v)
        done += rows
    return [{k: np.concatenate(v) for k, v in a.items()} for a in acc]


def bootstrap_one(
    outcomes: Sequence[CallOutcome], names: Sequence[str], *, resamples: int = 2000,
    confidence: float = 0.95, seed: object = 0,
) -> dict[str, Estimate]:
    """Each named number of one run with its bootstrap interval (calls resampled)."""
    metrics = {k: metric(outcomes, k) for k in names}
    arm = _Arm(np.arange(len(outcomes)), len(outcomes))
    (samples,) = _resample([(arm, _ArmMetrics(arm, metrics))], True, resamples, seed)
    out = {}
    for k, m in metrics.items():
        lo, hi = _interval(samples[k], confidence)
        out[k] = Estimate(point(m), lo, hi, m.calls())
    return out


def bootstrap_pair(
    baseline: Sequence[CallOutcome], candidate: Sequence[CallOutcome], names: Sequence[str],
    *, resamples: int = 2000, confidence: float = 0.95, seed: object = 0,
    paired: bool | None = None,
) -> tuple[dict[str, PairEstimate], bool]:
    """Intervals for each named number of both runs and for ``candidate - baseline``.

    ``paired=None`` pairs by ``script_id`` exactly when both runs replayed the same set of
    script ids. Returns the estimates by name and whether the bootstrap was paired.
    Raises :class:`simulator.errors.GateError` for an unknown metric name.
    """
    ab, ac, is_paired = _units(baseline, candidate, paired)
    mb = {k: metric(baseline, k) for k in names}
    mc = {k: metric(candidate, k) for k in names}
    sb, sc = _resample([(ab, _ArmMetrics(ab, mb)), (ac, _ArmMetrics(ac, mc))], is_paired,
                       resamples, seed)
    out: dict[str, PairEstimate] = {}
    for k in names:
        pb, pc = point(mb[k]), point(mc[k])
        b = Estimate(pb, *_interval(sb[k], confidence), n=mb[k].calls())
        c = Estimate(pc, *_interval(sc[k], confidence), n=mc[k].calls())
        d_pt = pc - pb if pb is not None and pc is not None else None
        d_lo, d_hi = _interval(sc[k] - sb[k], confidence)
        out[k] = PairEstimate(b, c, Estimate(d_pt, d_lo, d_hi, min(b.n, c.n)))
    return out, is_paired


def pair_samples(
    baseline: Sequence[CallOutcome], candidate: Sequence[CallOutcome], names: Sequence[str],
    *, resamples: int = 2000, seed: object = 0, paired: bool | None = None,
) -> tuple[dict[str, tuple[Metric, Metric]], dict[str, np.ndarray], bool]:
    """The raw resamples behind :func:`bootstrap_pair`, for intervals at several levels.

    Returns, by name, the two runs' metrics (point values and call counts come from them)
    and the resampled ``candidate - baseline`` (NaN where a resample leaves a run without
    data), and whether the bootstrap was paired. :func:`interval_at` turns the resamples
    into the same percentile interval :func:`bootstrap_pair` reports.
    """
    ab, ac, is_paired = _units(baseline, candidate, paired)
    mb = {k: metric(baseline, k) for k in names}
    mc = {k: metric(candidate, k) for k in names}
    sb, sc = _resample([(ab, _ArmMetrics(ab, mb)), (ac, _ArmMetrics(ac, mc))], is_paired,
                       resamples, seed)
    return {k: (mb[k], mc[k]) for k in names}, {k: sc[k] - sb[k] for k in names}, is_paired


def interval_at(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """The two-sided percentile interval of ``samples`` at ``confidence`` (as the gate's)."""
    return _interval(samples, confidence)
