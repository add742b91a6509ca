from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.gate.stats import (
    Estimate,
    _weighted_quantiles,
    bootstrap_one,
    bootstrap_pair,
    interval_at,
    pair_samples,
)
from simulator.gate.synthetic import AgentModel, synthetic_run
from simulator.metrics.numbers import Quantile
from simulator.results import CallOutcome


def _cost_calls(costs: np.ndarray, ttfts: np.ndarray | None = None) -> list[CallOutcome]:
    return [
        CallOutcome(f"c{i}", f"s{i}", "clinic", "clean", "book", True, None,
                    tuple(ttfts[i].tolist()) if ttfts is not None else (1.0,), 1, 1, True,
                    True, False, False, float(c))
        for i, c in enumerate(costs)
    ]


def test_ci_of_the_mean_covers_the_true_value_about_95_percent_of_the_time() -> None:
    # Exponential costs (skewed, like real session costs), mean 0.05: 200 seeded repetitions.
    hits, reps = 0, 200
    for rep in range(reps):
        costs = np.random.default_rng(rep).exponential(0.05, 150)
        est = bootstrap_one(_cost_calls(costs), ["cost_per_session_usd"], resamples=400,
                            seed=rep)["cost_per_session_usd"]
        assert est.lo is not None and est.hi is not None
        hits += est.lo <= 0.05 <= est.hi
    assert 0.88 <= hits / reps <= 0.99


def test_ci_of_the_p95_covers_the_true_quantile() -> None:
    # Log-normal per-turn latency, 4 turns per call, independent: true p95 is known.
    true_p95 = float(np.exp(np.log(500) + 0.4 * 1.6448536269514722))
    hits, reps = 0, 100
    for rep in range(reps):
        g = np.random.default_rng(10_000 + rep)
        calls = _cost_calls(np.zeros(150), g.lognormal(np.log(500), 0.4, (150, 4)))
        est = bootstrap_one(calls, ["p95_ttft_ms"], resamples=400, seed=rep)["p95_ttft_ms"]
        assert est.lo is not None and est.hi is not None
        hits += est.lo <= true_p95 <= est.hi
    assert 0.85 <= hits / reps <= 1.0


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_vectorised_weighted_quantile_matches_numpy_on_expanded_data(q: float) -> None:
    g = np.random.default_rng(7)
    n_calls = 60
    values_per_call = [g.normal(100, 30, int(g.integers(1, 6))) for _ in range(n_calls)]
    values = np.concatenate(values_per_call)
    call = np.repeat(np.arange(n_calls), [len(v) for v in values_per_call])
    order = np.argsort(values, kind="stable")
    m = Quantile(values[order], call[order], q)
    counts = g.integers(0, 3, size=(40, n_calls)).astype(np.int32)
    # Rows that weight only the low calls force the slow path (answer below the tail).
    low = np.argsort([v.max() for v in values_per_call])[:10]
    counts[:5] = 0
    counts[:5, low] = 3
    got = _weighted_quantiles(m, m.call, counts)
    for row in range(counts.shape[0]):
        expanded = np.concatenate([np.repeat(v, counts[row, i])
                                   for i, v in enumerate(values_per_call)])
        assert got[row] == np.percentile(expanded, 100 * q, method="inverted_cdf")


def test_bootstrap_is_seeded() -> None:
    base = synthetic_run(300, AgentModel(), seed=1)
    cand = synthetic_run(300, AgentModel(), seed=2)
    a, _ = bootstrap_pair(base, cand, ["p95_ttft_ms", "refusal_rate"], resamples=500, seed=9)
    b, _ = bootstrap_pair(base, cand, ["p95_ttft_ms", "refusal_rate"], resamples=500, seed=9)
    c, _ = bootstrap_pair(base, cand, ["p95_ttft_ms", "refusal_rate"], resamples=500, seed=10)
    assert a == b
    assert a != c


def test_pairs_by_script_only_when_both_runs_replayed_the_same_scripts() -> None:
    base = synthetic_run(300, AgentModel(), seed=1)
    cand = synthetic_run(300, AgentModel(), seed=2)
    _, paired = bootstrap_pair(base, cand, ["error_rate"], resamples=200)
    assert paired
    _, paired = bootstrap_pair(base, cand[:-1], ["error_rate"], resamples=200)
    assert not paired


def test_pairing_narrows_the_interval_when_scripts_differ_in_difficulty() -> None:
    # Script difficulty is shared between the runs; pairing removes it from the difference.
    base = synthetic_run(600, AgentModel(), seed=1)
    cand = synthetic_run(600, AgentModel(ttft_shift_ms=30), seed=2)
    p, _ = bootstrap_pair(base, cand, ["p95_ttft_ms"], resamples=800, paired=True)
    u, _ = bootstrap_pair(base, cand, ["p95_ttft_ms"], resamples=800, paired=False)
    wp = p["p95_ttft_ms"].diff.hi - p["p95_ttft_ms"].diff.lo  # type: ignore[operator]
    wu = u["p95_ttft_ms"].diff.hi - u["p95_ttft_ms"].diff.lo  # type: ignore[operator]
    assert wp < wu


def test_identical_runs_paired_have_a_zero_width_difference() -> None:
    # Paired by script, each resample takes the same scripts in both arms: the difference of
    # two identical runs is exactly zero in every resample. Unpaired, it is not.
    run = synthetic_run(200, AgentModel(), seed=1)
    p, paired = bootstrap_pair(run, run, ["p95_ttft_ms", "tool_arg_accuracy"], resamples=300)
    assert paired
    for k in ("p95_ttft_ms", "tool_arg_accuracy"):
        assert (p[k].diff.value, p[k].diff.lo, p[k].diff.hi) == (0.0, 0.0, 0.0)
        assert p[k].baseline == p[k].candidate
    u, paired = bootstrap_pair(run, run, ["tool_arg_accuracy"], resamples=300, paired=False)
    assert not paired
    d = u["tool_arg_accuracy"].diff
    assert d.lo < 0 < d.hi  # type: ignore[operator]


def test_pair_estimates_carry_points_counts_and_the_difference() -> None:
    base = synthetic_run(300, AgentModel(), seed=1)
    cand = synthetic_run(200, AgentModel(cost_mean_usd=0.06), seed=2)
    est, paired = bootstrap_pair(base, cand, ["cost_per_session_usd", "refusal_rate"],
                                 resamples=400)
    assert not paired          # 200 of the 300 scripts: not the same set
    c = est["cost_per_session_usd"]
    assert c.baseline.value == pytest.approx(np.mean([o.cost_usd for o in base]))
    assert c.candidate.value == pytest.approx(np.mean([o.cost_usd for o in cand]))
    assert c.diff.value == pytest.approx(c.candidate.value - c.baseline.value)  # type: ignore[operator]
    assert (c.baseline.n, c.candidate.n, c.diff.n) == (300, 200, 200)
    for e in (c.baseline, c.candidate, c.diff):
        assert e.lo < e.value < e.hi  # type: ignore[operator]
    r = est["refusal_rate"]
    missing_b = sum(not o.record_exists for o in base)
    missing_c = sum(not o.record_exists for o in cand)
    assert (r.baseline.n, r.candidate.n, r.diff.n) == (missing_b, missing_c,
                                                       min(missing_b, missing_c))


def test_forcing_a_paired_bootstrap_on_different_scripts_is_refused() -> None:
    base = synthetic_run(50, AgentModel(), seed=1)
    with pytest.raises(ValueError, match="same script ids"):
        bootstrap_pair(base, base[:-1], ["error_rate"], resamples=100, paired=True)
    with pytest.raises(ValueError, match="same script ids"):
        bootstrap_pair([], [], ["error_rate"], resamples=100, paired=True)


def test_wider_confidence_gives_a_wider_interval_around_the_point() -> None:
    run = synthetic_run(300, AgentModel(), seed=4)
    e90 = bootstrap_one(run, ["cost_per_session_usd"], resamples=1000, confidence=0.90)
    e99 = bootstrap_one(run, ["cost_per_session_usd"], resamples=1000, confidence=0.99)
    a, b = e90["cost_per_session_usd"], e99["cost_per_session_usd"]
    assert b.lo < a.lo < a.value < a.hi < b.hi  # type: ignore[operator]
    assert a.value == b.value and a.n == b.n == 300
    # The 90 % interval leaves about 5 % of the resampled means on each side.
    costs = np.array([o.cost_usd for o in run])
    g = np.random.default_rng(0)
    means = np.array([costs[g.integers(0, 300, 300)].mean() for _ in range(2000)])
    assert np.mean(means < a.lo) == pytest.approx(0.05, abs=0.025)  # type: ignore[operator]
    assert np.mean(means > a.hi) == pytest.approx(0.05, abs=0.025)  # type: ignore[operator]


def test_a_number_without_data_has_no_interval() -> None:
    # No call on a missing record: refusal_rate does not exist, nor its interval.
    calls = [o for o in synthetic_run(100, AgentModel(), seed=1) if o.record_exists]
    est = bootstrap_one(calls, ["refusal_rate", "error_rate"], resamples=200)
    assert est["refusal_rate"] == Estimate(None, None, None, 0)
    assert est["error_rate"].lo is not None
    assert bootstrap_one([], ["error_rate"], resamples=200)["error_rate"] == Estimate(
        None, None, None, 0)


def test_interval_needs_at_least_half_the_resamples_defined() -> None:
    from simulator.gate.stats import _interval

    half = np.array([1.0, 2.0, np.nan, np.nan])
    assert _interval(half, 0.5) == (1.25, 1.75)
    assert _interval(np.array([1.0, np.nan, np.nan, np.nan]), 0.5) == (None, None)
    assert _interval(np.array([np.nan, np.nan]), 0.5) == (None, None)
    lo, hi = _interval(np.arange(101, dtype=float), 0.9)
    assert (lo, hi) == (pytest.approx(5.0), pytest.approx(95.0))


def test_resample_counts_and_empty_quantiles() -> None:
    from simulator.gate.stats import _counts

    counts = _counts(np.random.default_rng(1), 7, 300)
    assert counts.shape == (300, 7) and counts.dtype == np.int32
    assert (counts.sum(axis=1) == 7).all()
    assert abs(counts.mean() - 1.0) < 0.05 and counts.max() > 2
    assert _counts(np.random.default_rng(1), 0, 5).shape == (5, 0)
    empty = Quantile(np.array([]), np.array([], dtype=np.int64), 0.95)
    out = _weighted_quantiles(empty, empty.call, np.ones((3, 2), dtype=np.int32))
    assert out.shape == (3,) and np.isnan(out).all()
    m = Quantile(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 1]), 0.5)
    got = _weighted_quantiles(m, m.call, np.array([[0, 0], [1, 0], [0, 1], [3, 1]],
                                                  dtype=np.int32))
    assert np.isnan(got[0]) and got[1] == 1.0 and got[2] == 2.0 and got[3] == 1.0


def test_p95_interval_when_the_last_calls_have_no_timed_turn() -> None:
    # Failed calls contribute no turn to the latency: units without items, here at the end.
    calls = _cost_calls(np.full(60, 0.01), np.random.default_rng(5).lognormal(6, 0.3, (60, 3)))
    calls[-3:] = [replace(o, ok=False) for o in calls[-3:]]
    est = bootstrap_one(calls, ["p95_ttft_ms"], resamples=300)["p95_ttft_ms"]
    assert est.n == 57 and est.lo is not None and est.lo <= est.value <= est.hi  # type: ignore[operator]


@pytest.mark.parametrize("paired", [None, False])
def test_compare_resamples_give_the_gate_intervals(paired: bool | None) -> None:
    # callsim compare reads intervals off pair_samples at several levels: at the gate's
    # level they are the gate's own, paired the same way, from the same seed.
    base = synthetic_run(300, AgentModel(), seed=1)
    cand = synthetic_run(300, AgentModel(ttft_shift_ms=20), seed=2)
    names = ["p95_ttft_ms", "tool_arg_accuracy"]
    est, was_paired = bootstrap_pair(base, cand, names, resamples=400, seed=5, paired=paired)
    metrics, samples, is_paired = pair_samples(base, cand, names, resamples=400, seed=5,
                                               paired=paired)
    assert is_paired == was_paired == (paired is None)
    for k in names:
        assert interval_at(samples[k], 0.95) == (est[k].diff.lo, est[k].diff.hi)
        assert (metrics[k][0].calls(), metrics[k][1].calls()) == (est[k].baseline.n,
                                                                  est[k].candidate.n)
    again = pair_samples(base, cand, names, resamples=400, seed=5, paired=paired)[1]
    other = pair_samples(base, cand, names, resamples=400, seed=6, paired=paired)[1]
    assert all(np.array_equal(samples[k], again[k], equal_nan=True) for k in names)
    assert not np.array_equal(samples["p95_ttft_ms"], other["p95_ttft_ms"])
