"""The persona generator: seeded, byte-identical across processes, consistent scripts."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from simulator.callscript import load_calls
from simulator.errors import InputError
from simulator.personas.generator import generate_calls
from simulator.personas.pack import Pack

_SCRIPT = """
import sys
from simulator.callscript import write_calls
from simulator.personas import generate_calls, load_packs
write_calls(generate_calls(load_packs(), sys.argv[1], 150, int(sys.argv[2])), sys.argv[3])
"""


def _generate_in_subprocess(tmp_path: Path, pack: str, seed: int, hashseed: str) -> str:
    out = tmp_path / f"{pack}-{seed}-{hashseed}.jsonl"
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    subprocess.run(
        [sys.executable, "-c", _SCRIPT, pack, str(seed), str(out)],
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    return hashlib.sha256(out.read_bytes()).hexdigest()


# Only child processes generate here: mutmut could never select it for a mutant.
@pytest.mark.mutation_skip
def test_same_seed_same_bytes_in_new_processes_whatever_hashseed(tmp_path: Path) -> None:
    a = _generate_in_subprocess(tmp_path, "all", 7, "1")
    b = _generate_in_subprocess(tmp_path, "all", 7, "987")
    c = _generate_in_subprocess(tmp_path, "all", 8, "1")
    assert a == b
    assert a != c


def test_scripts_are_consistent(packs: dict[str, Pack]) -> None:
    calls = generate_calls(packs, "healthcare", 300, 1)
    assert len({c.call_id for c in calls}) == 300
    missing = [c for c in calls if not c.record_exists]
    assert 0.08 < len(missing) / len(calls) < 0.25
    for c in calls:
        intent = packs["healthcare"].intents[c.intent]
        assert c.turns[0].kind == "opening" and c.turns[-1].kind == "closing"
        answered = [t.slot for t in c.turns if t.kind == "answer"]
        assert set(answered) <= set(intent.slots) and len(answered) == len(set(answered))
        assert c.expected_tool_calls[0].name == intent.lookup.tool
        if c.record_exists:
            assert c.expected_outcome == intent.outcome
            assert len(c.expected_tool_calls) == 2 and len(c.backend_records) == 1
            rec = c.backend_records[0].data
            assert rec["name"] == c.slots["patient_name"] == c.persona.name
            assert c.expected_tool_calls[0].arguments == {
                "name": rec["name"],
                "date_of_birth": rec["date_of_birth"],
            }
        else:
            assert c.expected_outcome == "refused_missing_record"
            assert len(c.expected_tool_calls) == 1 and c.backend_records == []
    assert len(Counter(c.intent for c in calls)) == 3
    assert len({c.turns[0].text for c in calls}) > 100  # openings vary


def test_all_mixes_verticals_and_round_trips_through_jsonl(
    packs: dict[str, Pack], tmp_path: Path
) -> None:
    from simulator.callscript import write_calls

    calls = generate_calls(packs, "all", 80, 5)
    assert set(Counter(c.pack for c in calls)) == set(packs)
    path = tmp_path / "calls.jsonl"
    write_calls(calls, path)
    assert load_calls(path) == calls


def test_unknown_pack_lists_known_ones(packs: dict[str, Pack]) -> None:
    with pytest.raises(InputError, match="unknown pack 'dentist'.*healthcare"):
        generate_calls(packs, "dentist", 1, 1)


def test_fast_path_gives_the_same_scripts_as_faker_itself(packs: dict[str, Pack]) -> None:
    # generate_calls replays Faker's en_US name/street draws from precomputed tables and
    # builds the models without validation; a real Faker, re-seeded per call, must agree.
    from faker import Faker

    from simulator.callscript import CallScript
    from simulator.personas.generator import generate_call

    faker = Faker("en_US")
    for name, pack in sorted(packs.items()):
        for i in range(60):
            fast = generate_call(pack, 11, i)
            slow = generate_call(pack, 11, i, faker=faker)
            assert fast.to_json() == slow.to_json(), (name, i)
            # what the trusted construction built is what validation would have built
            assert CallScript.model_validate(fast.model_dump()) == fast


# ------------------------------------------------------------------ every field, every seed

def _leaves(obj: object, path: str = "") -> dict[str, object]:
    """Leaf values of a dumped model by dotted path (lists indexed)."""
    if isinstance(obj, dict):
        out: dict[str, object] = {}
        for k, v in obj.items():
            out.update(_leaves(v, f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path: obj}


# Persona fields that are the same for every persona of a pack, whatever the seed.
_CONSTANT_PERSONA_FIELDS = {"email"}   # not generated: always None


@pytest.mark.parametrize("pack", ["healthcare", "real_estate", "salon", "after_hours"])
def test_each_persona_field_changes_with_the_seed(packs: dict[str, Pack], pack: str) -> None:
    # Same call indices, two seeds: every field's sequence of values must differ. A field that
    # ignored the seed (drawn from the index alone, or fixed) would repeat itself exactly.
    a = [c.persona.model_dump() for c in generate_calls(packs, pack, 40, 101)]
    b = [c.persona.model_dump() for c in generate_calls(packs, pack, 40, 102)]
    fields = set().union(*(_leaves(p) for p in a))
    assert {"name", "goal", "environment", "style.verbosity", "style.patience",
            "style.disfluency", "style.interruptiveness", "voice.rate_wpm",
            "voice.gender"} <= fields
    for f in sorted(fields - _CONSTANT_PERSONA_FIELDS):
        va = [_leaves(p).get(f) for p in a]
        vb = [_leaves(p).get(f) for p in b]
        if all(v is None for v in va + vb):
            continue    # this pack's records have no such field (phone, date of birth)
        assert va != vb, f"persona.{f} is the same for seeds 101 and 102"
        assert len({repr(v) for v in va}) > 1, f"persona.{f} never varies"
    assert all(p["email"] is None for p in a + b)


@pytest.mark.parametrize("pack", ["healthcare", "real_estate", "salon", "after_hours"])
def test_each_script_part_changes_with_the_seed(packs: dict[str, Pack], pack: str) -> None:
    a = generate_calls(packs, pack, 40, 101)
    b = generate_calls(packs, pack, 40, 102)
    parts: dict[str, Any] = {
        "intent": lambda c: c.intent,
        "record_exists": lambda c: c.record_exists,
        "opening": lambda c: c.turns[0].text,
        "answers": lambda c: [t.text for t in c.turns if t.kind == "answer"],
        "closing": lambda c: c.turns[-1].text,
        "expected_arguments": lambda c: [t.arguments for t in c.expected_tool_calls],
        "backend_records": lambda c: [r.data for r in c.backend_records],
        "call_seed": lambda c: c.seed,
    }
    for name, get in parts.items():
        assert [get(c) for c in a] != [get(c) for c in b], name
    slot_names = {s for c in a + b for s in c.slots}
    for s in sorted(slot_names):
        va = [c.slots.get(s) for c in a]
        vb = [c.slots.get(s) for c in b]
        assert va != vb, f"slot {s} is the same for seeds 101 and 102"
    assert [c.call_id for c in a] == [f"{pack}-101-{i:06d}" for i in range(40)]


def test_compiled_values_draw_exactly_what_generate_value_draws(packs: dict[str, Pack]) -> None:
    # The fast path compiles each spec once; it must make the same draws as generate_value
    # from the same random state (the same bytes either way).
    import random

    from simulator.personas.generator import (
        _compile_value,
        _replay_tables,
        _ReplayNames,
        generate_value,
    )

    tables = _replay_tables()
    assert tables is not None
    specs = [spec for p in packs.values() for t in p.tables.values() for spec in t.fields.values()]
    specs += [sd for p in packs.values() for sd in p.slots.values()]
    # A date range too wide to tabulate (a pack may set one) takes generate_value's path.
    from simulator.personas.pack import ValueSpec
    specs.append(ValueSpec(type="date", days_ahead=(0, 6000)))
    types = set()
    for spec in specs:
        fn = _compile_value(spec)
        for seed in range(60):
            want = generate_value(spec, random.Random(seed), _ReplayNames(tables, seed))  # type: ignore[arg-type]
            got = fn(random.Random(seed), _ReplayNames(tables, seed))
            assert got == want and type(got) is type(want), (spec, seed)
        types.add(spec.type)
    assert {"person_name", "date_of_birth", "date", "time", "phone", "address", "record_id",
            "choice", "amount", "number"} <= types


def test_generated_values_stay_in_their_ranges(packs: dict[str, Pack]) -> None:
    import datetime as dt
    import random

    from simulator.personas.generator import _replay_tables, _ReplayNames, generate_value
    from simulator.personas.pack import ValueSpec
    from simulator.slots import REFERENCE_DATE

    tables = _replay_tables()
    assert tables is not None

    def draws(spec: ValueSpec, n: int = 3000) -> list[Any]:
        return [generate_value(spec, random.Random(s), _ReplayNames(tables, s))  # type: ignore[arg-type]
                for s in range(n)]

    dobs = draws(ValueSpec(type="date_of_birth"))
    assert min(dobs) >= "1940-01-01" and max(dobs) <= "2006-12-31"
    assert min(dobs) < "1941-06-01" and max(dobs) > "2005-06-01"
    dates = [dt.date.fromisoformat(d) for d in draws(ValueSpec(type="date", days_ahead=(0, 6)))]
    assert {d.weekday() for d in dates} == {0, 1, 2, 3, 4, 5}    # closed on Sundays
    assert min(dates) == REFERENCE_DATE and max(dates) <= REFERENCE_DATE + dt.timedelta(days=7)
    times = draws(ValueSpec(type="time"))
    assert min(times) == "09:00" and max(times) == "16:45"
    assert {t[3:] for t in times} == {"00", "15", "30", "45"}
    phones = draws(ValueSpec(type="phone"))
    assert all(len(p) == 10 and p.isdigit() for p in phones)
    assert all(201 <= int(p[:3]) <= 989 and 200 <= int(p[3:6]) <= 999 for p in phones)
    ids = draws(ValueSpec(type="record_id", prefix="P", digits=4))
    assert all(i[:2] == "P-" and len(i) == 6 and i[2] != "0" for i in ids)
    assert min(ids) == "P-1000" or min(ids) < "P-1010"
    amounts = draws(ValueSpec(type="amount", min=10, max=20, step=2.5), 500)
    assert set(amounts) == {10, 12.5, 15, 17.5, 20}
    assert {type(a) for a in amounts} == {int, float}
    numbers = draws(ValueSpec(type="number", min=1, max=3), 200)
    assert set(numbers) == {1, 2, 3} and {type(n) for n in numbers} == {int}
    choice = draws(ValueSpec(type="choice", choices={"b": ["bee"], "a": ["ay"]}), 200)
    assert set(choice) == {"a", "b"}
    free = draws(ValueSpec(type="free_text", examples=["x", "y"]), 200)
    assert set(free) == {"x", "y"}
    names = draws(ValueSpec(type="person_name"), 200)
    assert all(len(n.split()) == 2 for n in names) and len(set(names)) > 150
    streets = draws(ValueSpec(type="address"), 200)
    assert all(12 <= int(s.split()[0]) <= 9899 and len(s.split()) >= 3 for s in streets)


def test_persona_style_voice_and_environment_cover_their_ranges(packs: dict[str, Pack]) -> None:
    from simulator.personas.generator import _CLOSINGS, _ENVIRONMENTS

    calls = generate_calls(packs, "all", 1500, 3)
    personas = [c.persona for c in calls]
    rates = [p.voice["rate_wpm"] for p in personas]
    assert min(rates) == 140 and max(rates) == 190
    assert {p.voice["gender"] for p in personas} == {"female", "male"}
    assert {p.environment for p in personas} == set(_ENVIRONMENTS)
    for k in ("verbosity", "patience", "disfluency", "interruptiveness"):
        vals = [getattr(p.style, k) for p in personas]
        assert 0 <= min(vals) < 0.02 and 0.98 < max(vals) <= 1
        assert all(round(v, 2) == v for v in vals)
    assert {c.turns[-1].text for c in calls} == set(_CLOSINGS)
    missing = sum(not c.record_exists for c in calls) / len(calls)
    assert 0.11 < missing < 0.19     # every pack shares 15 % missing records
    for c in calls:
        if c.persona.phone is not None:
            assert c.persona.phone.isdigit() and len(c.persona.phone) == 10
        if c.persona.date_of_birth is not None:
            assert "1940-01-01" <= c.persona.date_of_birth <= "2006-12-31"


def test_terse_callers_answer_with_the_shorter_templates(packs: dict[str, Pack]) -> None:
    calls = generate_calls(packs, "healthcare", 400, 9)
    pack = packs["healthcare"]
    terse = [c for c in calls if c.persona.style.verbosity < 0.3]
    chatty = [c for c in calls if c.persona.style.verbosity >= 0.3]
    assert terse and chatty

    def templates(slot: str, text: str) -> set[int]:
        """Indices of the slot's answer templates that can render ``text``."""
        out = set()
        for i, t in enumerate(pack.slots[slot].answers):
            pat = ".+".join(re.escape(part) for part in t.split("{value}"))
            if re.fullmatch(pat, text, re.S):
                out.add(i)
        return out

    def short(slot: str) -> set[int]:
        return set(range(max(1, len(pack.slots[slot].answers) // 2)))

    answers = [(t.slot, t.text) for c in terse for t in c.turns if t.kind == "answer"]
    assert len(answers) > 50
    assert all(templates(s, x) & short(s) for s, x in answers)   # type: ignore[arg-type]
    long_used = [(s, x) for c in chatty for t in c.turns if t.kind == "answer"
                 for s, x in [(t.slot, t.text)] if not templates(s, x) & short(s)]  # type: ignore[arg-type]
    assert long_used


def test_adding_calls_keeps_earlier_ones_and_bad_counts_are_refused(
    packs: dict[str, Pack],
) -> None:
    assert generate_calls(packs, "all", 30, 4) == generate_calls(packs, "all", 50, 4)[:30]
    assert generate_calls(packs, "all", 0, 4) == []
    with pytest.raises(InputError, match=r"^--count: must be >= 0, got -1$"):
        generate_calls(packs, "all", -1, 4)
    with pytest.raises(InputError, match=r"^--pack: no persona packs loaded$"):
        generate_calls({}, "all", 1, 4)
    one = generate_calls(packs, "salon", 5, 4)
    assert {c.pack for c in one} == {"salon"}


@pytest.mark.parametrize(("pack", "has_dob"), [
    ("healthcare", True), ("salon", False), ("after_hours", False)])
def test_the_persona_gives_the_phone_and_birth_date_its_record_holds(
        packs: dict[str, Pack], pack: str, has_dob: bool) -> None:
    found = [c for c in generate_calls(packs, pack, 30, 17) if c.record_exists]
    assert found
    for c in found:
        rec = c.backend_records[0].data
        assert c.persona.phone == rec["phone"]
        assert c.persona.date_of_birth == (rec["date_of_birth"] if has_dob else None)


def test_which_vertical_each_call_of_all_comes_from_follows_the_seed(
        packs: dict[str, Pack]) -> None:
    def verticals(seed: int) -> list[str]:
        return [c.pack for c in generate_calls(packs, "all", 30, seed)]

    assert verticals(5) == verticals(5)
    assert verticals(5) != verticals(6)
    assert set(verticals(5)) == set(packs)
