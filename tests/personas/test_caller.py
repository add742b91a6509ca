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
