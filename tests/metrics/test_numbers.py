from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.errors import GateError
from simulator.metrics.numbers import gate_numbers, metric, metric_calls, point
from simulator.results import CallOutcome


def call(i: int, *, ok: bool = True, ttft: tuple[float, ...] = (100.0,), arg_total: int = 2,
         arg_correct: int = 2, strict: bool = True, exists: bool = True,
         refused: bool = False, fabricated: bool = False, cost: float = 0.01,
         extra: dict[str, float] | None = None) -> CallOutcome:
    return CallOutcome(f"c{i}", f"s{i}", "clinic", "clean", "book", ok, None if ok else "reset",
                       ttft, arg_total, arg_correct, strict, exists, refused, fabricated, cost,
                       extra=extra or {})


def test_numbers_follow_the_product_definitions() -> None:
    outs = [
        call(0, ttft=tuple(float(x) for x in range(1, 11))),      # 1..10 ms
        call(1, ttft=tuple(float(x) for x in range(11, 21)), arg_correct=1, strict=False),
        call(2, ok=False, ttft=(9999.0,), arg_correct=0, strict=False, cost=0.0),  # failed
        call(3, exists=False, refused=True, arg_total=0, arg_correct=0),          # good refusal
        call(4, exists=False, refused=True, fabricated=True, arg_total=0, arg_correct=0),
        call(5, exists=False, arg_total=0, arg_correct=0, fabricated=True),       # fabricated
        call(6, refused=True, arg_correct=0, strict=False),                       # over-refusal
    ]
    n = gate_numbers(outs)
    # Pooled turns of ok calls: 1..20 plus four 100 ms turns = 24 values; a failed call's
    # 9999 ms does not count. The 95th percentile (inverted CDF) is the 23rd value.
    assert n["p95_ttft_ms"] == 100.0
    assert n["tool_arg_accuracy"] == pytest.approx((2 + 1 + 0 + 0) / 8)
    assert n["refusal_rate"] == pytest.approx(1 / 3)
    assert n["fabrication_rate"] == pytest.approx(2 / 3)
    assert n["over_refusal_rate"] == pytest.approx(1 / 4)
    assert n["error_rate"] == pytest.approx(1 / 7)
    assert n["strict_pass_rate"] == pytest.approx(4 / 7)   # as graded
    assert n["cost_per_session_usd"] == pytest.approx(0.06 / 7)


def test_p95_matches_numpy_inverted_cdf() -> None:
    g = np.random.default_rng(3)
    outs = [call(i, ttft=tuple(g.lognormal(6, 0.4, int(g.integers(1, 9))).tolist()))
            for i in range(97)]
    pooled = np.concatenate([o.ttft_ms for o in outs])
    assert gate_numbers(outs)["p95_ttft_ms"] == np.percentile(pooled, 95,
                                                             method="inverted_cdf")


def test_no_missing_record_calls_means_no_refusal_rate() -> None:
    n = gate_numbers([call(0), call(1)])
    assert n["refusal_rate"] is None
    assert metric_calls([call(0), call(1)], "refusal_rate") == 0


def test_extra_guard_metrics() -> None:
    outs = [call(i, extra={"ttfa_ms": float(i)}) for i in range(1, 101)] + [call(0)]
    assert point(metric(outs, "p95_ttfa_ms")) == 95.0
    assert point(metric(outs, "ttfa_ms")) == pytest.approx(50.5)
    assert metric_calls(outs, "ttfa_ms") == 100
    with pytest.raises(GateError, match="unknown metric 'p95_ttfb_ms'.*ttfa_ms"):
        metric(outs, "p95_ttfb_ms")


def _relay_call(i: int, observed: bool, arg_correct: int = 0) -> CallOutcome:
    return replace(call(i, arg_correct=arg_correct, strict=arg_correct == 2),
                   tools_observed=observed)


def test_tool_accuracy_is_not_observed_when_the_agent_never_used_the_relay() -> None:
    # A bot with its own backend: every other number is graded, tool numbers have no data.
    missing = call(2, exists=False, refused=True, arg_total=0, arg_correct=0)
    outs = [_relay_call(0, False), _relay_call(1, False), replace(missing, tools_observed=False)]
    n = gate_numbers(outs)
    assert n["tool_arg_accuracy"] is None and n["strict_pass_rate"] is None
    assert n["refusal_rate"] == 1.0 and n["error_rate"] == 0.0


def test_one_call_using_the_relay_makes_every_call_count_for_tool_accuracy() -> None:
    # The bot does use the relay: a call where it made no tool request scores 0, not "unseen".
    n = gate_numbers([_relay_call(0, True, arg_correct=2), _relay_call(1, False)])
    assert n["tool_arg_accuracy"] == pytest.approx(2 / 4)
    assert n["strict_pass_rate"] == pytest.approx(1 / 2)
    # In-band tools (text transports) are always observed.
    assert gate_numbers([call(0, arg_correct=0, strict=False)])["tool_arg_accuracy"] == 0.0
