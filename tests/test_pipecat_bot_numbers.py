"""The example Pipecat bot writes the numbers its recogniser heard as numerals before its LLM
reads them (examples/pipecat_bot/spoken_numbers.py): what pocketsphinx writes for the
callers' phone numbers, dates, times, addresses and IDs must reach the LLM (callsim's
reference agent, whose slot readers are simulator.slots) as the values the caller meant."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simulator.slots import (
    parse_address,
    parse_date,
    parse_date_of_birth,
    parse_phone,
    parse_record_id,
    parse_time,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "pipecat_bot"))
from spoken_numbers import numerals, plain  # noqa: E402


@pytest.mark.parametrize(("heard", "read", "want"), [
    ("my number is six nine eight seven six two three six one seven", parse_phone,
     "6987623617"),
    ("um three eight four six eight nine three six two zero", parse_phone, "3846893620"),
    ("five four three two eight three four zero six oh", parse_phone, "5432834060"),
    ("it's four twelve nineteen fifty nine", parse_date_of_birth, "1959-04-12"),
    # pocketsphinx hears the month "four" as "for" often enough
    ("it's for twelve nineteen fifty nine", parse_date_of_birth, "1959-04-12"),
    ("saturday june seven", parse_date, "2025-06-07"),
    # "6/11." as the callers say it, alone, in answer to "What day would you like?"
    ("six eleven", parse_date, "2025-06-11"),
    ("twelve twenty one", parse_date, "2025-12-21"),
    ("three pm", parse_time, "15:00"),
    ("three thirty pm please", parse_time, "15:30"),
    ("ten am please", parse_time, "10:00"),
    ("seventeen nineteen chavez glens", parse_address, "1719 chavez glens"),
    ("three thousand five hundred sixty gonzalez forge", parse_address,
     "3560 gonzalez forge"),
])
def test_heard_numbers_reach_the_llm_as_the_values_said(heard: str, read: object,
                                                        want: str) -> None:
    assert read(numerals(heard)) == want  # type: ignore[operator]


@pytest.mark.parametrize(("heard", "read"), [
    ("it's four twelve nineteen fifty nine", parse_date_of_birth),
    ("saturday june seven", parse_date),
    ("seventeen nineteen chavez glens", parse_address),
])
def test_without_numerals_the_llm_misses_these(heard: str, read: object) -> None:
    assert read(heard) is None  # type: ignore[operator]


def test_ids_and_words_that_are_not_numbers() -> None:
    assert parse_record_id(numerals("l dash six eight eight zero nine"),
                           {"prefix": "L"}) == "L-68809"
    # A single number word, and "for"/"to" that start no date, stay words.
    for text in ("i need one appointment", "it is for two people", "i want to see it",
                 "no that's everything thanks"):
        assert numerals(text) == text
    assert numerals("maybe june thirtieth at one pm") == "maybe june thirtieth at 1:00 pm"


# What Moonshine (the bot's default recogniser) wrote for seed 5's callers, rendered in
# their Piper voices through a clean line: punctuated, cased, numerals where it chose them.
@pytest.mark.parametrize(("written", "read", "want"), [
    ("Seven, six, zero, eight, six, eight, one, three, three, four.", parse_phone,
     "7608681334"),
    ("At 627-813-9362.", parse_phone, "6278139362"),
    ("It's four twelve, nineteen fifty nine.", parse_date_of_birth, "1959-04-12"),
    ("Three p. M..", parse_time, "15:00"),
    ("Three thirty p. M. please.", parse_time, "15:30"),
    ("Saturday, June seven.", parse_date, "2025-06-07"),
    ("Hi, my wife and I want to see inside the place at 3560 Gonzalez Forge.",
     parse_address, "3560 Gonzalez Forge"),
    # a street word the recogniser wrote otherwise is still a street: it keeps its capital
    ("1,719 Chavez Glenn's.", parse_address, "1719 Chavez Glenn's"),
])
def test_a_written_transcript_reaches_the_llm_as_the_values_said(written: str, read: object,
                                                                 want: str) -> None:
    assert read(numerals(plain(written))) == want  # type: ignore[operator]


def test_plain_keeps_numbers_and_words_whole() -> None:
    assert plain("1,719 Travis Glenn's.") == "1719 Travis Glenn's"
    assert plain("Is 9 a.m. open?") == "Is 9 am open"
    assert plain("(760) 868-1334") == "760 868-1334"
    assert plain("I'm a mess - really 'ok'") == "I'm a mess really ok"
    assert plain("Saturday, June Seven, Three P.M.") == "Saturday june seven three pm"
