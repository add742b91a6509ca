"""Small realistic clinic call scripts for the degradation tests."""

from __future__ import annotations

import pytest

from simulator.callscript import CallScript, Persona, ToolCall, Turn


def clinic_call(call_id: str = "call-0001") -> CallScript:
    turns = [
        Turn(index=0, kind="opening", text="Hi, I'd like to book an appointment with Dr. Reyes."),
        Turn(index=1, text="My name is Jane Shankaran.", slot="name"),
        Turn(index=2, text="My date of birth is March 5th, 1984.", slot="date_of_birth"),
        Turn(index=3, text="My number is 555-201-3344.", slot="phone"),
        Turn(index=4, text="Could I come in on Tuesday, July 15th?", slot="preferred_date"),
        Turn(index=5, text="Around 2:30 PM would be great.", slot="preferred_time"),
        Turn(index=6, kind="closing", text="Thank you so much, that's all I needed."),
    ]
    slots = {"name": "Jane Shankaran", "date_of_birth": "1984-03-05", "phone": "5552013344",
             "preferred_date": "2025-07-15", "preferred_time": "14:30"}
    return CallScript(
        call_id=call_id, pack="clinic", intent="book_appointment", seed=1,
        persona=Persona(name="Jane Shankaran", phone="5552013344", date_of_birth="1984-03-05"),
        record_exists=True, slots=slots, turns=turns,
        expected_tool_calls=[
            ToolCall(name="find_patient",
                     arguments={"name": "Jane Shankaran", "date_of_birth": "1984-03-05"}),
            ToolCall(name="book_appointment",
                     arguments={"date": "2025-07-15", "time": "14:30"}),
        ],
        expected_outcome="completed",
    )


@pytest.fixture
def call() -> CallScript:
    return clinic_call()
