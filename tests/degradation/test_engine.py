from __future__ import annotations

from pathlib import Path

import pytest

from simulator.callscript import CallScript, load_calls, write_calls
from simulator.degradation import degrade_call, degrade_calls, get_profile
from simulator.degradation.corpus import sample_calls

from .conftest import clinic_call


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    calls = [clinic_call(f"call-{i}") for i in range(20)] + sample_calls(30, 4)
    profile = get_profile("hostile")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_calls(degrade_calls(calls, profile, 7), a)
    write_calls(degrade_calls(calls, profile, 7), b)
    assert a.read_bytes() == b.read_bytes()
    other = degrade_calls(calls, profile, 8)
    assert [c.to_json() for c in other] != [c.to_json() for c in load_calls(a)]
    # a call degrades the same wherever it sits in the file
    assert degrade_call(calls[25], profile, 7).to_json() == load_calls(a)[25].to_json()


def test_degraded_call_records_what_changed(call: CallScript) -> None:
    before = call.to_json()
    out = degrade_call(call, get_profile("hostile"), 3)
    assert call.to_json() == before  # input untouched
    assert CallScript.model_validate_json(out.to_json()) == out  # still a valid script
    deg = out.degradation
    assert deg is not None and deg.profile == "hostile" and deg.target_wer == (0.3, 0.5)
    assert [t.index for t in out.turns] == list(range(len(out.turns)))
    for t in out.turns:
        assert t.clean_text is not None and t.wer is not None
        assert (t.wer > 0) == bool(t.edits) or t.edits  # edits may cancel out, never the reverse
    assert deg.perturbations == [{"turn": t.index, **e} for t in out.turns for e in t.events]


def test_clean_profile_leaves_conversation_alone(call: CallScript) -> None:
    out = degrade_call(call, get_profile("clean"), 3)
    assert [t.clean_text for t in out.turns] == [t.text for t in call.turns]
    assert out.degradation is not None
    assert out.degradation.perturbations == [] and out.degradation.tool_faults == []


def test_self_correction_keeps_the_corrected_value() -> None:
    profile = get_profile("hostile")
    found = 0
    for i in range(300):
        src = clinic_call(f"call-{i}")
        out = degrade_call(src, profile, 11)
        assert out.slots == src.slots
        assert out.expected_tool_calls == src.expected_tool_calls
        for j, t in enumerate(out.turns):
            for e in t.events:
                if e["type"] != "self_correction":
                    continue
                found += 1
                said = t.clean_text or ""
                for rest in out.turns[j + 1:]:  # a partial input may have split the turn
                    if rest.kind != "partial":
                        break
                    said += " " + (rest.clean_text or "")
                assert e["wrong"] != e["correct"]
                # the wrong value comes first, the correct one after it
                assert said.index(e["wrong"]) < said.rindex(e["correct"])
    assert found > 20


def test_partial_inputs_split_the_turn_and_keep_every_word() -> None:
    profile = get_profile("hostile")
    seen = 0
    for i in range(200):
        out = degrade_call(clinic_call(f"c{i}"), profile, 5)
        for j, t in enumerate(out.turns):
            if any(e["type"] == "partial_input" for e in t.events):
                seen += 1
                nxt = out.turns[j + 1]
                assert nxt.kind == "partial"
                assert nxt.pause_before_s < 0.5
                # Cut in the middle third: the first part keeps a third to two thirds.
                (cut,) = [e["cut_at_word"] for e in t.events if e["type"] == "partial_input"]
                n = len((t.clean_text or "").split()) + len((nxt.clean_text or "").split())
                assert cut == len((t.clean_text or "").split())
                assert max(1, n // 3) <= cut <= max(1, 2 * n // 3)
    assert seen > 10


def test_barge_in_onset_within_profile_window() -> None:
    profile = get_profile("hostile")
    b = profile.conversation.barge_in
    events = [e for i in range(200) for t in degrade_call(clinic_call(f"c{i}"), profile, 5).turns
              for e in t.events if e["type"] == "barge_in"]
    assert len(events) > 50
    for e in events:
        assert b.onset_min_s <= e["onset_s"] <= b.onset_max_s
        assert 1.0 <= e["duration_s"] <= 5.0 and e["text"]


def test_dtmf_on_phone_turns_only() -> None:
    profile = get_profile("hostile")
    for i in range(100):
        for t in degrade_call(clinic_call(f"c{i}"), profile, 5).turns:
            if t.dtmf is not None:
                assert t.slot == "phone" and t.dtmf == "5552013344#"


@pytest.mark.parametrize("name", ["clean", "quiet_phone", "hostile"])
def test_degraded_scripts_are_what_validation_would_build(name: str) -> None:
    # the engine builds Turn/Degradation/CallScript without validating (hot path)
    calls = [clinic_call(f"call-{i}") for i in range(10)] + sample_calls(20, 9)
    for out in degrade_calls(calls, get_profile(name), 5):
        again = CallScript.model_validate(out.model_dump())
        assert again == out and again.to_json() == out.to_json()


def test_keypad_input_and_events_already_in_a_script_are_kept(call: CallScript) -> None:
    # A script may carry keypad entry and events of its own (a frozen or hand-written
    # one): degrading it must not drop them.
    i = next(k for k, t in enumerate(call.turns) if t.kind == "answer")
    event = {"type": "hold", "s": 2.0}
    turns = [t.model_copy(update={"dtmf": "4412#", "events": [event]}) if k == i else t
             for k, t in enumerate(call.turns)]
    out = degrade_call(call.model_copy(update={"turns": turns}), get_profile("clean"), 3)
    assert [t.dtmf for t in out.turns] == [t.dtmf for t in turns]
    assert [t.events for t in out.turns] == [t.events for t in turns]
    assert turns[i].events == [event]   # the script itself is left as it was


def test_the_words_of_a_calls_own_values_are_misheard_more_often() -> None:
    # A recogniser gets names, numbers and the like wrong most; the call's slot values count
    # among them even where nothing else marks them (a lower-case "pest control").
    from simulator.degradation.asr_noise import entity_words, is_entity
    from simulator.personas import generate_calls, load_packs

    packs = load_packs()
    seen = {True: 0, False: 0}
    misheard = {True: 0, False: 0}
    for c in generate_calls(packs, "after_hours", 120, 4):
        ents = entity_words(c.slots.values())
        for t in degrade_call(c, get_profile("noisy"), 9).turns:
            edited = {e["pos"] for e in t.edits}
            for i, tok in enumerate(t.clean_text.split()):
                word = tok.strip(".,?!;:\"'()")
                if not word.isalpha() or not word.islower() or is_entity(
                        word, word, frozenset(), True):
                    continue    # only plain lower-case words, slot values or not
                seen[word in ents] += 1
                misheard[word in ents] += i in edited
    assert seen[True] > 100
    assert misheard[True] / seen[True] > 1.3 * misheard[False] / seen[False]


def test_each_turn_and_the_call_report_their_word_error_rate() -> None:
    import jiwer

    from simulator.degradation.asr_noise import normalised_words

    for name in ("clean", "hostile"):
        for i in range(8):
            out = degrade_call(clinic_call(f"c{i}"), get_profile(name), 5)
            errs = words = 0
            for t in out.turns:
                ref, hyp = " ".join(normalised_words(t.clean_text)), " ".join(
                    normalised_words(t.text))
                m = jiwer.process_words(ref, hyp)
                e = m.substitutions + m.deletions + m.insertions
                assert t.wer == round(e / len(ref.split()), 4), (t.clean_text, t.text)
                errs, words = errs + e, words + len(ref.split())
            assert out.degradation is not None
            assert out.degradation.measured_wer == round(errs / words, 4)
    # A call without a word to recognise has nothing wrong with it.
    call = clinic_call()
    silent = call.model_copy(update={"turns": [t.model_copy(update={"text": "..."})
                                               for t in call.turns]})
    out = degrade_call(silent, get_profile("hostile"), 5)
    assert out.degradation is not None and out.degradation.measured_wer == 0.0
    assert {t.wer for t in out.turns} == {0.0}
