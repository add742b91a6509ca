"""The caller policy: which scripted turn a persona says next, given what the agent said.

Pure, no I/O: the driver calls :meth:`Caller.first` then :meth:`Caller.respond` with each
agent reply until it returns None (the caller hangs up).

Asked again for something already said, a caller repeats it, a limited number of times
(more for a patient persona), then gives up politely. A repeat of a degraded turn is heard
afresh: each recognition error recorded on the turn recurs with a probability that grows
with the profile's noise (see :func:`recurrence`), the rest come out right.
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
_STRIP = ".,?!;:\"'()"
GIVE_UP = "Never mind, I'll call back later. Bye."


def max_repeats(patience: float) -> int:
    """How many times a persona repeats an answer the agent keeps asking for: 1 for the
    least patient, 3 for the most."""
    return 1 + round(2 * max(0.0, min(1.0, patience)))


def recurrence(script: CallScript) -> float:
    """The chance that a recognition error on a turn recurs when the caller says it again:
    twice the profile's target WER (the centre of its band; else the call's measured WER),
    at most 0.9. Words misheard once are the hard ones, so they fail more than average."""
    deg = script.degradation
    if deg is None:
        return 0.0
    if deg.target_wer is not None:
        wer = (deg.target_wer[0] + deg.target_wer[1]) / 2
    else:
        wer = deg.measured_wer or 0.0
    return min(0.9, 2.0 * wer)


def apply_edits(clean: str, edits: list[dict[str, object]]) -> str:
    """``clean`` with the recognition ``edits`` of :mod:`simulator.degradation.asr_noise` applied
    (``op``/``from``/``to``/``pos``, ``pos`` a word index into ``clean.split()``)."""
    tokens = clean.split()
    at: dict[int, dict[str, object]] = {}
    for e in edits:
        pos = e.get("pos")
        if isinstance(pos, int) and 0 <= pos < len(tokens):
            at.setdefault(pos, e)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        found = at.get(i)
        if found is None:
            out.append(tok)
            i += 1
            continue
        e = found
        core = tok.strip(_STRIP)
        lead = tok[: len(tok) - len(tok.lstrip(_STRIP))]
        trail = tok[len(lead) + len(core) :]
        op, to = e.get("op"), str(e.get("to") or "")
        if op == "ins":
            out += [to, tok]
        elif op == "del":
            if trail and out and not out[-1].endswith(trail):
                out[-1] += trail.strip()
        elif op == "merge" and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            ncore = nxt.strip(_STRIP)
            out.append(lead + to + nxt[nxt.find(ncore) + len(ncore) :])
            i += 1
        else:
            out.append(lead + to + trail)
        i += 1
    return " ".join(out)


def _questions(text: str) -> str:
    """The question sentences of ``text`` if any, else all of it (so a slot named in a
    statement, e.g. a confirmation, is not mistaken for a question)."""
    qs = [s for s in _SENTENCE.findall(text) if s.strip().endswith("?")]
    return " ".join(qs) if qs else text


class Caller:
    """Plays one call script against an agent.

    Turns are sent at most once each, except that a slot's answer is said again (re-heard,
    see :meth:`_repeat`; or, when it was given in the opening, re-spoken) if the agent asks
    for it again, up to :func:`max_repeats` times per slot; asked once more, the caller
    says :data:`GIVE_UP` and hangs up. The call also ends after the closing turn, when
    the agent says goodbye / transfers, when turns run out, or after 2x as many sends as
    the script has turns."""

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
        self._answered: dict[str, int] = {}
        self._max_repeats = max_repeats(script.persona.style.patience)
        self._recur = recurrence(script)
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
            said = self._answered.get(slot, 0)
            if said > self._max_repeats:
                return self._give_up()
            self._answered[slot] = said + 1
            turn = self._by_slot.get(slot)
            if turn is None:
                turn = self._respeak(slot)
            elif said:
                turn = self._repeat(turn, said)
            return self._send(turn)
        if _CONFIRMS.search(agent_text):
            return self._closing_turn()
        for turn in self.script.turns:
            if turn.index not in self._sent and turn.kind != "closing":
                return self._send(turn)
        return self._closing_turn()

    def _give_up(self) -> Turn | None:
        """Asked too often for the same thing: a polite last turn, then hang up."""
        self._extra += 1
        turn = Turn(index=len(self.script.turns) + self._extra - 1, kind="closing", text=GIVE_UP)
        self._sends = min(self._sends, self._limit - 1)
        return self._send(turn)

    def _repeat(self, turn: Turn, n: int) -> Turn:
        """``turn`` said again (the ``n``-th repeat) and heard afresh: each recognition
        error recurs with probability :func:`recurrence`, drawn from the script's seed."""
        if not turn.edits or turn.clean_text is None:
            return turn
        r = random.Random(derive_seed(self.script.seed, "rehear", turn.index, n))
        kept = [e for e in turn.edits if r.random() < self._recur]
        if len(kept) == len(turn.edits):
            return turn
        return turn.model_copy(
            update={"text": apply_edits(turn.clean_text, kept), "edits": kept, "wer": None}
        )

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
