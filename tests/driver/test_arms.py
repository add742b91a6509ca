"""Arms of an interleaved A/B run: parsing, the seeded order, the expanded schedule."""

from __future__ import annotations

from collections import Counter

import pytest

from simulator.driver.arms import Arm, arm_order, check_arms, parse_arm, split_index
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, plan
from simulator.errors import InputError
from simulator.personas import generate_calls, load_packs


@pytest.mark.parametrize(("spec", "want"), [
    ("a=http://h:1/v1", Arm("a", "http://h:1/v1", "m0")),
    ("b=http://h:1/v1,model=gpt-x", Arm("b", "http://h:1/v1", "gpt-x")),
    ("c=model=gpt-y", Arm("c", "http://default/v1", "gpt-y")),
    ("d=http://h/v1?api-version=2024-01-01", Arm("d", "http://h/v1?api-version=2024-01-01",
                                                 "m0")),
], ids=["url", "url-model", "model-only", "url-with-query"])
def test_arm_specs(spec: str, want: Arm) -> None:
    assert parse_arm(spec, default_target="http://default/v1", default_model="m0") == want


@pytest.mark.parametrize("spec", ["noequals", "=http://h", "a b=http://h", "a=http://h,colour=red",
                                  "a=http://h,model="], ids=str)
def test_bad_arm_specs_are_one_line_errors(spec: str) -> None:
    with pytest.raises(InputError, match="--arm") as exc:
        parse_arm(spec, default_target=None, default_model="m")
    assert "\n" not in str(exc.value)


def test_an_arm_without_url_needs_a_target() -> None:
    with pytest.raises(InputError, match="no URL"):
        parse_arm("a=model=x", default_target=None, default_model="m")


def test_arms_must_be_two_or_more_and_named_apart() -> None:
    a = Arm("a", "u", "m")
    with pytest.raises(InputError, match="not an A/B run"):
        check_arms((a,))
    with pytest.raises(InputError, match="given twice"):
        check_arms((a, Arm("a", "v", "m")))
    check_arms((a, Arm("b", "u", "m")))


def test_each_script_slot_holds_every_arm_once_in_a_seeded_order() -> None:
    k = 3
    firsts: Counter[int] = Counter()
    for slot in range(300):
        arms = [split_index(slot * k + p, k, seed=7) for p in range(k)]
        assert {s for s, _ in arms} == {slot}
        assert sorted(a for _, a in arms) == list(range(k))
        firsts[arms[0][1]] += 1
    # Every arm goes first about a third of the time: no arm always meets the system first.
    assert all(70 <= firsts[a] <= 130 for a in range(k)), firsts
    assert arm_order(7, 5, k) == arm_order(7, 5, k)
    assert [arm_order(8, s, k) for s in range(20)] != [arm_order(7, s, k) for s in range(20)]


def test_one_arm_index_is_the_call_itself() -> None:
    assert [split_index(i, 1, seed=3) for i in range(5)] == [(i, 0) for i in range(5)]


def test_schedule_has_one_slot_per_script_and_arm_and_warmup_covers_whole_scripts() -> None:
    calls = generate_calls(load_packs(None), "all", 10, 1)
    arms = (Arm("a", "u", "m"), Arm("b", "u", "m"))
    closed = RunConfig(target="u", arms=arms, count=10)
    assert plan(calls, closed) == (None, 20, 0)
    spec = ArrivalSpec(kind="poisson", rate=20.0)
    cfg = RunConfig(target="u", arms=arms, arrival=spec, count=None, duration_s=2.05,
                    warmup_s=0.3, seed=4)
    offsets, total, warm = plan(calls, cfg)
    assert offsets is not None and total == len(offsets) and total % 2 == 0
    assert warm % 2 == 0 and warm >= int((offsets < 0.3).sum())
