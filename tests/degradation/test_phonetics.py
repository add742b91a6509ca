"""The phonetic index the ASR pass draws its mistakes from: homophones and one-phone
neighbours."""

from __future__ import annotations

from simulator.degradation.phonetics import get_index, phone_edit_distance


def test_homophones_come_from_the_table_and_from_pronunciations() -> None:
    ix = get_index()
    assert set(ix.homophones_of("two")) == {"to", "too"}       # the curated table
    assert set(ix.homophones_of("right")) >= {"write", "rite"}  # and the same phones
    assert "barr" in ix.homophones_of("Bar")                     # three letters are enough
    assert ix.homophones_of("two") == ix.homophones_of("two")   # asked again: the same
    # An abbreviation sounds like the word it stands for, but is not a homophone of it.
    assert "drive" not in ix.homophones_of("dr")


def test_neighbours_are_distinct_common_words_one_phone_away() -> None:
    ix = get_index()
    common = ix.neighbours("cat")
    assert {"bat", "cut", "sat", "at"} <= set(common)
    assert len(set(common)) == len(common) and "cat" not in common
    assert all(v in ix.vocab for v in common)
    pron = ix.prons["cat"]
    assert all(phone_edit_distance(ix.prons[v], pron) == 1 for v in common)
    # A name being misheard may also become a name.
    with_names = ix.neighbours("cat", names=True)
    assert set(common) < set(with_names)
    assert any(v not in ix.vocab for v in with_names)
    assert ix.neighbours("Cat") == common
    # One phone added to "age" gives the name "Paige": a neighbour only when names may be.
    assert "paige" not in ix.neighbours("age") and "paige" in ix.neighbours("age", names=True)
