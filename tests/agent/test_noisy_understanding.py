"""The reference agent on recognition-degraded caller text: it reads through misheard
words, settles for a best guess instead of asking forever, and double-checks the first
identity detail once before saying it cannot find a record."""

from __future__ import annotations

import json
from typing import Any

from simulator.agent.policy import AgentConfig, Reply, decide
from simulator.personas.pack import Pack


def _talk(pack: Pack, packs: dict[str, Pack], *turns: Any) -> Reply:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": pack.system_prompt}]
    for t in turns:
        msgs.append(t if isinstance(t, dict) else {"role": "user", "content": t})
    return decide(msgs, pack.tool_schemas(), packs, AgentConfig())


def _agent(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def test_misheard_intent_words_still_name_the_intent(packs: dict[str, Pack]) -> None:
    re_ = packs["real_estate"]
    r = _talk(re_, packs, "Hi, I'm calling to book a vi ewing, please.")
    assert r.content == re_.slots["address"].question


def test_unclear_intent_after_one_clarification_gets_a_best_guess(
    packs: dict[str, Pack],
) -> None:
    hc = packs["healthcare"]
    first = _talk(hc, packs, "Hello?")
    assert "Are you calling to" in first.content
    r = _talk(hc, packs, "Hello?", _agent(first.content), "Yes, hmm.")
    assert "Are you calling to" not in r.content  # it moved on: asks for identity details
    assert r.content in {s.question for s in hc.slots.values()}


def test_a_caller_who_picks_one_of_the_offered_goals_is_understood(
    packs: dict[str, Pack],
) -> None:
    # What the example Pipecat bot's recogniser heard: an opening with a misheard word
    # ("see you inside") that names no intent, then the caller's pick from the options.
    re_ = packs["real_estate"]
    opening = "Hi my wife and I want to see you inside the place at 3560 Gonzales Forge"
    first = _talk(re_, packs, opening)
    assert "Are you calling to" in first.content
    goal = re_.intents["schedule_showing"].goal
    assert goal in first.content
    pick = f"I'd like to {goal}."
    r = _talk(re_, packs, opening, _agent(first.content), pick)
    assert r.tool_calls and r.tool_calls[0].name == "lookup_listing", r
    call = r.tool_calls[0]
    found = {"found": True, "record": {"listing_id": "L-96244", "address": "3560 Gonzalez Forge",
                                       "bedrooms": 6, "bathrooms": 1, "square_feet": 2230,
                                       "price": 1455000}}
    after = _talk(re_, packs, opening, _agent(first.content), pick,
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": json.dumps(found)})
    # It books the showing (asks what a showing needs), not the size of the place.
    assert "bedrooms" not in after.content, after
    showing = re_.intents["schedule_showing"].slots
    assert any(after.content == re_.slots[s].question for s in showing), after


def test_after_two_asks_the_agent_takes_its_best_guess(packs: dict[str, Pack]) -> None:
    hc = packs["healthcare"]
    q = hc.slots["patient_name"].question
    opening = "Hi, I need to cancel my appointment."
    r1 = _talk(hc, packs, opening, _agent(q), "Christopher.")
    assert r1.content.startswith("Sorry, I didn't catch that.")
    r2 = _talk(hc, packs, opening, _agent(q), "Christopher.", _agent(r1.content), "Christopher.")
    assert r2.content == hc.slots["date_of_birth"].question  # went on with "Christopher"
    dob = "It Marsh 16, 1944"
    r3 = _talk(hc, packs, opening, _agent(q), "Christopher.", _agent(r1.content), "Christopher.",
               _agent(r2.content), dob)
    (call,) = r3.tool_calls
    assert json.loads(call.arguments) == {"name": "Christopher", "date_of_birth": "1944-03-16"}


def test_not_found_is_double_checked_once_then_refused(packs: dict[str, Pack]) -> None:
    hc = packs["healthcare"]
    opening = "Hi, this is Nicolas Johns, I need to cancel my appointment."
    dob_q = hc.slots["date_of_birth"].question
    lookup = _talk(hc, packs, opening, _agent(dob_q), "March 3, 1980.")
    (tc,) = lookup.tool_calls
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
    ]}
    miss = {"role": "tool", "tool_call_id": tc.id,
            "content": json.dumps({"found": False, "error": "not_found"})}
    base = [opening, _agent(dob_q), "March 3, 1980.", call, miss]
    check = _talk(hc, packs, *base)
    assert check.content.startswith("Let me double-check")
    assert check.content.endswith(hc.slots["patient_name"].question)
    # Heard differently this time: it looks again with the new name.
    r = _talk(hc, packs, *base, _agent(check.content), "Nicolas Jones.")
    (again,) = r.tool_calls
    assert json.loads(again.arguments)["name"] == "Nicolas Jones"
    # Heard the same: no second lookup, it says it cannot find the record.
    r = _talk(hc, packs, *base, _agent(check.content), "Nicolas Johns.")
    assert not r.tool_calls and "couldn't find a record" in r.content
