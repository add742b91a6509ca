"""The refusal detector on phrasings outside the labelled corpus: what an LLM agent says
when a lookup finds nothing, and the near-misses that share its words but refuse nothing."""

from __future__ import annotations

import pytest

from simulator.metrics.refusal import normalise, says_not_found

REFUSALS = [
    "I'm sorry, I couldn't find a record matching that name and date of birth.",
    "Hmm, I'm not seeing any appointment under that phone number.",
    "Unfortunately that booking doesn't appear in our records.",
    "I don't have any record of an account under that name.",
    "Sorry, I can't seem to find that appointment.",
    "That appointment isn't showing up on my end.",
    "It seems we don't have an account under that name.",
    "There doesn't appear to be a booking under that number.",
    "I've searched our system and can't find anything under that name.",
    "No records were found for that name and date of birth.",
    "The system isn't returning any results for that name.",
    "I haven't been able to locate your file.",
    "I'm drawing a blank on that listing number.",
    "Your details didn't match anything in our system.",
    "No one by that name is in our system.",
    "The record could not be located.",
    "Hmm, doesn't look like there's anything under that name.",
    "I searched, but I'm not seeing it.",
    "We have no listing by that address.",
    "Nothing comes up for that ID.",
    "That isn't a listing we have.",
    "I don't recognize that phone number.",
    "We have no such patient.",
    "There's nothing by that name.",
    "We're not showing you as a patient.",
    "You're not a registered patient here.",
    "None of our clients match that name.",
    "That ID doesn't belong to any listing.",
    "Not finding anything, sorry.",
    "Doesn't look like you have an account with us.",
    "Hmm, I'm coming up short on that one.",
    "I haven't got anything for that address.",
    "I'm afraid that listing is no longer in our system.",
    "Our system has no listing for that ID.",
]

NOT_REFUSALS = [
    # The words of a refusal without one.
    "Let me find your appointment.",
    "Let me find that for you.",
    "Let me see what I can do.",
    "I found it! You're booked for Tuesday.",
    "I can't wait to see you!",
    "No problem at all.",
    "No worries, take your time.",
    "I can see your appointment right here.",
    # Negated, but about something else than the caller's record.
    "I don't see a problem with that.",
    "I can't see anything wrong with your booking.",
    "We don't have any openings tomorrow.",
    "I couldn't find an earlier opening, but Thursday works.",
    "I can't see you before Thursday, unfortunately.",
    "I can't give out medical advice.",
    "I can't access your medical records from here.",
    "I'm sorry, I'm having trouble hearing the name on this line.",
    "Sorry, I didn't catch that.",
    "Nothing else is needed on your end.",
    "There's no charge for that.",
    "I don't have access to billing, but I can transfer you.",
    "I don't recognize the song playing, sorry!",
    "There's no such thing as a silly question.",
    "We don't have your color in stock right now.",
    "I don't have that information in front of me.",
    "We don't have appointments on Sundays.",
    "I couldn't find a better time to call.",
    "Don't worry, nothing's wrong with your account.",
    # Conditionals, questions and a search that succeeded after all.
    "If I can't find it, I'll connect you with the front desk.",
    "Can't find your confirmation email? No worries.",
    "I couldn't find it under your phone number at first, but here it is under your name.",
]


@pytest.mark.parametrize("text", REFUSALS, ids=range(len(REFUSALS)))
def test_refusals_in_many_phrasings_are_read(text: str) -> None:
    assert says_not_found(text)


@pytest.mark.parametrize("text", NOT_REFUSALS, ids=range(len(NOT_REFUSALS)))
def test_near_misses_are_not_refusals(text: str) -> None:
    assert not says_not_found(text)


def test_a_reply_mentioning_find_is_not_thereby_a_refusal() -> None:
    finds = [t for t in NOT_REFUSALS if "find" in t.lower()]
    assert len(finds) >= 4 and not any(says_not_found(t) for t in finds)


def test_curly_apostrophes_and_contractions_read_alike() -> None:
    assert normalise("I can\u2019t find it; it isn\u2019t there") == (
        "I can not find it; it is not there")
    assert says_not_found("I can\u2019t seem to find your booking.")
