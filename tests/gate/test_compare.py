"""``callsim compare``'s core: per-segment decisions, Holm across segments, 80-column lines."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from simulator.errors import GateError
from simulator.gate.compare import compare, compare_to_json, render_lines
from simulator.gate.synthetic import AgentModel, synthetic_run
from simulator.results import CallOutcome

from ._helpers import make_rubric

ACCURATE = AgentModel(arg_error_rate=0.0)


def _one_pack_sloppy(pack: str, seed: int) -> list[CallOutcome]:
    """Same scripts; on ``pack`` 10 points more argument errors, elsewhere the same agent
    (another seed, so latency and cost differ by chance only)."""
    sloppy = synthetic_run(300, replace(ACCURATE, arg_error_rate=0.10), seed=seed)
    same = synthetic_run(300, ACCURATE, seed=seed + 100)
    return [s if s.pack == pack else o for s, o in zip(sloppy, same, strict=True)]


@pytest.fixture(scope="module")
def routed() -> object:
    runs = {"accurate": synthetic_run(300, ACCURATE, seed=1),
            "sloppy-clinic": _one_pack_sloppy("clinic", seed=2)}
    return compare(runs, make_rubric())


def test_the_pack_with_the_gap_names_the_accurate_run_and_no_other(routed: object) -> None:
    from simulator.gate.compare import CompareResult

    assert isinstance(routed, CompareResult)
    clinic = routed.route("pack", "clinic")
    assert clinic.winner == "accurate" and clinic.status == "win"
    assert clinic.decisive is not None and clinic.decisive.name == "tool_arg_accuracy"
    others = [r for r in routed.routes if r.dimension == "pack" and r.value != "clinic"]
    assert len(others) == 3 and all(r.winner is None for r in others), [
        (r.value, r.winner, r.reason) for r in others]


@pytest.mark.parametrize("seeds", [(3, 4), (5, 6), (7, 8)], ids=["aa-1", "aa-2", "aa-3"])
def test_a_over_a_names_no_winner_anywhere(seeds: tuple[int, int]) -> None:
    model = AgentModel()   # 5% argument errors, refusals, fabrication: noise everywhere
    res = compare({"A": synthetic_run(300, model, seed=seeds[0]),
                   "A again": synthetic_run(300, model, seed=seeds[1])}, make_rubric())
    assert [(r.segment, r.reason) for r in res.routes if r.winner] == []


def test_holm_levels_step_down_over_the_family() -> None:
    runs = {"accurate": synthetic_run(300, ACCURATE, seed=1),
            "sloppy": synthetic_run(300, replace(ACCURATE, arg_error_rate=0.10), seed=2)}
    rubric = make_rubric()
    res = compare(runs, rubric)
    tested = sorted((c for r in res.routes for c in r.comparisons if c.tested),
                    key=lambda c: c.confidence)
    k, alpha = res.family_size, 1 - rubric.confidence
    assert len(tested) == k > 10
    decided = [c for c in tested if c.winner() is not None]
    assert decided, "a 10-point gap over 300 calls decides somewhere"
    # The j-th decided test (by p-value) was judged at 1 - alpha / (K - j); every test
    # after Holm stopped at the level where it stopped, and none of them decides.
    levels = sorted(c.confidence for c in decided)[::-1]
    assert levels == pytest.approx([1 - alpha / (k - j) for j in range(len(decided))])
    rest = [c for c in tested if c.winner() is None]
    assert {round(c.confidence, 12) for c in rest} == {round(1 - alpha / (k - len(decided)), 12)}


def test_more_segments_widen_the_intervals() -> None:
    runs = {"accurate": synthetic_run(300, ACCURATE, seed=1),
            "sloppy": synthetic_run(300, replace(ACCURATE, arg_error_rate=0.10), seed=2)}
    alone = compare(runs, make_rubric(), dimensions=())
    many = compare(runs, make_rubric(), dimensions=("pack", "profile", "intent"))
    assert alone.family_size < many.family_size

    def width(res: object) -> float:
        from simulator.gate.compare import CompareResult

        assert isinstance(res, CompareResult)
        c = next(c for c in res.route("all", "all").comparisons
                 if c.name == "tool_arg_accuracy")
        d = c.row.difference
        assert d.lo is not None and d.hi is not None
        return d.hi - d.lo

    assert width(many) > width(alone)


def test_thin_segments_are_not_tested_and_say_so() -> None:
    runs = {"a": synthetic_run(300, AgentModel(), seed=1),
            "b": synthetic_run(300, AgentModel(), seed=2)}
    res = compare(runs, make_rubric(min_calls_per_segment=100))
    lookup = res.route("intent", "lookup")          # ~45 missing-record calls
    assert lookup.status == "too few" and lookup.winner is None
    assert "100 calls" in lookup.reason
    assert not any(c.tested for c in lookup.comparisons)
    counted = sum(c.tested for r in res.routes for c in r.comparisons)
    assert res.family_size == counted


def test_lines_fit_80_columns_and_name_runs_by_label() -> None:
    long_label = "gpt-4o-mini, prompt v7, temperature 0.2"
    runs = {"accurate": synthetic_run(300, ACCURATE, seed=1),
            long_label: _one_pack_sloppy("clinic", seed=2)}
    res = compare(runs, make_rubric())
    ids = {"accurate": "run-20261201-203945-ab12", long_label: "run-20261201-203946-cd34"}
    for verbose in (False, True):
        lines = render_lines(res, width=80, verbose=verbose, run_ids=ids)
        assert max(len(line) for line in lines) <= 80
        table = lines[lines.index(next(x for x in lines if x.startswith("segment"))) + 1:]
        assert not any("run-2026" in line for line in table)   # ids only in the legend
    lines = render_lines(res, width=80, run_ids=ids)
    clinic = next(line for line in lines if line.startswith("pack clinic"))
    assert "accurate" in clinic and "arg accuracy" in clinic and "[" in clinic
    assert any(line.startswith("pack salon") and "no winner" in line for line in lines)
    assert any(long_label in line for line in lines)               # full label in the legend
    # One line per segment: not one per comparison.
    assert len(lines) <= len(res.routes) + 8


def test_json_is_complete_and_serialisable(routed: object) -> None:
    from simulator.gate.compare import CompareResult

    assert isinstance(routed, CompareResult)
    data = json.loads(json.dumps(compare_to_json(routed, run_ids={"accurate": "run-x"})))
    assert data["multiple_comparisons"] == "holm"
    assert data["family_size"] == routed.family_size
    assert data["runs"][0] == {**data["runs"][0], "label": "accurate", "run_id": "run-x"}
    clinic = next(r for r in data["routes"] if r["segment"] == "pack clinic")
    assert clinic["winner"] == "accurate"
    assert clinic["decisive"]["number"] == "tool_arg_accuracy"
    assert clinic["decisive"]["difference"]["lo"] is not None
    assert len(clinic["comparisons"]) == 4


def test_same_runs_same_table(routed: object) -> None:
    runs = {"accurate": synthetic_run(300, ACCURATE, seed=1),
            "sloppy-clinic": _one_pack_sloppy("clinic", seed=2)}
    again = compare(runs, make_rubric())
    assert compare_to_json(again) == compare_to_json(routed)  # type: ignore[arg-type]


def test_compare_needs_two_runs() -> None:
    with pytest.raises(GateError, match="at least two runs"):
        compare({"only": synthetic_run(10, AgentModel(), seed=1)}, make_rubric())


# ------------------------------------------------------------------ drift between runs

META = {"rubric_sha256": "f" * 64, "profile": "none", "scenario_set": "s", "host": "h1",
        "started_at": 1_000_000.0, "loop_lag_p99_ms": 1.0}


def _drift(policy: str) -> dict[str, object]:
    return {"policy": policy, "widen": 0.10, "max_hours_apart": 1}


@pytest.fixture(scope="module")
def slower_by_12pct() -> dict[str, list[CallOutcome]]:
    """The same agent, the second run about 12% slower on latency (what a busier machine
    gives two runs made separately), nothing else different."""
    return {"base": synthetic_run(800, AgentModel(), seed=1),
            "busier": synthetic_run(800, AgentModel(ttft_shift_ms=200), seed=2)}


def _latency_winners(res: object) -> list[str]:
    from simulator.gate.compare import CompareResult

    assert isinstance(res, CompareResult)
    return [r.segment for r in res.routes for c in r.comparisons
            if c.name == "p95_ttft_ms" and c.winner() is not None]


def test_separate_runs_widen_latency_by_the_rubrics_drift_policy(
        slower_by_12pct: dict[str, list[CallOutcome]]) -> None:
    metas = {"base": META, "busier": META}
    note = compare(slower_by_12pct, make_rubric(drift=_drift("note")), metas=metas)
    widen = compare(slower_by_12pct, make_rubric(drift=_drift("widen")), metas=metas)
    # Judged as is, the slower run loses on latency; allowed 10% for drift, it does not.
    assert "all calls" in _latency_winners(note)
    assert _latency_winners(widen) == []
    assert [(d.baseline, d.candidate, d.widened) for d in widen.drift] == [
        ("base", "busier", pytest.approx(0.10))]
    # Accuracy and refusal do not move with load: their decisions and margins are the
    # same (their intervals move only with the Holm level).
    for a, b in zip(note.routes, widen.routes, strict=True):
        for ca, cb in zip(a.comparisons, b.comparisons, strict=True):
            if ca.name in ("tool_arg_accuracy", "refusal_rate"):
                assert (ca.row.decision, ca.row.win_margin) == (cb.row.decision, cb.row.win_margin)
    lines = render_lines(widen, width=80)
    assert any("latency and cost intervals widened by ±10%" in line for line in lines)
    data = compare_to_json(widen)
    assert data["drift"][0]["widened"] == pytest.approx(0.10)


def test_runs_whose_own_timing_was_late_widen_further(
        slower_by_12pct: dict[str, list[CallOutcome]]) -> None:
    late = {**META, "loop_lag_p99_ms": 12.0}
    res = compare(slower_by_12pct, make_rubric(drift=_drift("widen")),
                  metas={"base": late, "busier": late})
    (d,) = res.drift
    assert d.widened == pytest.approx(0.20)
    assert any("neither run's own timing was trustworthy" in line for line in d.lines)
    verbose = render_lines(res, width=80, verbose=True)
    assert any("loop lag p99 12 ms (baseline)" in line for line in verbose)


def test_arms_of_one_interleaved_run_get_no_drift_allowance(
        slower_by_12pct: dict[str, list[CallOutcome]]) -> None:
    res = compare(slower_by_12pct, make_rubric(drift=_drift("widen")),
                  metas={"base": META, "busier": META},
                  made_in={"base": "run-1", "busier": "run-1"})
    assert res.drift == ()
    assert "all calls" in _latency_winners(res)


def test_refuse_policy_names_the_pair_it_will_not_compare(
        slower_by_12pct: dict[str, list[CallOutcome]]) -> None:
    with pytest.raises(GateError, match=r"cannot compare base with busier: .*different hosts"):
        compare(slower_by_12pct, make_rubric(drift=_drift("refuse")),
                metas={"base": META, "busier": {**META, "host": "h2"}})
