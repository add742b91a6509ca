from __future__ import annotations

import numpy as np
import pytest

from simulator.gate.stats import _weighted_quantiles, bootstrap_one, bootstrap_pair
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
