from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from simulator.errors import GateError
from simulator.gate.decide import judge
from simulator.gate.synthetic import AgentModel, synthetic_run
from simulator.results import CallOutcome

from ._helpers import make_rubric

SHA = "f" * 64
META: dict[str, Any] = {"rubric_sha256": SHA, "profile": "typical_call", "scenario_set": "abc"}

N = 1000
BASELINE = AgentModel()


def _runs(candidate: AgentModel, n: int = N, cand_seed: int = 2
          ) -> tuple[list[CallOutcome], list[CallOutcome]]:
    return (synthetic_run(n, BASELINE, seed=1, run="base"),
            synthetic_run(n, candidate, seed=cand_seed, run="cand"))


def test_slower_fabricating_candidate_fails_naming_both_losses() -> None:
    base, cand = _runs(AgentModel(ttft_shift_ms=200, fabricate_rate=0.30, refusal_rate=0.65))
    res = judge(base, cand, make_rubric(), META, META)
    assert res.verdict == "FAIL"
    assert res.exit_code == 1
    assert res.row("p95_ttft_ms").decision in ("loss", "loss_badly")
    assert res.row("refusal_rate").decision in ("loss", "loss_badly")
    losses = {r.name for r in res.rows if r.decision in ("loss", "loss_badly")}
    assert losses == {"p95_ttft_ms", "refusal_rate"}
    text = " ".join(res.reasons)
    assert "p95_ttft_ms" in text and "refusal_rate" in text
    assert res.context["fabrication_rate"].candidate.value > 0.2  # type: ignore[operator]


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_same_agent_other_seed_has_no_losses_and_does_not_fail(seed: int) -> None:
    base, cand = _runs(BASELINE, cand_seed=seed)
    res = judge(base, cand, make_rubric(), META, META)
    assert not [r for r in res.rows if r.decision in ("loss", "loss_badly")]
    assert res.verdict in ("PASS", "INCONCLUSIVE")
    assert res.exit_code in (0, 2)
    assert res.reasons


def test_faster_more_accurate_slightly_costlier_within_margin_passes() -> None:
    better = AgentModel(ttft_median_ms=400, arg_error_rate=0.01, refusal_rate=0.97,
                        fabricate_rate=0.0, cost_mean_usd=0.041)   # +2.5 % cost, margin 5 %
    base, cand = _runs(better)
    res = judge(base, cand, make_rubric(), META, META)
    assert res.verdict == "PASS", res.reasons
    assert res.exit_code == 0
    assert res.row("cost_per_session_usd").decision == "tie"
    assert res.row("cost_per_session_usd").difference.value > 0  # type: ignore[operator]
    assert res.wins == 3


def test_better_candidate_that_loses_badly_on_cost_fails() -> None:
    pricey = AgentModel(ttft_median_ms=400, arg_error_rate=0.01, refusal_rate=0.97,
                        fabricate_rate=0.0, cost_mean_usd=0.060)   # +50 %, threshold 25 %
    base, cand = _runs(pricey)
    res = judge(base, cand, make_rubric(), META, META)
    assert res.wins == 3
    assert res.row("cost_per_session_usd").decision == "loss_badly"
    assert res.verdict == "FAIL"
    assert any("cost_per_session_usd loses badly" in r for r in res.reasons)


def test_too_few_calls_is_inconclusive_with_the_reason() -> None:
    better = AgentModel(ttft_median_ms=400, arg_error_rate=0.01, refusal_rate=0.97)
    base, cand = _runs(better, n=60)
    res = judge(base, cand, make_rubric(), META, META)
    assert res.verdict == "INCONCLUSIVE"
    assert res.exit_code == 2
    row = res.row("p95_ttft_ms")
    assert row.decision == "inconclusive"
    assert "too few" in row.reason and "needs 200" in row.reason
    assert "too few calls on missing records" in res.row("refusal_rate").reason
    assert any("too few" in r for r in res.reasons)


def test_breached_guard_fails_an_otherwise_passing_candidate() -> None:
    flaky = AgentModel(ttft_median_ms=400, arg_error_rate=0.01, refusal_rate=0.97,
                       fabricate_rate=0.0, error_rate=0.08)
    base, cand = _runs(flaky)
    res = judge(base, cand, make_rubric(), META, META)
    assert res.verdict == "FAIL"
    assert any(r.startswith("guard error_rate") for r in res.reasons)


def test_guard_on_a_metric_no_run_carries_is_refused() -> None:
    base, cand = _runs(BASELINE, n=50)
    rubric = make_rubric(guards={"p95_stall_ms": {"max": 10}})
    with pytest.raises(GateError, match="unknown metric 'p95_stall_ms'"):
        judge(base, cand, rubric, META, META)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"rubric_sha256": "0" * 64}, "recorded under rubric 000000000000"),
        ({"rubric_sha256": None}, "recorded no rubric sha256"),
        ({"profile": "noisy"}, "profile differs"),
        ({"scenario_set": "other"}, "scenario set differs"),
    ],
    ids=["other-rubric", "no-rubric", "other-profile", "other-scenarios"],
)
def test_mismatched_runs_are_refused(change: dict[str, Any], needle: str) -> None:
    base, cand = _runs(BASELINE, n=50)
    with pytest.raises(GateError, match=needle) as exc:
        judge(base, cand, make_rubric(), META, {**META, **change})
    assert exc.value.exit_code == 2
    assert "\n" not in str(exc.value)
    res = judge(base, cand, make_rubric(), META, {**META, **change}, allow_mismatch=True)
    assert any(needle in m for m in res.mismatch)


def test_rubric_edited_after_the_run_is_refused(tmp_path: Any) -> None:
    from simulator.gate.rubric import load_rubric

    from ._helpers import EXAMPLE

    p = tmp_path / "rubric.yaml"
    p.write_bytes(EXAMPLE.read_bytes())
    _, recorded = load_rubric(p)
    p.write_bytes(EXAMPLE.read_bytes().replace(b"lose_badly: 0.20", b"lose_badly: 0.50"))
    edited, _ = load_rubric(p)
    meta = {**META, "rubric_sha256": recorded}
    base, cand = _runs(BASELINE, n=50)
    with pytest.raises(GateError, match="not the given rubric"):
        judge(base, cand, edited, meta, meta)


def test_empty_runs_cannot_be_judged() -> None:
    res = judge([], [], make_rubric(), META, META)
    assert res.verdict == "INCONCLUSIVE" and res.exit_code == 2
    assert all(r.decision == "inconclusive" for r in res.rows)


def test_scenario_set_id_ignores_order_and_repeats() -> None:
    from simulator.gate.decide import scenario_set_id

    assert scenario_set_id(["b", "a", "a"]) == scenario_set_id(["a", "b"])
    assert scenario_set_id(["a"]) != scenario_set_id(["a", "b"])


def test_check_meta_names_each_side_and_an_unknown_rubric_sha() -> None:
    from simulator.gate.decide import check_meta

    assert check_meta(SHA, META, META) == []
    assert check_meta(SHA, {**META, "rubric_sha256": None}, {**META, "rubric_sha256": ""}) == [
        "the baseline run recorded no rubric sha256",
        "the candidate run recorded no rubric sha256"]
    assert check_meta(None, META, META) == [
        "the rubric's sha256 is unknown (load it with load_rubric)"]
    assert check_meta(SHA, {**META, "rubric_sha256": "1" * 64}, META) == [
        f"the baseline run was recorded under rubric {'1' * 12}, not the given rubric "
        f"{SHA[:12]}"]
    assert check_meta(SHA, {**META, "profile": "noisy", "scenario_set": None}, META) == [
        "profile differs: baseline 'noisy', candidate 'typical_call'",
        "scenario set differs: baseline None, candidate 'abc'"]


def test_guard_on_an_extra_metric_is_the_candidates_bootstrap_under_the_rubric() -> None:
    from simulator.gate.decide import evaluate
    from simulator.gate.stats import bootstrap_one

    base, cand = _runs(BASELINE, n=80)
    rubric = make_rubric(guards={"p95_ttfa_ms": {"max": 1e6}}, bootstrap_resamples=300,
                         confidence=0.9, seed=7)
    (g,) = evaluate(base, cand, rubric).guards
    for run, est in ((cand, g.candidate), (base, g.baseline)):
        want = bootstrap_one(run, ["p95_ttfa_ms"], resamples=300, confidence=0.9,
                             seed=(7, "p95_ttfa_ms"))["p95_ttfa_ms"]
        assert est == want
    other = evaluate(base, cand, make_rubric(guards={"p95_ttfa_ms": {"max": 1e6}},
                                             bootstrap_resamples=300, confidence=0.9, seed=8))
    assert other.guards[0].candidate != g.candidate


def test_guard_on_a_run_without_ok_calls_has_no_data() -> None:
    from simulator.gate.decide import evaluate
    from simulator.gate.stats import Estimate

    base, cand = _runs(BASELINE, n=40)
    broken = [replace(o, ok=False, extra={}) for o in cand]
    (g,) = evaluate(base, broken, make_rubric(guards={"p95_ttfa_ms": {"max": 1e6}})).guards
    assert g.candidate == Estimate(None, None, None, 0)
    assert g.breached is None and g.reason == "no data in the candidate run"
    res = judge(base, broken, make_rubric(guards={"p95_ttfa_ms": {"max": 1e6}}), META, META)
    with pytest.raises(KeyError, match="p95_nothing"):
        res.row("p95_nothing")
    assert res.row("refusal_rate").name == "refusal_rate"
