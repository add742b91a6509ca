"""Run labels: a given --label first, else what tells the runs apart, never bare run ids
when something else does."""

from __future__ import annotations

from simulator.gate.labels import label_runs

IDS = ["run-20261201-203945-ab12", "run-20261201-203946-cd34"]


def _meta(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"model": "callsim-reference", "target": "http://127.0.0.1:9/v1",
                               "agent_profile": {"name": "reference"}, "profile": "none",
                               "transport": "openai-chat"}
    return {**base, **kw}


def test_given_labels_win() -> None:
    assert label_runs([_meta(label="prompt v1"), _meta(label="prompt v2")], IDS) == [
        "prompt v1", "prompt v2"]


def test_unlabelled_runs_are_named_by_what_differs() -> None:
    assert label_runs([_meta(model="gpt-4o"), _meta(model="gpt-4.1")], IDS) == [
        "gpt-4o", "gpt-4.1"]
    assert label_runs([_meta(agent_profile={"name": "cheap"}),
                       _meta(agent_profile={"name": "premium"})], IDS) == ["cheap", "premium"]
    assert label_runs([_meta(target="http://10.0.0.1:8000/v1"),
                       _meta(target="https://staging.example.com/v1")], IDS) == [
        "10.0.0.1:8000/v1", "staging.example.com/v1"]


def test_mixed_and_colliding_labels_stay_distinct() -> None:
    assert label_runs([_meta(label="A"), _meta(model="gpt-4o")], IDS) == ["A", "gpt-4o"]
    assert label_runs([_meta(label="A"), _meta(label="A")], IDS) == ["A", "A#2"]
    # Nothing tells them apart: the run ids do.
    assert label_runs([_meta(), _meta()], IDS) == IDS
