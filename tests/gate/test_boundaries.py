"""The gate's decision at every boundary of the interval rules, from hand-made intervals.

Each gate number's improvement interval [lo, hi] (candidate - baseline, sign-flipped when
lower is better) is decided against the win margin m and the lose-badly threshold L:
win lo > 0 and lo >= m; loss hi < 0 and hi <= -m; loss_badly hi < -L; tie -m <= lo, hi <= m;
otherwise inconclusive. These tests put the interval exactly on, and just past, each edge,
for a higher-is-better and a lower-is-better number, with absolute and relative margins, so
an off-by-one in a comparison or a lost sign flip changes a verdict here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from simulator.gate.decide import (
    GuardRow,
    NumberRow,
    _guard,
    _verdict,
    decide_number,
    evaluate,
    fmt_delta,
    fmt_interval,
    fmt_value,
    unit_of,
)
from simulator.gate.rubric import GATE_NUMBERS, NumberRule
from simulator.gate.stats import Estimate, PairEstimate
from simulator.gate.synthetic import AgentModel, synthetic_run

from ._helpers import make_rubric

EPS = 1e-6
N = 500          # calls behind every estimate: above both minimums of the test rubric
RUBRIC = make_rubric(min_calls_per_arm=200, min_missing_record_calls=40)

# Absolute margins: m = 2, L = 5 in the number's units. Relative: 5 % and 20 % of a
# baseline of 400 -> m = 20, L = 80.
ABS = NumberRule(win_margin=2.0, lose_badly=5.0)
REL = NumberRule(win_margin=0.05, lose_badly=0.20, relative=True)
BASE_VALUE = 400.0
KINDS = {"absolute": (ABS, 2.0, 5.0), "relative": (REL, 20.0, 80.0)}
NUMBERS = {"higher": "tool_arg_accuracy", "lower": "p95_ttft_ms"}


def _est(imp_lo: float, imp_hi: float, direction: str, *, n: int = N, base: float = BASE_VALUE,
         base_n: int | None = None) -> PairEstimate:
    """A pair estimate whose *improvement* interval is [imp_lo, imp_hi]: for a lower-is-better
    number the raw difference (candidate - baseline) is its negation."""
    if direction == "higher":
        d_lo, d_hi = imp_lo, imp_hi
    else:
        d_lo, d_hi = -imp_hi, -imp_lo
    mid = (d_lo + d_hi) / 2
    return PairEstimate(Estimate(base, base - 1, base + 1, base_n if base_n is not None else n),
                        Estimate(base + mid, base + d_lo, base + d_hi, n),
                        Estimate(mid, d_lo, d_hi, n))


def _decide(imp_lo: float, imp_hi: float, direction: str, kind: str) -> NumberRow:
    rule, _, _ = KINDS[kind]
    name = NUMBERS[direction]
    return decide_number(name, rule, _est(imp_lo, imp_hi, direction), RUBRIC)


def _cases() -> list[Any]:
    """(improvement lo, hi as multiples of m and L) -> decision, for every edge."""
    # Each case: (id, lo, hi, decision); lo/hi are functions of (m, L).
    return [
        ("win-lo-on-margin", lambda m, L: (m, m + 10), "win"),
        ("win-lo-just-below-margin", lambda m, L: (m - EPS, m + 10), "inconclusive"),
        ("tie-lo-just-below-margin-hi-on-margin", lambda m, L: (m - EPS, m), "tie"),
        ("loss-hi-on-margin", lambda m, L: (-m - 10, -m), "loss"),
        ("loss-hi-just-above-margin", lambda m, L: (-m - 10, -m + EPS), "inconclusive"),
        ("tie-both-edges", lambda m, L: (-m, m), "tie"),
        ("tie-lo-past-edge", lambda m, L: (-m - EPS, m), "inconclusive"),
        ("tie-hi-past-edge", lambda m, L: (-m, m + EPS), "inconclusive"),
        ("straddles-zero", lambda m, L: (-m - 1, m + 1), "inconclusive"),
        ("better-but-straddles-margin", lambda m, L: (m / 2, 2 * m), "inconclusive"),
        ("loss-badly-hi-just-below-threshold", lambda m, L: (-L - 10, -L - EPS), "loss_badly"),
        ("loss-hi-on-threshold", lambda m, L: (-L - 10, -L), "loss"),
    ]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("direction", list(NUMBERS))
@pytest.mark.parametrize(("bounds", "decision"), [(c[1], c[2]) for c in _cases()],
                         ids=[c[0] for c in _cases()])
def test_decision_at_each_edge(direction: str, kind: str, bounds: Any, decision: str) -> None:
    _, m, bad = KINDS[kind]
    lo, hi = bounds(m, bad)
    row = _decide(lo, hi, direction, kind)
    assert row.decision == decision, row.reason
    assert row.not_badly is (lo > -bad)
    assert row.win_margin == pytest.approx(m) and row.lose_badly == pytest.approx(bad)
    assert row.direction == direction
    assert row.name == NUMBERS[direction]


@pytest.mark.parametrize("direction", list(NUMBERS))
def test_raw_difference_is_oriented_by_direction(direction: str) -> None:
    # The same raw difference (candidate 30..50 above baseline) is a win when higher is
    # better and a loss (not a bad one) when lower is better.
    name = NUMBERS[direction]
    d = Estimate(40.0, 30.0, 50.0, N)
    est = PairEstimate(Estimate(BASE_VALUE, 399, 401, N), Estimate(440.0, 430, 450, N), d)
    row = decide_number(name, REL, est, RUBRIC)   # m = 20, L = 80
    assert row.decision == ("win" if direction == "higher" else "loss")
    assert row.difference == d and row.baseline.value == BASE_VALUE
    assert row.not_badly is True


def test_latency_interval_straddling_zero_is_not_a_win() -> None:
    # A lower-is-better number whose difference spans -30..+30 ms: neither better nor worse.
    est = PairEstimate(Estimate(BASE_VALUE, 399, 401, N), Estimate(BASE_VALUE, 370, 430, N),
                       Estimate(0.0, -30.0, 30.0, N))
    row = decide_number("p95_ttft_ms", REL, est, RUBRIC)
    assert row.decision == "inconclusive"
    assert "straddles" in row.reason and "more calls would decide it" in row.reason


@pytest.mark.parametrize("direction", list(NUMBERS))
def test_zero_margin_needs_an_interval_strictly_past_zero(direction: str) -> None:
    zero = NumberRule(win_margin=0.0, lose_badly=5.0)
    name = NUMBERS[direction]

    def decide(lo: float, hi: float) -> str:
        return decide_number(name, zero, _est(lo, hi, direction), RUBRIC).decision

    assert decide(0.0, 3.0) == "inconclusive"
    assert decide(EPS, 3.0) == "win"
    assert decide(-3.0, 0.0) == "inconclusive"
    assert decide(-3.0, -EPS) == "loss"
    assert decide(0.0, 0.0) == "tie"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("direction", list(NUMBERS))
def test_not_badly_is_lo_strictly_above_minus_threshold(direction: str, kind: str) -> None:
    _, m, bad = KINDS[kind]
    on = _decide(-bad, m / 2, direction, kind)
    inside = _decide(-bad + EPS, m / 2, direction, kind)
    assert on.not_badly is False and inside.not_badly is True
    # Neither is a loss: the interval reaches above -m.
    assert on.decision == inside.decision == "inconclusive"


def test_relative_margins_scale_with_the_baseline_value() -> None:
    # 5 % of a 1000 ms baseline is 50 ms: a 40 ms improvement over the whole interval is
    # not enough, 50 ms is.
    for lo, decision in ((40.0, "inconclusive"), (50.0, "win")):
        row = decide_number("p95_ttft_ms", REL, _est(lo, 60.0, "lower", base=1000.0), RUBRIC)
        assert row.decision == decision
        assert row.win_margin == pytest.approx(50.0)
        assert row.lose_badly == pytest.approx(200.0)
    absolute = decide_number("p95_ttft_ms", ABS, _est(3.0, 9.0, "lower", base=1000.0), RUBRIC)
    assert absolute.decision == "win" and absolute.win_margin == 2.0


def test_reason_names_the_margin_and_whether_it_is_relative() -> None:
    win = _decide(30.0, 40.0, "lower", "relative")
    assert "better by at least the margin 20 ms (5% of baseline)" in win.reason
    assert "-35 ms [-40 ms, -30 ms]" in win.reason
    loss = _decide(-0.9, -0.1, "higher", "absolute")   # m = 2 -> not a loss: a tie
    assert loss.decision == "tie" and "within the margin ±200.0 pp" in loss.reason
    bad = _decide(-100.0, -90.0, "lower", "relative")
    assert "worse beyond the lose-badly threshold 80 ms (20% of baseline)" in bad.reason
    # A worse latency is a positive difference: its interval is signed like the difference.
    assert bad.reason.startswith("+95 ms [+90 ms, +100 ms]: ")
    plain = _decide(-4.0, -3.0, "higher", "absolute")
    assert plain.decision == "loss" and "worse by at least the margin 200.0 pp" in plain.reason
    assert "of baseline" not in plain.reason


# -------------------------------------------------------------------- too few calls, no value


@pytest.mark.parametrize(
    ("name", "need", "what"),
    [("p95_ttft_ms", 200, "ok calls with timed turns"),
     ("tool_arg_accuracy", 200, "calls with expected tool arguments"),
     ("refusal_rate", 40, "calls on missing records"),
     ("cost_per_session_usd", 200, "calls")],
)
def test_minimum_calls_per_number_is_inclusive(name: str, need: int, what: str) -> None:
    direction = GATE_NUMBERS[name]
    enough = decide_number(name, ABS, _est(10.0, 20.0, direction, n=need), RUBRIC)
    assert enough.decision == "win"
    for n, base_n in ((need - 1, need), (need, need - 1)):
        row = decide_number(name, ABS, _est(10.0, 20.0, direction, n=n, base_n=base_n), RUBRIC)
        assert row.decision == "inconclusive"
        assert row.reason == (f"too few {what}: baseline {base_n}, candidate {n}, "
                              f"the rubric needs {need}")
        assert row.not_badly is None and row.win_margin is None


@pytest.mark.parametrize("missing", ["base_value", "diff_value", "diff_lo", "diff_hi"])
def test_a_missing_value_or_interval_end_is_inconclusive(missing: str) -> None:
    est = _est(10.0, 20.0, "higher")
    b, c, d = est.baseline, est.candidate, est.diff
    if missing == "base_value":
        b = Estimate(None, None, None, N)
    elif missing == "diff_value":
        d = Estimate(None, d.lo, d.hi, N)
    elif missing == "diff_lo":
        d = Estimate(d.value, None, d.hi, N)
    else:
        d = Estimate(d.value, d.lo, None, N)
    row = decide_number("tool_arg_accuracy", ABS, PairEstimate(b, c, d), RUBRIC)
    assert (row.decision, row.reason) == ("inconclusive", "no value on this data")


# ------------------------------------------------------------------------------ the verdict


def _row(name: str, decision: str, not_badly: bool | None = True) -> NumberRow:
    e = Estimate(1.0, 0.5, 1.5, N)
    return NumberRow(name, GATE_NUMBERS[name], e, e, e, 0.1, 0.5, decision,  # type: ignore[arg-type]
                     f"{decision} reason", not_badly)


def _rows(*decisions: str) -> list[NumberRow]:
    return [_row(n, d) for n, d in zip(GATE_NUMBERS, decisions, strict=True)]


@pytest.mark.parametrize(
    ("decisions", "wins_needed", "verdict"),
    [
        (("win", "win", "tie", "tie"), 2, "PASS"),
        (("win", "win", "tie", "tie"), 3, "INCONCLUSIVE"),
        (("win", "win", "win", "tie"), 3, "PASS"),
        (("win", "win", "win", "tie"), 4, "INCONCLUSIVE"),
        (("win", "win", "win", "win"), 4, "PASS"),
        (("win", "tie", "tie", "tie"), 2, "INCONCLUSIVE"),
        # A loss fails only when the numbers left undecided cannot make up the wins needed.
        (("win", "win", "loss", "tie"), 2, "PASS"),
        (("win", "win", "loss", "tie"), 3, "FAIL"),
        (("win", "win", "loss", "inconclusive"), 3, "INCONCLUSIVE"),
        (("win", "win", "win", "loss"), 3, "PASS"),
        (("win", "win", "win", "loss"), 4, "FAIL"),
        (("win", "loss", "inconclusive", "inconclusive"), 3, "INCONCLUSIVE"),
        (("win", "loss", "tie", "inconclusive"), 3, "FAIL"),
        (("win", "loss", "loss", "inconclusive"), 2, "INCONCLUSIVE"),
        (("win", "loss", "loss", "tie"), 2, "FAIL"),
        (("win", "win", "loss", "inconclusive"), 4, "FAIL"),
        (("win", "win", "win", "loss_badly"), 3, "FAIL"),
        (("win", "win", "win", "loss_badly"), 1, "FAIL"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_verdict_for_wins_needed(decisions: tuple[str, ...], wins_needed: int,
                                 verdict: str) -> None:
    got, reasons = _verdict(_rows(*decisions), [], wins_needed)
    assert got == verdict, reasons
    assert reasons


def test_two_wins_two_ties_under_three_needed_says_why() -> None:
    verdict, reasons = _verdict(_rows("win", "win", "tie", "tie"), [], 3)
    assert verdict == "INCONCLUSIVE"
    assert reasons == ["2 of 4 numbers win; 3 needed, and no loss shows the candidate cannot "
                       "get there"]


def test_fail_reasons_name_every_loss_and_the_count() -> None:
    verdict, reasons = _verdict(_rows("win", "loss", "loss", "tie"), [], 3)
    assert verdict == "FAIL"
    assert reasons == ["tool_arg_accuracy loses: loss reason", "refusal_rate loses: loss reason",
                       "at most 1 of 4 numbers can still win; 3 needed"]
    verdict, reasons = _verdict(_rows("win", "loss_badly", "loss", "win"), [], 2)
    assert verdict == "FAIL"
    assert reasons == ["tool_arg_accuracy loses badly: loss_badly reason",
                       "refusal_rate loses: loss reason"]


def test_pass_lists_the_wins_and_the_others_not_losing_badly() -> None:
    verdict, reasons = _verdict(_rows("win", "win", "win", "tie"), [], 3)
    assert verdict == "PASS"
    assert reasons == ["p95_ttft_ms wins: win reason", "tool_arg_accuracy wins: win reason",
                       "refusal_rate wins: win reason",
                       "cost_per_session_usd tie, not losing badly: tie reason"]


@pytest.mark.parametrize("not_badly", [False, None])
def test_a_number_that_may_lose_badly_blocks_a_pass(not_badly: bool | None) -> None:
    rows = _rows("win", "win", "win", "win")
    rows[3] = _row("cost_per_session_usd", "tie", not_badly=not_badly)
    verdict, reasons = _verdict(rows, [], 3)
    assert verdict == "INCONCLUSIVE"
    assert reasons == ["cost_per_session_usd: the interval does not rule out losing badly "
                       "(threshold $0.5000)"]
    # A win that does not rule out losing badly cannot happen, and is not asked about.
    rows[3] = _row("cost_per_session_usd", "win", not_badly=not_badly)
    assert _verdict(rows, [], 3)[0] == "PASS"


def test_inconclusive_numbers_are_named() -> None:
    verdict, reasons = _verdict(_rows("win", "win", "win", "inconclusive"), [], 3)
    assert verdict == "INCONCLUSIVE"
    assert reasons == ["cost_per_session_usd inconclusive: inconclusive reason"]


# ----------------------------------------------------------------------------------- guards


def _guard_row(breached: bool | None) -> GuardRow:
    e = Estimate(0.01, 0.0, 0.02, N)
    return GuardRow("error_rate", 0.05, None, e, e, breached, "guard reason")


@pytest.mark.parametrize(
    ("limits", "value", "breached"),
    [({"max": 0.05}, 0.05, False), ({"max": 0.05}, 0.0500001, True),
     ({"min": 0.5}, 0.5, False), ({"min": 0.5}, 0.4999999, True),
     ({"max": 0.9, "min": 0.1}, 0.5, False), ({"max": 0.9, "min": 0.1}, 0.95, True),
     ({"max": 0.9, "min": 0.1}, 0.05, True), ({"max": 0.05}, None, None)],
    ids=["on-max", "over-max", "on-min", "under-min", "between", "over-of-both",
         "under-of-both", "no-data"],
)
def test_guard_limits_are_inclusive(limits: dict[str, float], value: float | None,
                                    breached: bool | None) -> None:
    rubric = make_rubric(guards={"error_rate": limits})
    b = Estimate(0.01, 0.0, 0.02, N)
    c = Estimate(value, None, None, N)
    row = _guard("error_rate", rubric, b, c)
    assert row.breached is breached
    assert (row.max, row.min) == (limits.get("max"), limits.get("min"))
    if breached:
        over = "max" in limits and value is not None and value > limits["max"]
        limit = f"max {limits['max'] * 100:.1f}%" if over else f"min {limits['min'] * 100:.1f}%"
        assert row.reason == f"candidate {100 * value:.1f}% breaches {limit}"  # type: ignore[operator]
    elif breached is None:
        assert row.reason == "no data in the candidate run"
    else:
        assert row.reason == f"candidate {100 * value:.1f}% within limits"  # type: ignore[operator]


def test_breached_guard_fails_and_unknown_guard_is_inconclusive() -> None:
    rows = _rows("win", "win", "win", "win")
    verdict, reasons = _verdict(rows, [_guard_row(True)], 3)
    assert (verdict, reasons) == ("FAIL", ["guard error_rate: guard reason"])
    verdict, reasons = _verdict(rows, [_guard_row(None)], 3)
    assert (verdict, reasons) == ("INCONCLUSIVE", ["guard error_rate: guard reason"])
    assert _verdict(rows, [_guard_row(False)], 3)[0] == "PASS"


def test_guard_on_an_extra_metric_is_judged_from_the_candidate_run() -> None:
    base = synthetic_run(60, AgentModel(), seed=1, run="base")
    cand = synthetic_run(60, AgentModel(error_rate=0.3), seed=2, run="cand")
    rubric = make_rubric(guards={"error_rate": {"max": 0.10}, "p95_ttfa_ms": {"max": 1e6}},
                         bootstrap_resamples=200)
    res = evaluate(base, cand, rubric)
    assert res.verdict == "FAIL"
    err, ttfa = res.guards
    assert err.name == "error_rate" and ttfa.name == "p95_ttfa_ms"
    assert err.breached is True and err.candidate.value > 0.1  # type: ignore[operator]
    # Not a number the pair bootstrap carries: each run is bootstrapped on its own.
    assert ttfa.breached is False
    assert ttfa.baseline.value is not None and ttfa.candidate.value is not None
    assert ttfa.baseline.lo is not None and ttfa.candidate.n == 60 - sum(not o.ok for o in cand)
    assert ["guard error_rate" in r for r in res.reasons] == [True]
    assert res.wins_needed == 3 and res.resamples == 200 and res.confidence == 0.95
    assert (res.baseline_calls, res.candidate_calls) == (60, 60) and res.paired
    assert res.rubric_sha256 == "f" * 64
    assert set(res.context) == {"strict_pass_rate", "fabrication_rate", "over_refusal_rate",
                                "error_rate"}
    assert res.wins == sum(r.decision == "win" for r in res.rows)


# ------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("name", "unit", "value", "delta"),
    [("p95_ttft_ms", "ms", "412 ms", "+412 ms"),
     ("cost_per_session_usd", "usd", "$412.3456", "+$412.3456"),
     ("tool_arg_accuracy", "rate", "41234.6%", "+41234.6 pp"),
     ("strict_pass_rate", "rate", "41234.6%", "+41234.6 pp"),
     ("over_refusal_rate", "rate", "41234.6%", "+41234.6 pp"),
     ("judge_rate", "rate", "41234.6%", "+41234.6 pp"),
     ("slot_accuracy", "rate", "41234.6%", "+41234.6 pp"),
     ("turns", "", "412.3", "+412.3")],
)
def test_units_and_formats(name: str, unit: str, value: str, delta: str) -> None:
    assert unit_of(name) == unit
    assert fmt_value(name, 412.3456) == value
    assert fmt_delta(name, 412.3456) == delta
    assert fmt_value(name, None) == fmt_delta(name, None) == "n/a"


def test_negative_deltas_and_intervals() -> None:
    assert fmt_delta("cost_per_session_usd", -0.0123) == "-$0.0123"
    assert fmt_delta("cost_per_session_usd", 0.0) == "+$0.0000"
    assert fmt_delta("p95_ttft_ms", -12.4) == "-12 ms"
    e = Estimate(0.5, -0.01, 0.02, N)
    assert fmt_interval("tool_arg_accuracy", e) == "[-1.0%, 2.0%]"
    assert fmt_interval("tool_arg_accuracy", e, delta=True) == "[-1.0 pp, +2.0 pp]"
    assert fmt_interval("tool_arg_accuracy", Estimate(0.5, None, 0.2, N)) == "[n/a]"
    assert fmt_interval("tool_arg_accuracy", Estimate(0.5, 0.1, None, N)) == "[n/a]"


def test_an_explicit_pairing_choice_is_kept() -> None:
    base = synthetic_run(60, AgentModel(), seed=1, run="base")
    cand = synthetic_run(60, AgentModel(), seed=2, run="cand")
    rubric = make_rubric(bootstrap_resamples=200)
    assert evaluate(base, cand, rubric).paired is True        # same scripts: paired
    assert evaluate(base, cand, rubric, paired=False).paired is False


def test_an_unknown_guard_metric_is_tolerated_when_a_run_has_no_ok_call() -> None:
    # Nothing carries the metric, but a run without one ok call cannot show it is unknown.
    base = synthetic_run(40, AgentModel(), seed=1, run="base")
    dead = [replace(o, ok=False, extra={}) for o in synthetic_run(40, AgentModel(), seed=2)]
    rubric = make_rubric(guards={"p95_stall_ms": {"max": 10}}, bootstrap_resamples=200)
    (g,) = evaluate(base, dead, rubric).guards
    assert g.breached is None and not g.applies
    assert g.reason == "recorded by neither run: does not apply"
