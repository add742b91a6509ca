from __future__ import annotations

import json

import pytest

from simulator.errors import GateError
from simulator.gate.compare import compare, compare_to_json
from simulator.gate.synthetic import AgentModel, synthetic_run
from simulator.results import CallOutcome

from ._helpers import make_rubric


def _runs() -> dict[str, list[CallOutcome]]:
    return {
        "base": synthetic_run(900, AgentModel(), seed=1),
        "fast": synthetic_run(900, AgentModel(ttft_median_ms=350, cost_mean_usd=0.05), seed=2),
        "careful": synthetic_run(900, AgentModel(arg_error_rate=0.0, refusal_rate=0.99,
                                                 fabricate_rate=0.0), seed=3),
    }


def test_ranks_runs_and_routes_by_slice() -> None:
    res = compare(_runs(), make_rubric(min_calls_per_arm=150, min_missing_record_calls=30))
    assert [s.run for s in res.ranking][-1] == "base"
    top = {s.run: s for s in res.ranking}
    assert top["fast"].wins_by_number["p95_ttft_ms"] == 2       # faster than both others
    assert top["careful"].wins_by_number["tool_arg_accuracy"] >= 1
    dims = {r.dimension for r in res.routes}
    assert dims == {"pack", "profile", "intent"}
    # Missing-record lookups: only refusals decide, and the careful agent refuses best.
    assert res.route("intent", "lookup").winner == "careful"
    assert json.loads(json.dumps(compare_to_json(res)))["ranking"][0]["run"] == res.ranking[0].run


def test_thin_slices_name_no_winner() -> None:
    runs = {k: v[:120] for k, v in _runs().items()}
    res = compare(runs, make_rubric(), dimensions=("pack",))
    assert all(r.winner is None for r in res.routes)
    assert all("too few" in r.reason for r in res.routes)


def test_compare_needs_two_runs() -> None:
    with pytest.raises(GateError, match="at least two runs"):
        compare({"only": synthetic_run(10, AgentModel(), seed=1)}, make_rubric())
