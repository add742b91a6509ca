"""The caller policy: answers what the agent asks, closes, hangs up, never loops."""

from __future__ import annotations

import pytest

from simulator.callscript import CallScript
from simulator.personas.caller import NOT_UNDERSTOOD, YES, Caller
from simulator.personas.generator import generate_calls
from simulator.personas.pack import Pack


def _call(packs: dict[str, Pack], pred: object) -> CallScript:
    return next(c for c in generate_calls(packs, "healthcare", 200, 4) if pred(c))  # type: ignore[operator]


def test_caller_answers_the_slot_asked_out_of_order(packs: dict[str, Pack]) -> None:
    call = _call(packs, lambda c: c.intent == "book_appointment" and len(c.turns) == 7)
    caller = Caller(call, packs["healthcare"])
    assert caller.first().kind == "opening"
    dob = caller.respond("Thank you. And what is the patient's date of birth?")
    assert dob is not None and dob.slot == "date_of_birth"
    name = caller.respond("Can I have the patient's full name, please?")
    assert name is not None and name.slot == "patient_name"
    when = caller.respond("What day would you like to come in?")
    assert when is not None and when.slot == "date"
    # Nothing recognisable: a person asks what is wanted, not the next scripted line.
    nxt = caller.respond("Okay.")
    assert nxt is not None and nxt.text == NOT_UNDERSTOOD and nxt.slot is None
    nxt = caller.respond("What is the reason for the visit?")
    assert nxt is not None and nxt.slot == "reason"
    closing = caller.respond("You're all set. Is there anything else I can help you with?")
    assert closing is not None and closing.kind == "closing"
    assert caller.respond("Goodbye!") is None


def test_a_reply_with_no_text_gets_the_scripts_next_turn(packs: dict[str, Pack]) -> None:
    """An audio agent whose words do not reach the driver: nothing to follow, so the
    script is spoken as written, then its closing, then the caller hangs up."""
    call = _call(packs, lambda c: c.intent == "book_appointment" and len(c.turns) == 7)
    caller = Caller(call, packs["healthcare"])
    sent = [caller.first()]
    while (t := caller.respond("")) is not None and len(sent) < 20:
        sent.append(t)
    assert [t.index for t in sent] == [t.index for t in call.turns]
    assert sent[-1].kind == "closing" and NOT_UNDERSTOOD not in [t.text for t in sent]


def test_caller_hangs_up_on_goodbye_and_on_transfer(packs: dict[str, Pack]) -> None:
    call = _call(packs, lambda c: True)
    caller = Caller(call, packs["healthcare"])
    caller.first()
    assert caller.respond("Thanks for calling, goodbye.") is None
    caller = Caller(call, packs["healthcare"])
    caller.first()
    assert caller.respond("I'm connecting you to the on-call technician now.") is None


def test_caller_respeaks_a_slot_given_in_the_opening(packs: dict[str, Pack]) -> None:
    call = _call(
        packs,
        lambda c: "patient_name" in c.slots and all(t.slot != "patient_name" for t in c.turns),
    )
    caller = Caller(call, packs["healthcare"])
    caller.first()
    again = caller.respond("Can I have the patient's full name, please?")
    assert again is not None and again.slot == "patient_name"
    assert call.slots["patient_name"] in again.text


def test_caller_never_loops_forever(packs: dict[str, Pack]) -> None:
    call = _call(packs, lambda c: True)
    caller = Caller(call, packs["healthcare"])
    caller.first()
    sent = 0
    while caller.respond("Sorry, can I have the patient's full name, please?") is not None:
        sent += 1
        assert sent <= 2 * len(call.turns)
    assert caller.done


def test_caller_repeats_per_patience_then_gives_up(packs: dict[str, Pack]) -> None:
    from simulator.personas.caller import GIVE_UP, max_repeats

    for patience in (0.0, 1.0):
        call = _call(packs, lambda c: any(t.slot == "patient_name" for t in c.turns))
        call = call.model_copy(
            update={"persona": call.persona.model_copy(
                update={"style": call.persona.style.model_copy(update={"patience": patience})}
            )}
        )
        caller = Caller(call, packs["healthcare"])
        caller.first()
        said = []
        while (t := caller.respond("Sorry, can I have the patient's full name, please?")):
            said.append(t)
        assert [t.slot for t in said[:-1]] == ["patient_name"] * (1 + max_repeats(patience))
        assert said[-1].kind == "closing" and said[-1].text == GIVE_UP
        assert caller.done
    assert (max_repeats(0.0), max_repeats(1.0)) == (1, 3)


def test_a_repeat_is_heard_afresh_and_deterministically(packs: dict[str, Pack]) -> None:
    from simulator.degradation import degrade_calls
    from simulator.degradation.profile import get_profile

    calls = degrade_calls(generate_calls(packs, "healthcare", 200, 4), get_profile("noisy"), 4)
    call = next(
        c for c in calls
        if any(t.slot == "patient_name" and t.edits and len(t.edits) >= 1 for t in c.turns)
    )
    first = next(t for t in call.turns if t.slot == "patient_name")

    def repeats() -> list[str]:
        caller = Caller(call, packs["healthcare"])
        caller.first()
        out = []
        for _ in range(3):
            t = caller.respond("Can I have the patient's full name, please?")
            if t is None or t.slot != "patient_name":
                break
            out.append(t.text)
        return out

    texts = repeats()
    assert texts[0] == first.text  # the first answer is the degraded turn as scripted
    assert texts == repeats()  # same script, same repeats
    # Across many degraded answers, some repeats come out clean and some keep an error.
    fresh = kept = 0
    for c in calls:
        for t in c.turns:
            if t.slot != "patient_name" or not t.edits:
                continue
            caller = Caller(c, packs["healthcare"])
            caller.first()
            caller.respond("Can I have the patient's full name, please?")
            again = caller.respond("Can I have the patient's full name, please?")
            if again is not None and again.slot == "patient_name":
                fresh += again.text == t.clean_text
                kept += again.text != t.clean_text
    assert fresh > 0 and kept > 0
    # The noisier the line, the likelier a mistake recurs.
    from simulator.personas.caller import recurrence

    names = ("clean", "quiet_phone", "typical_call", "noisy", "hostile")
    rates = [recurrence(degrade_calls(calls[:1], get_profile(n), 4)[0]) for n in names]
    assert rates == sorted(rates) and rates[0] < 0.1 < rates[-1] <= 0.9


def _book(packs: dict[str, Pack]) -> CallScript:
    return _call(packs, lambda c: c.intent == "book_appointment" and len(c.turns) == 7)


# Questions an LLM agent asks, none of them a reference-agent phrasing.
LLM_QUESTIONS = [
    ("Could I get your name and date of birth to pull up your chart?",
     ["patient_name", "date_of_birth"]),
    ("Before we start, when were you born?", ["date_of_birth"]),
    ("Who do I have on the line today?", ["patient_name"]),
    ("Sure thing! What time of day suits you?", ["time"]),
    ("Lovely. And which day and time would be best?", ["date", "time"]),
    ("What's bringing you in, so I can book the right slot?", ["reason"]),
]


@pytest.mark.parametrize(("question", "slots"), LLM_QUESTIONS,
                         ids=[q[:30] for q, _ in LLM_QUESTIONS])
def test_caller_finds_every_slot_a_free_form_question_asks(
    packs: dict[str, Pack], question: str, slots: list[str]
) -> None:
    assert Caller(_book(packs), packs["healthcare"]).asked_slots(question) == slots


def test_a_two_slot_question_gets_both_answers_in_one_turn(packs: dict[str, Pack]) -> None:
    from simulator.slots import parse

    call = _book(packs)
    caller = Caller(call, packs["healthcare"])
    caller.first()
    turn = caller.respond("Hope you're well. Could I get your full name and your date of "
                          "birth to pull up your file?")
    assert turn is not None
    sd = packs["healthcare"].slots
    assert call.slots["patient_name"] in turn.text
    assert parse("date_of_birth", turn.text, sd["date_of_birth"].options()) == \
        call.slots["date_of_birth"]


def test_read_backs_are_confirmed_or_corrected(packs: dict[str, Pack]) -> None:
    import datetime as dt

    from simulator.slots import speak

    call = _book(packs)
    caller = Caller(call, packs["healthcare"])
    caller.first()
    caller.respond("What day would you like to come in?")
    right = speak("date", call.slots["date"])
    yes = caller.respond(f"Just to confirm, that's {right}?")
    assert yes is not None and yes.text == YES
    other = dt.date.fromisoformat(call.slots["date"]) + dt.timedelta(days=1)
    no = caller.respond(f"So that's {speak('date', other.isoformat())}, correct?")
    assert no is not None and no.text.startswith("No, ") and no.slot == "date"


def test_offers_small_talk_and_what_is_the_call_about(packs: dict[str, Pack]) -> None:
    call = _book(packs)
    caller = Caller(call, packs["healthcare"])
    opening = caller.first()
    again = caller.respond("Sorry, could you tell me a bit more about what you need?")
    assert again is not None and again.text == opening.text
    # Offered choices, a person picks the one it called for (its goal, as heard).
    goal = packs["healthcare"].intents[call.intent].goal
    picked = caller.respond(f"Are you looking to {goal} or cancel one?")
    assert picked is not None and picked.text == f"I'd like to {goal}."
    caller = Caller(call, packs["healthcare"])
    caller.first()
    talk = caller.respond("How's your day going so far?")
    assert talk is not None and talk.text == "Good, thanks."
    offer = caller.respond("Would you like me to go ahead and book that?")
    assert offer is not None and offer.text == "Yes, please."


def test_caller_that_keeps_not_understanding_hangs_up(packs: dict[str, Pack]) -> None:
    from simulator.personas.caller import GIVE_UP, MAX_NOT_UNDERSTOOD

    caller = Caller(_book(packs), packs["healthcare"])
    caller.first()
    said = [caller.respond("Mm.") for _ in range(MAX_NOT_UNDERSTOOD + 1)]
    assert [t.text for t in said if t] == [NOT_UNDERSTOOD] * MAX_NOT_UNDERSTOOD + [GIVE_UP]
    assert caller.done and caller.respond("Hello?") is None
