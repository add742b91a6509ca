from __future__ import annotations

import json
import random

import pytest

from simulator.degradation.faults import apply_fault, fault_schedule, lognormal_latency
from simulator.degradation.profile import get_profile

RECORD = {"patient": {"id": "P-1001", "name": "Jane Shankaran", "date_of_birth": "1984-03-05",
                      "phone": "5552013344"},
          "slots": [{"date": "2025-07-15", "time": "14:30", "available": True}]}


def test_latency_is_lognormal_with_median_and_p95() -> None:
    r = random.Random(3)
    xs = sorted(lognormal_latency(r, 0.4, 2.0) for _ in range(20000))
    assert xs[len(xs) // 2] == pytest.approx(0.4, rel=0.05)
    assert xs[int(len(xs) * 0.95)] == pytest.approx(2.0, rel=0.08)


def test_schedule_is_seeded_and_timeouts_hang() -> None:
    tf = get_profile("hostile").tool_faults
    a = fault_schedule(tf, 3, random.Random(9))
    assert a == fault_schedule(tf, 3, random.Random(9))
    many = [f for s in range(300) for f in fault_schedule(tf, 3, random.Random(s))]
    assert {f["kind"] for f in many} == {"timeout", "slow", "http_5xx", "http_429",
                                         "malformed", "empty", "wrong"}
    assert all(f["latency_s"] == 30.0 for f in many if f["kind"] == "timeout")
    assert all(0 <= f["tool_call_index"] < 3 + tf.spare_calls for f in many)


@pytest.mark.parametrize("kind", ["malformed", "empty", "wrong", "http_5xx", "http_429",
                                  "timeout", "slow"])
def test_apply_fault_effects(kind: str) -> None:
    for seed in range(30):
        eff = apply_fault({"tool_call_index": 0, "kind": kind, "latency_s": 0.7}, RECORD,
                          random.Random(seed))
        if kind == "malformed":
            with pytest.raises(json.JSONDecodeError):
                json.loads(eff.body)
        elif kind == "empty":
            assert json.loads(eff.body) == {}
        elif kind == "wrong":
            body = json.loads(eff.body)
            assert body != RECORD and eff.changed is not None
            assert body["patient"]["id"] == "P-1001"  # identifiers stay: plausible, not absurd
            assert isinstance(body, dict) and set(body) == set(RECORD)
        elif kind == "timeout":
            assert eff.status == "timeout"
        elif kind == "slow":
            assert eff.status == 200 and json.loads(eff.body) == RECORD
        else:
            assert eff.status == (500 if kind == "http_5xx" else 429)
        assert eff.delay_s == 0.7
    ok = apply_fault(None, RECORD, random.Random(0))
    assert ok.status == 200 and json.loads(ok.body) == RECORD and ok.delay_s == 0.0
