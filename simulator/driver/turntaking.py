"""How the caller takes turns on an audio call: the options of ``callsim run`` that make it
behave like a person on the phone (docs/listener.md). Kept apart from the audio call loop so
a text run's config does not import the audio stack."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import InputError

REPROMPT_TEXT = "Hello? Are you still there?"


@dataclass(frozen=True)
class TurnTaking:
    """How the caller takes turns (all options of ``callsim run``, see docs/listener.md).

    ``greeting_wait_s``: how long to wait for the agent to start greeting before the caller
    speaks (0: do not wait); ``greeting_max_s``: the longest greeting the caller lets finish;
    ``agent_silence_s``: agent silence (after its audio played out) that ends its turn;
    ``reprompt_after_s``: agent silence after the caller's turn before the caller says
    ``reprompt_text``; ``reprompts``: how many times before giving up (then the call fails
    as ``agent_silent``)."""

    greeting_wait_s: float = 5.0
    greeting_max_s: float = 30.0
    agent_silence_s: float = 0.7
    reprompt_after_s: float = 8.0
    reprompts: int = 1
    reprompt_text: str = REPROMPT_TEXT

    def __post_init__(self) -> None:
        for name in ("greeting_wait_s", "greeting_max_s", "agent_silence_s"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name[:-2].replace('_', '-')}: must be >= 0 seconds")
        if self.reprompt_after_s <= 0:
            raise InputError("--reprompt-after: must be > 0 seconds")
        if self.reprompts < 0:
            raise InputError("--reprompts: must be >= 0")
