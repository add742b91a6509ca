from __future__ import annotations

from simulator.metrics.details import extract_details, fabricated_details
from simulator.metrics.grading import says_not_found, score_tool_calls

EXPECTED = [
    {"name": "find_patient", "arguments": {"name": "Sara Smith", "date_of_birth": "1940-09-12"}},
    {"name": "book", "arguments": {"date": "2025-06-03", "time": "09:45"}},
]


def test_arguments_match_after_normalisation() -> None:
    made = [
        {"name": "find_patient",
         "arguments": {"name": " sara  SMITH.", "date_of_birth": "1940-09-12"}},
        {"name": "book", "arguments": {"date": "2025-06-03", "time": "9:45"}},
    ]
    total, right, strict, mism = score_tool_calls(EXPECTED, made, {"book"})
    assert (total, right, strict, mism) == (4, 4, True, [])


def test_a_retried_lookup_that_gets_it_right_counts_and_wrong_values_are_named() -> None:
    made = [
        {"name": "find_patient",
         "arguments": {"name": "Sarah Smith", "date_of_birth": "1940-09-12"}},
        {"name": "find_patient",
         "arguments": {"name": "Sara Smith", "date_of_birth": "1940-09-12"}},
        {"name": "book", "arguments": {"date": "2025-06-04", "time": "09:45"}},
    ]
    total, right, strict, mism = score_tool_calls(EXPECTED, made, {"book"})
    assert (total, right, strict) == (4, 3, False)
    assert mism == [{"call": "book", "argument": "date", "expected": "2025-06-03",
                     "got": "2025-06-04"}]


def test_missing_call_and_extra_write_fail_strict() -> None:
    total, right, strict, mism = score_tool_calls(
        EXPECTED, [{"name": "find_patient", "arguments": EXPECTED[0]["arguments"]},
                   {"name": "cancel", "arguments": {}}], {"book", "cancel"})
    assert (total, right, strict) == (4, 2, False)
    assert {"call": "book", "argument": None, "problem": "not called"} in mism
    assert {"call": "cancel", "argument": None, "problem": "extra write"} in mism


def test_details_are_canonical_and_fabrication_is_what_no_source_holds() -> None:
    kinds = {(d.kind, d.value) for d in extract_details(
        "Your appointment is on Saturday, June 14 at 2:30 PM, balance $1,250.50, ID A-781168.")}
    assert {("date", "06-14"), ("time", "14:30"), ("amount", "125050"),
            ("id", "A781168")} <= kinds
    sources = ['{"appointment_date":"2025-06-14","appointment_time":"14:30"}',
               "It's the fourteenth of June"]
    assert fabricated_details(["I see you on June 14 at 2:30 PM."], sources) == []
    fab = fabricated_details(["I found your appointment on March 3 at 10 AM."], sources)
    assert {(d.kind, d.value) for d in fab} == {("date", "03-03"), ("time", "10:00")}


def test_refusal_phrases() -> None:
    assert says_not_found("I'm sorry, I couldn't find a record matching that name.")
    assert says_not_found("There is no patient by that name in our system.")
    assert not says_not_found("I found your record. Your appointment is confirmed.")
