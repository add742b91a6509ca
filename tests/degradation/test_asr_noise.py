from __future__ import annotations

import random

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.degradation.asr_noise import (
    calibrated_p_word,
    degrade_text,
    entity_words,
    normalise,
    normalised_words,
    split_word,
    word_error_rate,
)
from simulator.degradation.corpus import sample_calls
from simulator.degradation.phonetics import get_index, phone_edit_distance
from simulator.degradation.profile import get_profile


def test_normalise_lowercases_strips_punctuation_and_spaces() -> None:
    assert normalise("  Hi,  I'd like   2:30 PM! ") == "hi id like 230 pm"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Hi,", "I'd", "(Maria", "Lopez)", "...", ",", '"', "2:30",
                                 "P-1234", "snake_case", "\u00c9cole", "ΟΔΟΣ", " ", "\t", ""]),
                max_size=12))
def test_normalised_words_are_the_words_of_normalise(parts: list[str]) -> None:
    # WER counts words per token through a cache; it must be the same words
    text = " ".join(parts)
    assert normalised_words(text) == normalise(text).split()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["the", "Cat", "sat,", "on", "2:30", "mat.", "um"]),
                min_size=1, max_size=12),
       st.lists(st.sampled_from(["the", "cat", "sad", "on", "to", "thirty", "mat"]),
                max_size=12))
def test_wer_matches_jiwer_on_normalised_text(ref: list[str], hyp: list[str]) -> None:
    r, h = " ".join(ref), " ".join(hyp)
    assert word_error_rate(r, h) == pytest.approx(jiwer.wer(normalise(r), normalise(h)))


def test_substitutions_are_one_phone_edit_from_the_original() -> None:
    ix = get_index()
    asr = get_profile("hostile").asr
    r = random.Random(5)
    subs = 0
    for call in sample_calls(60, 3):
        ents = entity_words(call.slots.values())
        for t in call.turns:
            for e in degrade_text(t.text, r, 0.4, asr, ents).edits:
                if e["op"] == "sub":
                    a, b = ix.phones(str(e["from"])), ix.phones(str(e["to"]))
                    assert a is not None and b is not None
                    assert phone_edit_distance(a, b) == 1, e
                    subs += 1
    assert subs > 50


def test_number_and_name_mangling() -> None:
    asr = get_profile("hostile").asr
    seen: dict[str, set[str]] = {"2:30": set(), "15th": set(), "fifteen": set()}
    r = random.Random(1)
    for _ in range(400):
        res = degrade_text("at 2:30 on the 15th or fifteen", r, 0.9, asr)
        for e in res.edits:
            if e["from"] in seen and e["op"] == "number":
                seen[str(e["from"])].add(str(e["to"]))
    assert "to thirty" in seen["2:30"]
    assert "50th" in seen["15th"]
    assert seen["fifteen"] == {"fifty"}
    assert split_word("shankaran") is not None
    assert "".join(split_word("shankaran") or ()) == "shankaran"


def test_entities_are_about_twice_as_error_prone() -> None:
    asr = get_profile("typical_call").asr
    r = random.Random(2)
    ents = entity_words(["Jane Shankaran"])
    hits = {True: 0, False: 0}
    n = 3000
    for _ in range(n):
        res = degrade_text("please call Shankaran today", r, 0.1, asr, ents)
        touched = {int(str(e["pos"])) for e in res.edits if e["op"] != "ins"}
        hits[True] += 2 in touched
        hits[False] += 0 in touched or 3 in touched
    ratio = (hits[True] / n) / (hits[False] / (2 * n))
    assert 1.6 < ratio < 2.4


def test_profiles_calibrate_in_strict_order() -> None:
    names = ["clean", "quiet_phone", "typical_call", "noisy", "hostile"]
    ps = [calibrated_p_word(get_profile(n).asr) for n in names]
    assert ps == sorted(ps) and len(set(ps)) == len(ps)


@pytest.mark.parametrize(("word", "start", "entity"), [
    ("Kaur", False, True),       # a capitalised word mid-sentence: a name
    ("Kaur", True, False),       # at the start of a sentence: just a capital
    ("I", False, False), ("I'm", False, False), ("I'd", False, False),
    ("I'll", False, True),       # only the three listed forms of "I" are exempt
    ("appointment", False, False),
    ("Tuesday", True, True), ("march", False, True), ("seven", False, True),
    ("P-1234", True, True),      # digits
    ("okonkwo", False, True),    # a word of the call's own details
])
def test_which_words_count_as_entities(word: str, start: bool, entity: bool) -> None:
    from simulator.degradation.asr_noise import is_entity

    assert is_entity(word, word.lower(), frozenset({"okonkwo"}), start) is entity


def test_misheard_words_come_from_everyday_english_and_real_names() -> None:
    # The substitution vocabulary: faker's en_US word tables (no download) and its names,
    # plus the names the corpus gives callers.
    index = get_index()
    assert {"ability", "especially", "message", "since"} <= index.vocab
    assert {"caleb", "vernon", "krystal"} <= index.names      # from faker
    assert {"aisha", "kowalski", "castellanos"} <= index.names  # from the corpus


def test_each_mistake_is_recorded_by_kind_on_the_bare_word() -> None:
    asr = get_profile("hostile").asr
    r = random.Random(3)
    text = "Well, I need two tickets for Thursday at 2:15 or 3:45, the 5th, to Boston today."
    ops: set[str] = set()
    heard: dict[str, set[str]] = {"2:15": set(), "3:45": set(), "5th": set()}
    for _ in range(600):
        res = degrade_text(text, r, 0.6, asr)
        words = [w.strip(".,?!") for w in res.text.split()]
        for e in res.edits:
            ops.add(str(e["op"]))
            assert str(e["from"]) == str(e["from"]).strip(".,?!")  # the word, not its comma
            if e["op"] == "number" and e["from"] in heard:
                heard[str(e["from"])].add(str(e["to"]))
            if e["op"] == "merge":
                assert e["to"] in words   # the merged word, then the second one's comma
        if res.text.split()[-1].strip(".") != "today":
            assert res.text.endswith(".")  # a dropped last word leaves the full stop
    assert {"del", "ins", "homophone", "number", "sub", "merge"} <= ops
    assert ops <= {"del", "ins", "homophone", "number", "sub", "merge", "split"}
    assert heard == {"2:15": {"to fifteen", "to fifty"}, "3:45": {"three forty five"},
                     "5th": {"5", "five"}}


def test_a_capitalised_word_after_the_first_is_a_name() -> None:
    # "Kaur" is the second word: a name, misheard about twice as often as a plain word.
    asr = get_profile("typical_call").asr
    r = random.Random(4)
    hits = {"name": 0, "plain": 0}
    n = 3000
    for _ in range(n):
        res = degrade_text("ask Kaur about it", r, 0.1, asr)
        touched = {int(str(e["pos"])) for e in res.edits if e["op"] != "ins"}
        hits["name"] += 1 in touched
        hits["plain"] += 2 in touched or 3 in touched
    assert 1.6 < (hits["name"] / n) / (hits["plain"] / (2 * n)) < 2.4
