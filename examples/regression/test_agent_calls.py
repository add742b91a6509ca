"""A regression suite of simulated calls: one test per call in calls.jsonl.

Run against the reference agent::

    callsim agent serve --port 8000 &
    pytest examples/regression --callsim-calls examples/regression/calls.jsonl \
        --callsim-target http://127.0.0.1:8000/v1

A failing call fails its own test, with what went wrong and the transcript.
"""

from __future__ import annotations

from typing import Any


def test_call_does_what_it_should(callsim_call: Any, callsim_replay: Any) -> None:
    callsim_replay(callsim_call).assert_expected()
