from __future__ import annotations

import json
import random
import re
from datetime import date

import pytest

from simulator.degradation.faults import (
    FaultEffect,
    apply_fault,
    fault_schedule,
    lognormal_latency,
)
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


def _fault(kind: str, result: object, seed: int) -> FaultEffect:
    return apply_fault({"tool_call_index": 0, "kind": kind, "latency_s": 0.7}, result,
                       random.Random(seed))


@pytest.mark.parametrize(("kind", "status"), [
    ("timeout", "timeout"), ("slow", 200), ("http_5xx", 500), ("http_429", 429),
    ("malformed", 200), ("empty", 200), ("wrong", 200)])
def test_each_effect_names_its_fault_and_status(kind: str, status: object) -> None:
    eff = _fault(kind, RECORD, 1)
    assert (eff.kind, eff.status) == (kind, status)
    assert apply_fault(None, RECORD, random.Random(1)).kind == "ok"


def test_a_wrong_fault_with_nothing_to_change_still_says_it_was_injected() -> None:
    only_ids = {"id": "P-1001", "status": "active"}
    eff = _fault("wrong", only_ids, 0)
    assert (eff.kind, eff.changed, json.loads(eff.body)) == ("wrong", None, only_ids)


def test_an_unknown_fault_kind_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"unknown fault kind 'gremlin' \(known: .*timeout"):
        _fault("gremlin", RECORD, 0)


def test_an_empty_answer_keeps_the_shape_of_the_result() -> None:
    assert _fault("empty", [RECORD], 0).body == "[]"
    assert _fault("empty", RECORD, 0).body == "{}"


def test_malformed_bodies_are_cut_anywhere_before_the_closing_bracket() -> None:
    # A bare number is too short to cut: it is wrapped first, so the agent still gets
    # the start of a JSON object.
    whole = '{"result":5}'
    bodies = {_fault("malformed", 5, seed).body for seed in range(300)}
    assert all(whole.startswith(b) for b in bodies)
    assert {len(b) for b in bodies} == set(range(1, len(whole) - 1))


def _wrong(value: object, seeds: int = 200) -> list[object]:
    out = []
    for seed in range(seeds):
        eff = _fault("wrong", {"v": value}, seed)
        assert eff.changed == "v"
        out.append(json.loads(eff.body)["v"])
    return out


def test_a_wrong_date_is_one_to_three_days_off_either_way() -> None:
    offsets = {(date.fromisoformat(str(v)) - date(2025, 7, 15)).days
               for v in _wrong("2025-07-15")}
    assert offsets == {-3, -2, -1, 1, 2, 3}


@pytest.mark.parametrize(("bad", "wrong"), [("2025-02-30", "2025-02-31"),
                                            ("2025-02-31", "2025-02-32")])
def test_an_impossible_date_gets_another_last_digit(bad: str, wrong: str) -> None:
    assert set(_wrong(bad, 5)) == {wrong}


def test_a_wrong_number_string_has_exactly_one_digit_changed() -> None:
    for v in _wrong("5552013344"):
        assert isinstance(v, str) and len(v) == 10
        assert sum(a != b for a, b in zip(v, "5552013344", strict=True)) == 1


def test_a_wrong_amount_stays_in_cents_and_nearby() -> None:
    got = set(_wrong(10.01))
    assert got == {9.01, 11.01, round(10.01 * 1.5, 2)}


def test_a_wrong_name_swaps_the_surname_and_other_text_grows() -> None:
    for v in _wrong("Jane Shankaran", 30):
        first, last = str(v).split(" ")
        assert first == "Jane" and last != "Shankaran" and last[:1].isupper()
    assert set(_wrong("pending", 3)) == {"pendings"}
    assert set(_wrong("", 3)) == {"unknown"}


def test_a_wrong_value_inside_a_list_is_a_plausible_value_not_null() -> None:
    result = {"slots": [{"time": "14:30"}, {"time": "09:00"}]}
    for seed in range(20):
        eff = _fault("wrong", result, seed)
        body = json.loads(eff.body)
        i = int(str(eff.changed).split(".")[1])
        changed = body["slots"][i]["time"]
        assert re.fullmatch(r"\d\d:\d\d", changed) and changed != result["slots"][i]["time"]
        assert body["slots"][1 - i] == result["slots"][1 - i]
