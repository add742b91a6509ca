"""Slot renderers and parsers: every spoken form parses back to the canonical value."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.slots import REFERENCE_DATE, find_dates, normalise_arg, parse, render

CHOICES = {
    "haircut": ["a trim", "a cut"],
    "color": ["colour", "my roots done"],
    "any available": ["no preference"],
}


def _round_trip(
    slot_type: str, value: str, seed: int, opts: dict[str, object] | None = None
) -> None:
    spoken = render(slot_type, value, random.Random(seed), opts)
    for wrapper in ("{}", "Sure, it's {}.", "Um, {}, please."):
        got = parse(slot_type, wrapper.format(spoken), opts)
        assert normalise_arg(got) == normalise_arg(value), (spoken, wrapper, got)


@settings(max_examples=150, deadline=None)
@given(st.dates(dt.date(1930, 1, 1), dt.date(2010, 12, 31)), st.integers(0, 2**32))
def test_date_of_birth_round_trip(d: dt.date, seed: int) -> None:
    _round_trip("date_of_birth", d.isoformat(), seed)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32))
def test_appointment_date_round_trip(days: int, seed: int) -> None:
    _round_trip("date", (REFERENCE_DATE + dt.timedelta(days=days)).isoformat(), seed)


@settings(max_examples=150, deadline=None)
@given(st.integers(7, 20), st.sampled_from([0, 15, 30, 45, 5, 20]), st.integers(0, 2**32))
def test_time_round_trip(h: int, m: int, seed: int) -> None:
    _round_trip("time", f"{h:02d}:{m:02d}", seed)


@settings(max_examples=150, deadline=None)
@given(st.from_regex(r"[2-9][0-9]{9}", fullmatch=True), st.integers(0, 2**32))
def test_phone_round_trip(phone: str, seed: int) -> None:
    _round_trip("phone", phone, seed)


@settings(max_examples=100, deadline=None)
@given(st.integers(1000, 9_990_000).map(lambda n: n - n % 5000 or 5000), st.integers(0, 2**32))
def test_amount_round_trip(amount: int, seed: int) -> None:
    _round_trip("amount", str(amount), seed)


@settings(max_examples=100, deadline=None)
@given(st.integers(10000, 99999), st.integers(0, 2**32))
def test_record_id_round_trip(n: int, seed: int) -> None:
    _round_trip("record_id", f"L-{n}", seed, {"prefix": "L", "digits": 5})


@pytest.mark.parametrize("value", sorted(CHOICES))
def test_choice_round_trip(value: str) -> None:
    for seed in range(10):
        _round_trip("choice", value, seed, {"choices": CHOICES})


def test_address_round_trip() -> None:
    for seed in range(20):
        _round_trip("address", "4821 Dennis Trafficway", seed)


def test_spoken_forms_vary() -> None:
    r = random.Random(0)
    forms = {render("date_of_birth", "1984-03-05", r) for _ in range(60)}
    assert {"March 5th, 1984", "the fifth of March 1984", "3/5/1984"} <= forms
    times = {render("time", "14:30", r) for _ in range(60)}
    assert {"2:30 PM", "half past two in the afternoon"} <= times
    phones = {render("phone", "5551234567", r) for _ in range(60)}
    assert any("five five five" in p for p in phones)


def test_self_correction_keeps_the_correction() -> None:
    assert parse("date", "the 15th of June, no, the 16th of June") == "2025-06-16"
    assert parse("time", "at 2 pm, sorry, 3 pm") == "15:00"


def test_names() -> None:
    assert parse("person_name", "Hi, this is Maria Lopez, I need an appointment") == "Maria Lopez"
    assert parse("person_name", "first name Ana, last name Ruiz") == "Ana Ruiz"
    assert parse("person_name", "It's Jonathon Warner.") == "Jonathon Warner"
    assert parse("person_name", "Um, Dana Kim.") == "Dana Kim"
    assert parse("person_name", "I'd like to cancel my appointment", {"strict": True}) is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("(555) 123-4567", "5551234567"),
        ("+1 555 123 4567", "5551234567"),
        ("3/5/1984", "1984-03-05"),
        ("March 5, 1984", "1984-03-05"),
        ("2:30 PM", "14:30"),
        ("  Maria   LOPEZ. ", "maria lopez"),
        ("L-48213", "l48213"),
        ("$450,000", 450000),
        ("450000.0", 450000),
    ],
)
def test_normalise_arg_matches_equivalent_forms(a: str, b: object) -> None:
    assert normalise_arg(a) == normalise_arg(b)


def test_normalise_arg_keeps_different_values_apart() -> None:
    assert normalise_arg("2025-06-14") != normalise_arg("2025-06-15")
    assert normalise_arg("Maria Lopez") != normalise_arg("Mario Lopez")
    assert normalise_arg(None) == ""


def test_parsers_read_through_recognition_errors() -> None:
    # Phonetic near-misses of months next to a day; fillers and doubled words.
    assert parse("date_of_birth", "It Marsh 16, 1944") == "1944-03-16"
    assert parse("date", "the twenty-third of Noon.") == "2025-06-23"
    assert parse("date_of_birth", "I was born um the sixteenth the of April 1950.") == "1950-04-16"
    assert parse("date_of_birth", "It's November like, twenty-seventh, nineteen forty-one.") == (
        "1941-11-27"
    )
    # Digit words misheard next to digits; a split "after noon" is not noon.
    assert parse("phone", "It's six one three, eight sixth seven, three seven nine five.") == (
        "6138673795"
    )
    assert parse("phone", "Um, 391, 987, do seven nine three.") == "3919872793"
    assert parse("time", "half past four in the after noon") == "16:30"
    # Names with a comma mid-name, lower case, a merged self-correction.
    assert parse("person_name", "This is Bruce, Keller.") == "Bruce Keller"
    assert parse("person_name", "this you know, is bruce keller") == "Bruce Keller"
    assert parse("person_name", "Yeah, Melissa Garcia, sorryconrad.") == "Melissa Conrad"
    # A misheard choice phrase when it was asked for, not in passing.
    opts = {"choices": {"yes": ["go ahead"], "no": ["please call first"]}}
    assert parse("choice", "pleasecall first, thanks.", opts) == "no"
    assert parse("choice", "pleasecall first, thanks.", {**opts, "strict": True}) is None


def test_guesses_only_when_asked_to() -> None:
    assert parse("person_name", "Christopher.") is None
    assert parse("person_name", "Christopher.", {"guess": True}) == "Christopher"
    assert parse("date", "the 23rd") is None
    assert parse("date", "the 23rd", {"guess": True}) == "2025-06-23"
    nine = "five four, four seven one, eight eight zero zero."
    assert parse("phone", nine) is None
    assert parse("phone", nine, {"guess": True}) == "544718800"
    assert parse("person_name", "I'd like to cancel my appointment", {"guess": True}) is None


def test_a_month_spelled_with_a_long_s_is_read_not_a_crash() -> None:
    # "ſ" matches "s" when case is ignored; grading an agent's reply must not raise on it.
    found = find_dates("on ſeptember 3rd, 2027", asr=False)
    assert [d.isoformat() for _, _, d in found] == ["2027-09-03"]


def test_sounds_like_allows_spelling_not_other_words_or_numbers() -> None:
    from simulator.slots import normalise_arg, sounds_like

    def same(a: str, b: str) -> bool:
        return sounds_like(normalise_arg(a), normalise_arg(b))

    assert same("George Kahn", "George Khan")
    assert same("3560 Gonzales Forge", "3560 Gonzalez Forge")
    assert same("1719 Chavez Glenn's", "1719 Chavez Glens")
    assert not same("Stephanie Shaw", "Stephanie Schultz")
    assert not same("1790 Chavez Glens", "1719 Chavez Glens")  # a number is exact
    assert not same("P-547541", "P-547542")
    assert not same("George Khan", "George Khan Jr")  # word for word
