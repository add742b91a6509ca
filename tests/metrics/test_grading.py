from __future__ import annotations

from typing import Any

import pytest

from simulator.agent_profile import Prices
from simulator.metrics.details import extract_details, fabricated_details
from simulator.metrics.grading import grade_call, says_not_found, score_tool_calls

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


# --------------------------------------------------------------------- refusals, both ways

@pytest.mark.parametrize("text", [
    "I'm sorry, I couldn't find a record matching that name.",
    "I could not locate an account under that date of birth.",
    "I cannot see a booking for that phone number.",
    "I was unable to find your appointment.",
    "I'm unable to locate that listing.",
    "I wasn't able to find a tenant with that ID.",
    "I did not find a match for that name.",
    "I don't see an appointment under that name.",
    "Sorry, I couldn't pull up your file.",
    "There is no patient by that name in our system.",
    "We have no appointments under that name.",
    "I have no record of that booking.",
    "That name is not in our records.",
    "I'm not able to find that account.",
])
def test_refusals_are_recognised(text: str) -> None:
    assert says_not_found(text)
    assert says_not_found(text.upper())


@pytest.mark.parametrize("text", [
    "Let me find your appointment.",
    "Let me look that up and find your record.",
    "I found your booking for Tuesday at 3 PM.",
    "I can find that for you right away.",
    "Sure, I can locate your file if you give me your date of birth.",
    "I can see your appointment on June 3.",
    "No problem, I'll pull up your account.",
    "Not a problem at all.",
    "I didn't catch your last name, could you spell it?",
    "I couldn't hear you, could you repeat your date of birth?",
    "I'm not able to book on Sundays, but Monday works.",
    "Do you know where to find your account number? It's on the bill.",
    "Is there anything else I can find for you?",
    "Your appointment is confirmed.",
    "",
])
def test_ordinary_replies_are_not_refusals(text: str) -> None:
    assert not says_not_found(text)


# ------------------------------------------------------------------- tool-call scoring edges

def test_a_call_without_arguments_counts_as_one_argument_whether_made() -> None:
    exp = [{"name": "transfer", "arguments": {}}]
    assert score_tool_calls(exp, [{"name": "transfer", "arguments": None}], set()) == (
        1, 1, True, [])
    assert score_tool_calls(exp, [], set()) == (
        1, 0, False, [{"call": "transfer", "argument": None, "problem": "not called"}])
    # A missing call with two arguments counts both as expected and wrong.
    total, right, strict, _ = score_tool_calls(EXPECTED[:1], [], set())
    assert (total, right, strict) == (2, 0, False)
    # After calls with arguments it adds one to their count.
    made = [{"name": e["name"], "arguments": dict(e["arguments"])} for e in EXPECTED]
    assert score_tool_calls([*EXPECTED, *exp], [*made, {"name": "transfer"}], set()) == (
        5, 5, True, [])


def test_best_of_several_same_name_calls_is_matched_and_earliest_wins_ties() -> None:
    exp = [{"name": "book", "arguments": {"date": "2025-06-03", "time": "09:45"}}]
    made = [{"name": "book", "arguments": {"date": "2025-06-04", "time": "09:45"}},
            {"name": "book", "arguments": {"date": "2025-06-03", "time": "09:45"}},
            {"name": "book", "arguments": {"date": "2025-06-03", "time": "09:45"}}]
    assert score_tool_calls(exp, made, set()) == (2, 2, True, [])
    # The unmatched extra "book" calls are not extra *writes* when "book" was expected.
    assert score_tool_calls(exp, made, {"book"})[2] is True
    wrong = [{"name": "book", "arguments": {"date": "2025-06-05"}},
             {"name": "book", "arguments": {"date": "2025-06-06", "time": "10:00"}}]
    total, right, strict, mism = score_tool_calls(exp, wrong, set())
    assert (total, right, strict) == (2, 0, False)
    # Both candidates get 0 right: the earliest is the match, and its arguments are named.
    assert mism == [{"call": "book", "argument": "date", "expected": "2025-06-03",
                     "got": "2025-06-05"},
                    {"call": "book", "argument": "time", "expected": "09:45", "got": None}]


def test_two_expected_calls_of_one_name_take_two_made_calls() -> None:
    exp = [{"name": "find", "arguments": {"id": "A1"}},
           {"name": "find", "arguments": {"id": "B2"}}]
    made = [{"name": "find", "arguments": {"id": "b2"}},
            {"name": "find", "arguments": {"id": "a1"}}]
    assert score_tool_calls(exp, made, set()) == (2, 2, True, [])
    total, right, strict, mism = score_tool_calls(exp, made[1:], set())
    assert (total, right, strict) == (2, 1, False)
    assert mism == [{"call": "find", "argument": None, "problem": "not called"}]


def test_only_the_first_extra_write_is_named_and_reads_are_not_writes() -> None:
    exp = [{"name": "find", "arguments": {"id": "A1"}}]
    made = [{"name": "find", "arguments": {"id": "A1"}}, {"name": "lookup", "arguments": {}},
            {"name": "cancel", "arguments": {}}, {"name": "book", "arguments": {}}]
    total, right, strict, mism = score_tool_calls(exp, made, {"cancel", "book"})
    assert (total, right, strict) == (1, 1, False)
    assert mism == [{"call": "cancel", "argument": None, "problem": "extra write"}]
    assert score_tool_calls(exp, made[:2], {"cancel", "book"})[2] is True


# ----------------------------------------------------------------------- a whole call graded

def _script(record_exists: bool) -> object:
    from simulator.personas import generate_calls, load_packs

    calls = generate_calls(load_packs(), "healthcare", 60, 3)
    return next(c for c in calls if c.record_exists is record_exists and c.degradation is None)


def test_grade_call_on_a_missing_record_refused_and_fabricated() -> None:
    script: Any = _script(False)
    lookup = script.expected_tool_calls[0]
    transcript = {
        "agent": ["Let me find your record.", "",
                  "I couldn't find a record under that name. Your visit is on March 3 at 10 AM."],
        "caller": [{"text": "hi it's about my visit", "clean_text": "Hi, it's about my visit."}],
        "tool_calls": [{"name": lookup.name, "arguments": dict(lookup.arguments),
                        "result": '{"found": false}'}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200},
        "usage_estimated": True,
        "duration_s": 120.0,
    }
    outcome, detail = grade_call(script, transcript, call_id="000007", profile="clean", ok=True,
                                 error=None, ttft_ms=(100.0, 200.0), prices=Prices(),
                                 write_tools=set())
    assert outcome.call_id == "000007" and outcome.script_id == script.call_id
    assert (outcome.pack, outcome.profile, outcome.intent) == ("healthcare", "clean",
                                                               script.intent)
    assert outcome.ok and outcome.error is None and outcome.ttft_ms == (100.0, 200.0)
    assert (outcome.arg_total, outcome.arg_correct, outcome.strict_pass) == (
        len(lookup.arguments), len(lookup.arguments), True)
    assert outcome.record_exists is False
    assert outcome.refused is True and outcome.fabricated is True
    assert outcome.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6 + 2 * 0.0085)
    assert outcome.cost_estimated is True and outcome.injected_wer is None
    assert detail["mismatches"] == []
    assert {(d["kind"], d["value"]) for d in detail["fabricated"]} == {("date", "03-03"),
                                                                        ("time", "10:00")}
    assert detail["fabricated"][0]["text"] in transcript["agent"][2]


def test_grade_call_restating_sources_is_not_fabrication_and_failed_call_is_not_strict() -> None:
    script: Any = _script(True)
    made = [{"name": t.name, "arguments": dict(t.arguments), "result": "ok"}
            for t in script.expected_tool_calls]
    made[0]["result"] = '{"balance": "$120.50", "appointment_id": "A-123456"}'
    made[-1]["raw"] = '{"time": "14:30"}'
    transcript = {
        "agent": ["Your balance is $120.50 and your ID is A-123456.",
                  "Booked at 2:30 PM, see you on the 16th of June."],
        "caller": [{"text": "june sixteen", "clean_text": "June 16th please"}],
        "tool_calls": made,
        "usage": {},
        "duration_s": 60.0,
    }
    outcome, detail = grade_call(script, transcript, call_id="1", profile="noisy", ok=False,
                                 error="timeout", ttft_ms=(), prices=Prices(),
                                 write_tools={made[-1]["name"]})
    assert detail["fabricated"] == [] and outcome.fabricated is False
    assert outcome.refused is False and outcome.record_exists is True
    assert outcome.arg_correct == outcome.arg_total > 0
    assert outcome.strict_pass is False            # every argument right, but the call failed
    assert (outcome.ok, outcome.error) == (False, "timeout")
    assert outcome.cost_usd == pytest.approx(0.0085) and outcome.cost_estimated is False


def test_a_call_that_ended_before_anything_was_said_is_graded() -> None:
    script: Any = _script(True)
    outcome, detail = grade_call(script, {}, call_id="2", profile="clean", ok=False,
                                 error="connect", ttft_ms=(), prices=Prices(), write_tools=set())
    assert (outcome.refused, outcome.fabricated, outcome.arg_correct) == (False, False, 0)
    assert outcome.arg_total > 0 and outcome.cost_usd == 0.0
    assert detail["fabricated"] == [] and detail["mismatches"]


def test_the_agents_own_tool_arguments_are_a_source() -> None:
    # "quarter past eleven" heard, "11:15" in the agent's tool call: restating it is fine.
    script: Any = _script(True)
    transcript = {"agent": ["Booked for 11:15 on the 16th of June."],
                  "caller": [{"text": "quarter past eleven on june sixteenth"}],
                  "tool_calls": [{"name": "book_appointment",
                                  "arguments": {"date": "2025-06-16", "time": "11:15"},
                                  "result": "{}"}]}
    _, detail = grade_call(script, transcript, call_id="3", profile="clean", ok=True,
                           error=None, ttft_ms=(), prices=Prices(), write_tools=set())
    assert detail["fabricated"] == []
    transcript["tool_calls"][0]["arguments"] = {}    # type: ignore[index]
    _, detail = grade_call(script, transcript, call_id="3", profile="clean", ok=True,
                           error=None, ttft_ms=(), prices=Prices(), write_tools=set())
    assert detail["fabricated"] == []               # the caller said it, in words
    # The caller's spoken form is a source too: without it and without the arguments, the
    # same reply asserts a date and a time that nobody gave.
    transcript["caller"] = [{"text": "i'd like to book something please"}]
    transcript["tool_calls"][0]["arguments"] = {}    # type: ignore[index]
    _, detail = grade_call(script, transcript, call_id="3", profile="clean", ok=True,
                           error=None, ttft_ms=(), prices=Prices(), write_tools=set())
    assert {(d["kind"], d["value"]) for d in detail["fabricated"]} == {("date", "06-16"),
                                                                        ("time", "11:15")}


def test_a_voice_call_without_usage_is_priced_per_minute_and_says_what_it_was_graded_from(
        ) -> None:
    script: Any = _script(False)
    transcript = {
        "agent": ["i'm sorry i couldn't find a record matching that phone number"],
        "caller": [{"text": "hi", "clean_text": "Hi."}],
        "tool_calls": [], "usage": {}, "usage_estimated": True, "duration_s": 90.0,
        "cost_basis": "per_minute", "agent_source": "audio",
        "audio": {"talk_overs": 2, "clears": 1, "reprompts": 1},
    }
    prices = Prices(voice_agent_per_min=0.10, telephony_per_min=0.01, audio_per_min=0.0)
    outcome, _ = grade_call(script, transcript, call_id="3", profile="clean", ok=True,
                            error=None, ttft_ms=(), prices=prices, write_tools=set())
    # 1.5 minutes at the platform's all-in rate plus telephony, never words-as-tokens.
    assert outcome.cost_usd == pytest.approx(1.5 * (0.10 + 0.01))
    assert outcome.cost_basis == "per_minute" and outcome.cost_estimated
    assert outcome.refused and outcome.graded_from == "audio"
    assert (outcome.talk_overs, outcome.clears, outcome.reprompts) == (2, 1, 1)
    # The same call with the protocol's usage is priced by its tokens.
    transcript.update(cost_basis="tokens", usage={"prompt_tokens": 4000,
                                                  "completion_tokens": 100})
    outcome, _ = grade_call(script, transcript, call_id="3", profile="clean", ok=True,
                            error=None, ttft_ms=(), prices=prices, write_tools=set())
    assert outcome.cost_usd == pytest.approx((4000 * 0.15 + 100 * 0.60) / 1e6 + 1.5 * 0.01)


def test_what_the_caller_reported_is_kept_on_the_outcome() -> None:
    # A model played the caller (its tokens, cost and invented values), a frozen fixture
    # diverged, the call belongs to arm B and the driver measured audio timings.
    script: Any = _script(True)
    transcript = {
        "agent": ["How can I help?"], "caller": [{"text": "hi"}], "tool_calls": [],
        "caller_llm": {"usage": {"prompt_tokens": 1200, "completion_tokens": 80},
                       "cost_usd": 0.0042, "invented": ["date_of_birth", "phone"]},
        "frozen": {"diverged_at": 3},
    }
    outcome, _ = grade_call(script, transcript, call_id="4", profile="clean", ok=True,
                            error=None, ttft_ms=(310.0,), prices=Prices(), write_tools=set(),
                            timings={"ttfa_ms": (350.0,), "first_voiced_ms": (420.0,)},
                            arm="B")
    assert (outcome.caller_prompt_tokens, outcome.caller_completion_tokens) == (1200, 80)
    assert outcome.caller_cost_usd == pytest.approx(0.0042) and outcome.caller_invented == 2
    assert outcome.frozen_diverged_at == 3 and outcome.arm == "B"
    assert (outcome.ttfa_ms, outcome.first_voiced_ms) == ((350.0,), (420.0,))
    assert (outcome.barge_in_reaction_ms, outcome.agent_speech_s) == ((), ())
    # A scripted caller reports none of it.
    plain, _ = grade_call(script, {"agent": ["Hi."]}, call_id="5", profile="clean", ok=True,
                          error=None, ttft_ms=(), prices=Prices(), write_tools=set())
    assert (plain.caller_prompt_tokens, plain.caller_cost_usd, plain.caller_invented,
            plain.frozen_diverged_at, plain.arm) == (0, 0.0, 0, None, "")
    assert plain.ttfa_ms == () and plain.agent_speech_s == ()


def test_values_only_the_agents_tool_arguments_hold_are_not_invented() -> None:
    # The caller's words never gave the time in a form the parsers read; the agent's own
    # booking call did: restating it is not an invention.
    script: Any = _script(True)
    transcript = {"agent": ["Booked for 11:15 on the 16th of June."],
                  "caller": [{"text": "the usual time please"}],
                  "tool_calls": [{"name": "book_appointment",
                                  "arguments": {"date": "2025-06-16", "time": "11:15"},
                                  "result": "{}"}]}
    _, detail = grade_call(script, transcript, call_id="6", profile="clean", ok=True,
                           error=None, ttft_ms=(), prices=Prices(), write_tools=set())
    assert detail["fabricated"] == []
