"""The caller policy: which scripted turn a persona says next, given what the agent said.

Pure, no I/O: the driver calls :meth:`Caller.first` then :meth:`Caller.respond` with each
agent reply until it returns None (the caller hangs up).
"""

from __future__ import annotations

import random
import re

from simulator.callscript import CallScript, Turn
from simulator.personas.pack import Pack
from simulator.seeding import derive_seed
from simulator.slots import render

_ANYTHING_ELSE = re.compile(
    r"anything else|something else|any other (?:questions|thing)|is that all"
    r"|else (?:i|we) can (?:help|do)",
    re.I,
)
_GOODBYE = re.compile(
    r"\b(?:good ?bye|bye|have a (?:great|good|nice|wonderful) (?:day|night|evening)|take care)\b"
    r"|\b(?:connecting|transferring|putting) you (?:through|now|to)\b",
    re.I,
)
_CONFIRMS = re.compile(
    r"\b(?:you're all set|all set|is confirmed|been (?:booked|scheduled|cancell?ed|moved|"
    r"rescheduled|submitted|created)|i've (?:booked|scheduled|cancell?ed|moved|rescheduled|"
    r"submitted|created|logged|passed)|done[:.,])",
    re.I,
)
_SENTENCE = re.compile(r"[^.!?]*[.!?]?")


def _questions(text: str) -> str:
    """The question sentences of ``text`` if any, else all of it (so a slot named in a
    statement, e.g. a confirmation, is not mistaken for a question)."""
    qs = [s for s in _SENTENCE.findall(text) if s.strip().endswith("?")]
    return " ".join(qs) if qs else text


class Caller:
    """Plays one call script against an agent.

    Turns are sent at most once each, except that a slot's answer is re-sent (or, when it
    was given in the opening, re-spoken) if the agent asks for it again. The call ends
    after the closing turn, when the agent says goodbye / transfers, when turns run out,
    or after 2x as many sends as the script has turns."""

    def __init__(self, script: CallScript, pack: Pack) -> None:
        self.script = script
        self.pack = pack
        self._sent: set[int] = set()
        self._sends = 0
        self._done = False
        self._limit = 2 * len(script.turns)
        self._by_slot = {t.slot: t for t in script.turns if t.slot}
        self._closing = next((t for t in script.turns if t.kind == "closing"), None)
        self._extra = 0
        slot_names = set(script.slots)
        # Longest keywords first: "date of birth" beats "date".
        self._keywords = sorted(
            (
                (kw.lower(), name)
                for name, sd in pack.slots.items()
                if name in slot_names
                for kw in sd.keywords
            ),
            key=lambda kv: -len(kv[0]),
        )

    @property
    def done(self) -> bool:
        return self._done

    def _send(self, turn: Turn) -> Turn | None:
        if self._sends >= self._limit:
            self._done = True
            return None
        self._sends += 1
        self._sent.add(turn.index)
        if turn.kind == "closing":
            self._done = True
        return turn

    def first(self) -> Turn:
        """The opening turn."""
        turn = self.script.turns[0]
        self._sends += 1
        self._sent.add(turn.index)
        return turn

    def asked_slot(self, agent_text: str) -> str | None:
        """The slot the agent's question asks for (longest keyword match), or None."""
        q = _questions(agent_text).lower()
        for kw, name in self._keywords:
            if re.search(rf"(?<![a-z]){re.escape(kw)}(?![a-z])", q):
                return name
        return None

    def respond(self, agent_text: str) -> Turn | None:
        """The caller's next turn after ``agent_text``, or None to hang up."""
        if self._done:
            return None
        if _GOODBYE.search(agent_text):
            self._done = True
            return None
        if _ANYTHING_ELSE.search(agent_text):
            return self._closing_turn()
        slot = self.asked_slot(agent_text)
        if slot is not None:
            turn = self._by_slot.get(slot)
            if turn is None:
                turn = self._respeak(slot)
            return self._send(turn)
        if _CONFIRMS.search(agent_text):
            return self._closing_turn()
        for turn in self.script.turns:
            if turn.index not in self._sent and turn.kind != "closing":
                return self._send(turn)
        return self._closing_turn()

    def _closing_turn(self) -> Turn | None:
        if self._closing is None:
            self._done = True
            return None
        return self._send(self._closing)

    def _respeak(self, slot: str) -> Turn:
        """A fresh answer for a slot given in the opening that the agent asks for again."""
        sd = self.pack.slots[slot]
        r = random.Random(derive_seed(self.script.seed, "respeak", slot, self._extra))
        text = sd.answers[0].format(value=render(sd.type, self.script.slots[slot], r, sd.options()))
        self._extra += 1
        return Turn(
            index=len(self.script.turns) + self._extra - 1, kind="answer", text=text, slot=slot
        )
