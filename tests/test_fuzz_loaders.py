"""Issue 8: hostile input to every loader gives a one-line CallsimError naming where, never
a traceback. Bounded hypothesis runs, so CI stays fast."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.agent_profile import load_agent_profile
from simulator.callscript import load_calls
from simulator.degradation import load_profiles
from simulator.errors import CallsimError
from simulator.gate.rubric import load_rubric
from simulator.personas import load_pack

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids,
                                                              max_size=5),
    max_leaves=20,
)

# Near-misses of the real formats reach deeper validation than random dicts.
PACK = yaml.safe_load((Path(__file__).parents[1] / "personas" / "salon.yaml").read_text())
PROFILE = yaml.safe_load(
    (Path(__file__).parents[1] / "noise_profiles" / "typical_call.yaml").read_text())
RUBRIC = yaml.safe_load((Path(__file__).parents[1] / "examples" / "rubric.yaml").read_text())


def mutate(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    keys = list(base)

    def apply(ops: list[tuple[int, Any, bool]]) -> dict[str, Any]:
        d = json.loads(json.dumps(base, default=str))
        for k, v, drop in ops:
            key = keys[k % len(keys)]
            if drop:
                d.pop(key, None)
            else:
                d[key] = v
        return d

    return st.lists(st.tuples(st.integers(0, 100), json_values, st.booleans()),
                    min_size=1, max_size=3).map(apply)


def check_one_line(load: Callable[[Path], Any], path: Path, content: str) -> None:
    path.write_text(content, encoding="utf-8")
    try:
        load(path)
    except CallsimError as exc:
        msg = str(exc)
        assert "\n" not in msg and str(path) in msg, msg


def _profiles_dir_loader(path: Path) -> Any:
    return load_profiles(path.parent)


LOADERS = {
    "pack": (load_pack, "pack.yaml", PACK),
    "profile": (_profiles_dir_loader, "mine.yaml", PROFILE),
    "rubric": (load_rubric, "rubric.yaml", RUBRIC),
    "agent_profile": (load_agent_profile, "agent.yaml", {"name": "x", "prices": {}}),
}


@pytest.mark.parametrize("name", list(LOADERS))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_yaml_loaders_reject_bad_input_in_one_line(name: str, tmp_path: Path,
                                                   data: st.DataObject) -> None:
    load, fname, base = LOADERS[name]
    kind = data.draw(st.sampled_from(["mutated", "random", "text"]))
    if kind == "mutated":
        content = yaml.safe_dump(data.draw(mutate(base)))
    elif kind == "random":
        content = yaml.safe_dump(data.draw(json_values))
    else:
        content = data.draw(st.text(max_size=200))
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    check_one_line(load, d / fname, content)


CALL = {
    "schema_version": 1, "call_id": "c1", "pack": "salon", "intent": "book", "seed": 1,
    "persona": {"name": "Ann Lee"}, "record_exists": True, "slots": {},
    "turns": [{"index": 0, "kind": "opening", "text": "Hi"}],
    "expected_tool_calls": [], "expected_outcome": "completed",
}


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_call_files_reject_bad_lines_in_one_line(tmp_path: Path, data: st.DataObject) -> None:
    line = data.draw(st.one_of(
        mutate(CALL).map(json.dumps), json_values.map(json.dumps), st.text(max_size=100)))
    check_one_line(load_calls, tmp_path / "calls.jsonl", json.dumps(CALL) + "\n" + line + "\n")
