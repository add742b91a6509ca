"""The caller policy: answers what the agent asks, closes, hangs up, never loops."""

from __future__ import annotations

from simulator.callscript import CallScript
from simulator.personas.caller import Caller
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
    # Nothing recognisable: the next unsent turn.
    nxt = caller.respond("Okay.")
    assert nxt is not None and nxt.slot == "reason"
    closing = caller.respond("You're all set. Is there anything else I can help you with?")
    assert closing is not None and closing.kind == "closing"
    assert caller.respond("Goodbye!") is None


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
