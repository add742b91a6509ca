"""Drift policy for sequential runs, A/A calibration, the pre-run call notice, 80 columns."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from simulator.errors import GateError
from simulator.gate.aa import calibrate, relabel
from simulator.gate.decide import drift_conditions, judge
from simulator.gate.output import render, render_aa
from simulator.gate.plan import calls_notice
from simulator.gate.synthetic import AgentModel, synthetic_run
from simulator.personas import generate_calls, load_packs

from ._helpers import make_rubric

META = {"rubric_sha256": "f" * 64, "profile": "none", "scenario_set": "s", "host": "h1",
        "started_at": 1_000_000.0, "loop_lag_p99_ms": 1.0}


def _drift(policy: str, **kw: float) -> dict[str, object]:
    return {"policy": policy, **kw}


def test_sequential_runs_state_what_the_gate_cannot_see() -> None:
    rubric = make_rubric(drift=_drift("note", max_hours_apart=1))
    later = {**META, "host": "h2", "started_at": META["started_at"] + 3 * 3600,  # type: ignore[operator]
             "loop_lag_p99_ms": 40.0}
    lines, named = drift_conditions(rubric, META, later)
    text = " ".join(lines)
    assert named == 3
    assert "3.0 h apart" in text and "different hosts" in text and "loop-lag" in text
    lines, named = drift_conditions(rubric, META, {**META, "started_at": 1_000_600.0})
    assert named == 0 and "10 min apart" in lines[0]


def test_widen_policy_turns_a_small_latency_loss_inconclusive() -> None:
    base = synthetic_run(800, AgentModel(), seed=1)
    slower = synthetic_run(800, AgentModel(ttft_shift_ms=200), seed=2)  # about +12%
    note = judge(base, slower, make_rubric(drift=_drift("note")), META, META)
    widen = judge(base, slower, make_rubric(drift=_drift("widen", widen=0.1)), META, META)
    assert note.row("p95_ttft_ms").decision in ("loss", "loss_badly")
    assert widen.row("p95_ttft_ms").decision == "inconclusive"
    assert widen.widened == pytest.approx(0.1)
    assert any("latency and cost intervals widened by ±10%" in n for n in widen.drift)
    d_note, d_wide = note.row("p95_ttft_ms").difference, widen.row("p95_ttft_ms").difference
    assert d_wide.lo < d_note.lo and d_wide.hi > d_note.hi  # type: ignore[operator]
    # Numbers that do not move with load are untouched; cost does (per-minute charges).
    assert note.row("refusal_rate").difference == widen.row("refusal_rate").difference
    c_note, c_wide = note.row("cost_per_session_usd"), widen.row("cost_per_session_usd")
    assert c_wide.difference.lo < c_note.difference.lo  # type: ignore[operator]


def test_refuse_policy_declines_runs_from_different_hosts() -> None:
    base = synthetic_run(300, AgentModel(), seed=1)
    rubric = make_rubric(drift=_drift("refuse"))
    with pytest.raises(GateError, match="different hosts"):
        judge(base, base, rubric, META, {**META, "host": "elsewhere"})
    assert judge(base, base, rubric, META, META).mode == "sequential"


def test_interleaved_arms_get_no_drift_policy() -> None:
    a = synthetic_run(400, AgentModel(), seed=1)
    b = synthetic_run(400, AgentModel(), seed=2)
    res = judge(a, b, make_rubric(drift=_drift("refuse")), META, {**META, "host": "x"},
                interleaved=True)
    assert res.mode == "interleaved" and res.drift == () and res.widened == 0.0


def test_relabel_swaps_whole_scripts_between_arms() -> None:
    a = synthetic_run(50, AgentModel(), seed=1, run="a")
    b = synthetic_run(50, AgentModel(), seed=2, run="b")
    ra, rb = relabel(a, b, 3)
    assert sorted(o.script_id for o in ra) == sorted(o.script_id for o in a)
    moved = {o.script_id for o in ra if o.call_id.startswith("b-")}
    assert 10 < len(moved) < 40
    assert {o.script_id for o in rb if o.call_id.startswith("a-")} == moved
    assert relabel(a, b, 3) == (ra, rb)


def test_aa_calibration_counts_false_fails_and_catches_a_real_difference() -> None:
    rubric = make_rubric(bootstrap_resamples=200)
    a = synthetic_run(400, AgentModel(), seed=1)
    b = synthetic_run(400, AgentModel(), seed=2)
    same = calibrate(a, b, rubric, judge(a, b, rubric, META, META, interleaved=True), draws=20)
    assert same.draws == 20 and same.fails <= 1 and same.ok
    worse = synthetic_run(400, AgentModel(ttft_shift_ms=400, fabricate_rate=0.3,
                                          refusal_rate=0.6), seed=2)
    diff = calibrate(a, worse, rubric, judge(a, worse, rubric, META, META, interleaved=True),
                     draws=10)
    assert not diff.ok
    text = _text(render_aa(diff))
    assert "TOO MANY" in text and "false-fail rate" in text


def test_calls_notice_names_the_numbers_a_short_run_leaves_inconclusive() -> None:
    calls = generate_calls(load_packs(None), "all", 60, 5)
    missing = sum(not c.record_exists for c in calls)
    rubric = make_rubric(min_calls_per_arm=50, min_missing_record_calls=40)
    cfg = SimpleNamespace(k_arms=2, seed=0)
    text = calls_notice(rubric, calls, cfg, total=120, n_warm=0)
    assert f"this run plans 60 per arm ({missing} on missing records" in text
    assert "NOT enough" in text and f"refusal_rate: {missing} calls on missing records, 40 needed" \
        in text
    assert "p95_ttft_ms" not in text.split("NOT enough")[1]
    ok = calls_notice(make_rubric(min_calls_per_arm=50, min_missing_record_calls=missing),
                      calls, cfg, total=120, n_warm=0)
    assert ok.endswith("enough, if the calls complete")


def _text(renderable: object, width: int = 80) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable)
    return buf.getvalue()


def test_gate_output_fits_80_columns_with_two_lines_per_number() -> None:
    base = synthetic_run(800, AgentModel(), seed=1)
    cand = synthetic_run(800, AgentModel(ttft_shift_ms=200, fabricate_rate=0.3,
                                         refusal_rate=0.65, cost_mean_usd=12.5), seed=2)
    later = {**META, "host": "h2"}
    res = judge(base, cand, make_rubric(drift=_drift("widen")), META, later)
    lines = _text(render(res)).splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    body = [line for line in lines[rule + 1:lines.index("why:")] if line.strip()]
    assert len(body) == 2 * len(res.rows) + 2 * len(res.guards) + len(res.context)
    text = "\n".join(lines)
    assert "FAIL" in text and "different hosts" in text
    assert "p95_ttft_ms" in text.split("why:")[1]


@pytest.mark.parametrize(("seconds", "shown"), [(10.4999, "10 s"), (45.0, "45 s"),
                                                (30 * 60, "30 min"), (90 * 60, "1.5 h")])
def test_how_far_apart_the_runs_started_is_shown_in_a_fitting_unit(seconds: float,
                                                                   shown: str) -> None:
    later = {**META, "started_at": META["started_at"] + seconds}  # type: ignore[operator]
    lines, _ = drift_conditions(make_rubric(drift=_drift("note", max_hours_apart=2)), META,
                                later)
    assert lines[0].startswith(f"separate runs (started {shown} apart): ")


def test_runs_too_far_apart_say_so_after_the_sequential_line() -> None:
    later = {**META, "started_at": META["started_at"] + 30 * 3600}  # type: ignore[operator]
    lines, named = drift_conditions(make_rubric(drift=_drift("note", max_hours_apart=24)),
                                    META, later)
    assert named == 1 and len(lines) == 2
    assert lines[0].startswith("separate runs (started 30.0 h apart): ")
    assert lines[1] == ("the runs started 30.0 h apart, more than the rubric's 24 h "
                        "(drift.max_hours_apart)")


@pytest.mark.parametrize("which", ["baseline", "candidate"])
def test_a_run_without_a_start_time_is_named_not_an_error(which: str) -> None:
    unknown = {k: v for k, v in META.items() if k != "started_at"}
    b, c = (unknown, META) if which == "baseline" else (META, unknown)
    lines, named = drift_conditions(make_rubric(), b, c)
    assert named == 0
    assert lines[0].startswith("separate runs (start times not recorded): ")


def test_loop_lag_at_the_threshold_is_still_trustworthy() -> None:
    from simulator.driver.looplag import DEFAULT_THRESHOLD_MS

    at = {**META, "loop_lag_p99_ms": DEFAULT_THRESHOLD_MS}
    below = {**META, "loop_lag_p99_ms": DEFAULT_THRESHOLD_MS - 1}
    assert drift_conditions(make_rubric(), at, below)[1] == 0
    over = {**META, "loop_lag_p99_ms": DEFAULT_THRESHOLD_MS + 1}
    lines, named = drift_conditions(make_rubric(), at, over)
    assert named == 1
    assert lines[-1].startswith(
        f"different loop-lag verdicts: baseline trustworthy (p99 {DEFAULT_THRESHOLD_MS:.0f} ms)"
        f", candidate not trustworthy (p99 {DEFAULT_THRESHOLD_MS + 1:.0f} ms) ")


def test_a_run_without_loop_lag_reads_not_measured() -> None:
    unmeasured = {k: v for k, v in META.items() if k != "loop_lag_p99_ms"}
    lines, named = drift_conditions(make_rubric(), unmeasured, META)
    assert named == 1
    assert lines[-1].startswith("different loop-lag verdicts: baseline not measured, "
                                "candidate trustworthy (p99 1 ms) ")


def test_both_runs_with_untrustworthy_timing_are_a_condition() -> None:
    from simulator.driver.looplag import DEFAULT_THRESHOLD_MS

    late = {**META, "loop_lag_p99_ms": DEFAULT_THRESHOLD_MS + 4}
    lines, named = drift_conditions(make_rubric(), late, {**late, "loop_lag_p99_ms": 30.0})
    assert named == 1
    assert lines[-1] == (f"neither run's own timing was trustworthy: loop lag p99 "
                         f"{DEFAULT_THRESHOLD_MS + 4:.0f} ms (baseline) and 30 ms (candidate)")
