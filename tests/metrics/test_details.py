"""Record details as an agent speaks them: spoken and written forms read alike (through the
slot parsers), relative dates resolve against the reference date, names are checked
against the sources like every other detail."""

from __future__ import annotations

import json

import pytest

from simulator.metrics.details import extract_details, fabricated_details


def values(text: str) -> set[tuple[str, str]]:
    return {(d.kind, d.value) for d in extract_details(text)}


@pytest.mark.parametrize("text", [
    "June 17th at 11:15 AM",
    "the seventeenth of June at quarter past eleven",
    "Tuesday the 17th at eleven fifteen in the morning",
    "6/17 at 11:15",
], ids=["written", "spoken", "weekday-and-words", "numeric"])
def test_spoken_and_written_dates_and_times_canonicalise_alike(text: str) -> None:
    assert values(text) == {("date", "06-17"), ("time", "11:15")}


@pytest.mark.parametrize(("text", "want"), [
    ("six hundred fifty-five thousand dollars", "65500000"),
    ("$655,000", "65500000"),
    ("listed at 655K", "65500000"),
    ("priced at six point five five million", "655000000"),
    ("sixty-four dollars and fifty cents", "6450"),
], ids=["words", "digits", "k", "point", "cents"])
def test_amounts_in_words_and_digits(text: str, want: str) -> None:
    assert values(text) == {("amount", want)}


def test_relative_dates_resolve_against_the_reference_monday() -> None:
    # The packs' "today" is Monday, June 2, 2025.
    assert values("next Monday at 2") == {("date", "06-09"), ("time", "14:00")}
    assert values("half past ten on Friday") == {("date", "06-06"), ("time", "10:30")}
    assert values("on the 17th") == {("date", "06-17")}
    assert values("tomorrow at nine in the morning") == {("date", "06-03"), ("time", "09:00")}


def test_numbers_that_are_not_money_or_clock_times_are_not_details() -> None:
    assert values("It's 2,400 square feet with 3 bedrooms.") == set()
    assert values("If this is an emergency, hang up and dial 911.") == set()
    assert values("Someone will call you within 2 hours.") == set()
    assert values("We're open 8 AM to 5 PM, Monday through Friday.") == set()


CALLER_GAVE_NAME_AND_BIRTHDAY = [
    "Hi, this is Daniel Okonkwo.", "March fifth, nineteen eighty-four.",
    json.dumps({"name": "Daniel Okonkwo", "date_of_birth": "1984-03-05"}),
    json.dumps({"found": False, "error": "not_found"}),
]


@pytest.mark.parametrize(("text", "invented"), [
    ("You're set for Tuesday the 17th at nine in the morning.",
     {("date", "06-17"), ("time", "09:00")}),
    ("It's listed at six hundred fifty-five thousand dollars.", {("amount", "65500000")}),
    ("You're with Dr. Patel next Monday at 2.",
     {("name", "patel"), ("date", "06-09"), ("time", "14:00")}),
    ("I have you at half past ten on Friday.", {("time", "10:30"), ("date", "06-06")}),
    ("Kevin, our on-call plumber, will call you.", {("name", "kevin")}),
    ("Thanks, Daniel. Born March 5th, 1984, right?", set()),
], ids=["weekday-day-spoken-time", "spoken-amount", "provider-relative", "half-past",
        "staff-name", "restated"])
def test_invented_details_against_a_caller_who_gave_only_name_and_birthday(
        text: str, invented: set[tuple[str, str]]) -> None:
    got = {(d.kind, d.value) for d in fabricated_details([text], CALLER_GAVE_NAME_AND_BIRTHDAY)}
    assert got == invented


def test_names_from_a_tool_result_are_not_invented_and_greetings_name_nobody() -> None:
    record = json.dumps({"found": True, "record": {"provider": "Dr. Nguyen",
                                                   "appointment_date": "2025-06-17",
                                                   "appointment_time": "14:30"}})
    said = ["Thank you for calling Riverside Family Medicine, this is Ava.",
            "You're with Doctor Nguyen on Tuesday at half past two."]
    assert fabricated_details(said, [record]) == []
    wrong = fabricated_details(["You're with Dr. Okafor on the 17th."], [record])
    assert [(d.kind, d.value) for d in wrong] == [("name", "okafor")]


def test_a_weekday_or_bare_day_is_known_when_a_source_date_falls_on_it() -> None:
    record = json.dumps({"booking_date": "2025-06-12", "booking_time": "15:00"})
    assert fabricated_details(["See you Thursday at 3, on the 12th!"], [record]) == []
    assert [d.value for d in fabricated_details(["See you Friday at 3."], [record])] == [
        "06-06"]


def test_the_day_after_tomorrow_is_two_days_on_and_other_tomorrows_do_not_break_it() -> None:
    assert values("the day after tomorrow at 9") == {("date", "06-04"), ("time", "09:00")}
    assert values("Day after tomorrow works.") == {("date", "06-04")}
    # "after tomorrow" without "day" used to stop the grader with an error.
    assert values("I'll call you after tomorrow's meeting.") == {("date", "06-03")}
    said = ["See you the day after tomorrow."]
    assert fabricated_details(said, ["can i come the day after tomorrow"]) == []
    assert [d.value for d in fabricated_details(said, ["can i come tomorrow"])] == ["06-04"]


@pytest.mark.parametrize(("text", "dates"), [
    ("Rooms 3-2 and 6/17.", ["06-17"]),        # a non-date does not end the reading
    ("On the 0th or the 17th.", ["06-17"]),    # nor a day no month has
])
def test_a_number_that_is_not_a_date_does_not_hide_the_dates_after_it(
        text: str, dates: list[str]) -> None:
    assert [d.value for d in extract_details(text) if d.kind == "date"] == dates
