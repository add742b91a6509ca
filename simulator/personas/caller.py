"""The caller policy: which scripted turn a persona says next, given what the agent said.

Pure, no I/O: the driver calls :meth:`Caller.first` then :meth:`Caller.respond` with each
agent reply until it returns None (the caller hangs up).

It follows an agent that talks like an LLM, not only a template one: it finds every slot a
question asks for (cue words per slot type plus the pack's keywords, in the order asked) and
answers them together, answers "Just to confirm, that's the 16th?" with yes or with the
right value, says yes to a yes/no offer, restates what it wants when asked what the call is
about, and asks "Sorry, what do you need from me?" when it cannot tell, as a person would.

Asked again for something already said, a caller repeats it, a limited number of times
(more for a patient persona), then gives up politely. A repeat of a degraded turn is heard
afresh: each recognition error recorded on the turn recurs with a probability that grows
with the profile's noise (see :func:`recurrence`), the rest come out right.
"""

from __future__ import annotations

import functools
import random
import re

from simulator.callscript import CallScript, Turn
from simulator.personas.pack import Pack
from simulator.seeding import derive_seed
from simulator.slots import fold, fuzzy_phrase_score, normalise_arg, parse, render, speak


class _Needs:
    """A case-insensitive pattern and the words it cannot match without: :meth:`search`
    looks for those first (in C), and runs the pattern only when one is there."""

    __slots__ = ("pattern", "words")

    def __init__(self, pattern: re.Pattern[str], *words: str) -> None:
        self.pattern, self.words = pattern, words

    def search(self, text: str) -> re.Match[str] | None:
        low = fold(text)
        return self.pattern.search(text) if any(w in low for w in self.words) else None


_ANYTHING_ELSE_RE = re.compile(
    r"anything else|something else|any other (?:questions|thing)|is that all"
    r"|else (?:i|we) can (?:help|do)",
    re.I,
)
_ANYTHING_ELSE = _Needs(_ANYTHING_ELSE_RE, "else", "any other", "is that all")
_GOODBYE_RE = re.compile(
    r"\b(?:good ?bye|bye|have a (?:great|good|nice|wonderful) (?:day|night|evening)|take care)\b"
    r"|\b(?:connecting|transferring|putting) you (?:through|now|to)\b",
    re.I,
)
_GOODBYE = _Needs(_GOODBYE_RE, "bye", "have a", "take care", "you")
_CONFIRMS_RE = re.compile(
    r"\b(?:you're all set|all set|is confirmed|been (?:booked|scheduled|cancell?ed|moved|"
    r"rescheduled|submitted|created)|i've (?:booked|scheduled|cancell?ed|moved|rescheduled|"
    r"submitted|created|logged|passed)|done[:.,])",
    re.I,
)
_CONFIRMS = _Needs(_CONFIRMS_RE, "all set", "is confirmed", "been ", "i've ", "done")
_SENTENCE = re.compile(r"[^.!?]*[.!?]?")
_STRIP = ".,?!;:\"'()"
GIVE_UP = "Never mind, I'll call back later. Bye."
NOT_UNDERSTOOD = "Sorry, what do you need from me?"
YES = "Yes, that's right."
YES_PLEASE = "Yes, please."
SMALL_TALK_REPLY = "Good, thanks."
# How closely an offered choice must match the caller's goal (slots.fuzzy_phrase_score).
OPTION_MATCH = 0.8
# After this many replies it could not follow in a row, the caller gives up.
MAX_NOT_UNDERSTOOD = 2

# What people hear as "that's a question for me": a sentence ending in "?", or a request.
_REQUEST_RE = re.compile(
    r"\b(?:please|i'll (?:just )?need|i need|tell me|give me|let me (?:get|have|grab)"
    r"|let's (?:get|start)|go ahead and)\b", re.I)
_REQUEST = _Needs(_REQUEST_RE, "please", "need", "tell me", "give me", "let me", "let's",
                  "go ahead")
_CONFIRM_Q = re.compile(
    r"\b(?:just to confirm|to confirm|confirming|make sure i have|is that (?:right|correct)"
    r"|did you say|did i get that right|have i got that right|so that's)\b|^\W*i have\b"
    r"|,\s*(?:right|correct)\?\s*$", re.I)
# An offer or a yes/no question ("Would you like me to book that?"), not a request for
# something ("Could you share ... with me?": that one wants a value it did not recognise).
_YES_NO_Q_RE = re.compile(
    r"\b(?:would you like|do you want|want me to|shall i|should i|can i go ahead|is that "
    r"(?:ok|okay|alright|fine)|does that (?:work|sound)|are you|is this|is it)\b", re.I)
_YES_NO_Q = _Needs(_YES_NO_Q_RE, "would you like", "do you want", "want me to", "shall i",
                   "should i", "can i go ahead", "is that", "does that", "are you", "is this",
                   "is it")
_SMALL_TALK_RE = re.compile(
    r"\bhow(?:'s| is| are)(?: your day| you| things| it going)|\bdoing today\b|\bweather\b",
    re.I)
_SMALL_TALK = _Needs(_SMALL_TALK_RE, "how", "doing today", "weather")
_WHAT_ABOUT_RE = re.compile(
    r"\bare you (?:calling|looking|hoping|wanting) to\b|\bcalling (?:about|for)\b"
    r"|\bhow can i help\b|\bwhat can i (?:do|help)\b|\btell me a (?:bit|little) more\b",
    re.I)
_WHAT_ABOUT = _Needs(_WHAT_ABOUT_RE, "are you", "calling", "how can i help", "what can i",
                     "tell me a")
_ANYTHING_MORE = _Needs(re.compile(r"\bwhat else\b|\banything more\b", re.I),
                        "what else", "anything more")

# Words in a question asking for a value of each slot type (a pack's slot keywords and
# label are added per slot). Longer cues win over the shorter ones they contain.
TYPE_CUES: dict[str, tuple[str, ...]] = {
    "person_name": ("name", "who am i speaking", "who's calling", "who is calling",
                    "who do i have", "speaking with"),
    # "of birth" alone: a listener that hears "what is the patient's state of birth?"
    # still knows what is asked, as a person would.
    "date_of_birth": ("date of birth", "birth date", "birthdate", "birthday", "born", "dob",
                      "of birth"),
    "date": ("what day", "which day", "what date", "which date", "the day", "a day", "a date",
             "the date", "date", "day"),
    "time": ("what time", "which time", "a time", "the time", "time", "what hour", "time of day",
             "morning or afternoon"),
    "phone": ("phone", "callback number", "call you back", "reach you", "contact number",
              "number"),
    "address": ("address", "which property", "which home", "which house", "located", "street"),
    "record_id": ("id", "listing number", "reference number", "mls"),
    "amount": ("how much", "amount", "figure", "price", "offer"),
}
# "When works for you?": a date if one is still to give, else a time.
_WHEN = re.compile(r"\bwhen\b", re.I)


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


def requests(text: str) -> list[str]:
    """The sentences of ``text`` that ask the caller something (a question or a request),
    small talk left out; all of ``text`` when none does."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    asks = [s for s in sentences
            if (s.endswith("?") or _REQUEST.search(s)) and not _SMALL_TALK.search(s)]
    if asks:
        return asks
    if any(s.endswith("?") for s in sentences):
        return []  # only small talk was asked
    return [text]


@functools.lru_cache(maxsize=4096)
def _cue_re(cue: str) -> re.Pattern[str]:
    """``cue`` as a word of its own (the packs' cues are shared by every call)."""
    return re.compile(rf"(?<![a-z]){re.escape(cue)}(?![a-z])")


def _norm(text: str) -> str:
    return " ".join(normalise_arg(text).split())


class Caller:
    """Plays one call script against an agent.

    Turns are sent at most once each, except that a slot's answer is said again (re-heard,
    see :meth:`_repeat`; or, when it was given in the opening, re-spoken) if the agent asks
    for it again, up to :func:`max_repeats` times per slot; asked once more, the caller
    says :data:`GIVE_UP` and hangs up. A question for two slots gets both answers in one
    turn. Lines that are not in the script (yes, "Good, thanks.", :data:`NOT_UNDERSTOOD`)
    are turns of kind "filler". The call also ends after the closing turn, when the agent
    says goodbye / transfers, after :data:`MAX_NOT_UNDERSTOOD` replies in a row it could
    not follow (then :data:`GIVE_UP`), or after 2x as many sends as the script has turns
    (plus 2)."""

    def __init__(self, script: CallScript, pack: Pack) -> None:
        self.script = script
        self.pack = pack
        self._sent: set[int] = set()
        self._sends = 0
        self._done = False
        self._limit = 2 * len(script.turns) + 2
        self._by_slot: dict[str, Turn] = {}
        for t in script.turns:
            if t.slot and t.kind != "partial":
                self._by_slot.setdefault(t.slot, t)
        self._closing = next((t for t in script.turns if t.kind == "closing"), None)
        self._extra = 0
        self._answered: dict[str, int] = {}
        self._lost = 0
        self._last: Turn | None = None
        self._restated = 0
        self._max_repeats = max_repeats(script.persona.style.patience)
        self._recur = recurrence(script)
        cues: list[tuple[str, str]] = []
        for name in script.slots:
            sd = pack.slots.get(name)
            if sd is None:
                continue
            words = {*TYPE_CUES.get(sd.type, ()), *(k.lower() for k in sd.keywords)}
            if sd.label:
                words.add(sd.label.lower())
            cues += [(w, name) for w in words]
        # Longest cues first: "date of birth" beats "date".
        self._cues = sorted(cues, key=lambda kv: (-len(kv[0]), kv[0], kv[1]))
        self._cue_res = {w: _cue_re(w) for w, _ in self._cues}

    @property
    def done(self) -> bool:
        return self._done

    def _send(self, turn: Turn) -> Turn | None:
        if self._sends >= self._limit:
            self._done = True
            return None
        self._sends += 1
        self._sent.add(turn.index)
        self._last = turn
        if turn.kind == "closing":
            self._done = True
        return turn

    def note_sent(self, turn: Turn) -> None:
        """Count ``turn`` as said by someone else playing this script (a frozen replay),
        so that taking over afterwards does not say it again."""
        self._sends += 1
        self._sent.add(turn.index)
        self._last = turn
        if turn.slot:
            self._answered[turn.slot] = self._answered.get(turn.slot, 0) + 1
        if turn.kind == "closing":
            self._done = True

    def first(self) -> Turn:
        """The opening turn."""
        turn = self.script.turns[0]
        self._sends += 1
        self._sent.add(turn.index)
        self._last = turn
        return turn

    def asked_slots(self, agent_text: str) -> list[str]:
        """The slots the agent's question asks for, in the order asked (longest cue wins,
        one slot per cue; "when" means the date if one is still to give, else the time)."""
        found: list[tuple[int, str]] = []
        offset = 0
        for sentence in requests(agent_text):
            low = sentence.lower()
            hits: list[tuple[int, str]] = []
            for cue, name in self._cues:
                if cue not in low:
                    continue  # the regular expression only confirms a word that is there
                for m in self._cue_res[cue].finditer(low):
                    if any(name == n for _, n in hits) or "\0" in low[m.start():m.end()]:
                        continue
                    hits.append((m.start(), name))
                    low = low[: m.start()] + "\0" * (m.end() - m.start()) + low[m.end():]
                    break
            if not hits and "when" in low and _WHEN.search(low):
                types = {self.pack.slots[n].type: n for n in self.script.slots
                         if n in self.pack.slots}
                want = ("date", "time") if "date" not in self._answered else ("time", "date")
                pick = next((types[t] for t in want if t in types), None)
                if pick is not None:
                    hits.append((0, pick))
            found += [(offset + p, n) for p, n in hits]
            offset += len(sentence) + 1
        out: list[str] = []
        for _, n in sorted(found):
            if n not in out:
                out.append(n)
        return out

    def asked_slot(self, agent_text: str) -> str | None:
        """The first slot the agent's question asks for, or None."""
        slots = self.asked_slots(agent_text)
        return slots[0] if slots else None

    def respond(self, agent_text: str) -> Turn | None:
        """The caller's next turn after ``agent_text``, or None to hang up."""
        if self._done:
            return None
        if _GOODBYE.search(agent_text):
            self._done = True
            return None
        if _ANYTHING_ELSE.search(agent_text) or _ANYTHING_MORE.search(agent_text):
            return self._closing_turn()
        cont = self._continuation()
        if cont is not None:
            return self._send(cont)
        if not agent_text.strip():
            # Nothing to read (an audio agent whose words do not travel): the script's
            # next turn as written, then its closing.
            return self._next_scripted()
        asks = requests(agent_text)
        if asks and _CONFIRM_Q.search(asks[-1]):
            reply = self._confirm_reply(asks[-1])
            if reply is not None:
                self._lost = 0
                return self._send(reply)
        slots = self.asked_slots(agent_text)
        if slots:
            self._lost = 0
            turns: list[Turn] = []
            for slot in slots:
                turn = self._answer(slot, whole=len(slots) > 1)
                if turn is None:
                    return self._give_up()
                turns.append(turn)
            return self._send(turns[0] if len(turns) == 1 else self._joined(turns))
        if asks and _CONFIRM_Q.search(asks[-1]):
            # A read-back with nothing of its own in it to check ("that's the 16th?").
            return self._send(self._improvised(YES, "answer"))
        if _CONFIRMS.search(agent_text):
            return self._closing_turn()
        if asks and self._restated < 2 and (choice := self._chosen_option(asks[-1])):
            # "Are you calling to see a property or learn a price?": a person picks one.
            self._lost = 0
            self._restated += 1
            return self._send(self._improvised(choice, "opening"))
        if asks and _WHAT_ABOUT.search(" ".join(asks)) and self._restated < 2:
            self._lost = 0
            self._restated += 1
            opening = self._repeat(self.script.turns[0], self._restated)
            return self._send(self._improvised(opening.text, "opening", opening.clean_text))
        if asks and asks[-1].endswith("?") and _YES_NO_Q.search(asks[-1]):
            self._lost = 0
            return self._send(self._improvised(YES_PLEASE))
        if _SMALL_TALK.search(agent_text):
            return self._send(self._improvised(SMALL_TALK_REPLY))
        self._lost += 1
        if self._lost > MAX_NOT_UNDERSTOOD:
            return self._give_up()
        return self._send(self._improvised(NOT_UNDERSTOOD))

    def _continuation(self) -> Turn | None:
        """The rest of a turn that was cut off (a "partial" turn right after the last one
        sent): a person finishes what they were saying."""
        last = self._last
        if last is None or last.index + 1 >= len(self.script.turns):
            return None
        nxt = self.script.turns[last.index + 1]
        if nxt.kind == "partial" and nxt.index not in self._sent and last.index in self._sent:
            return nxt
        return None

    def _answer(self, slot: str, whole: bool = False) -> Turn | None:
        """The answer for ``slot`` (a repeat when asked again), or None when asked more
        often than the persona's patience allows. A scripted answer cut off by partial
        input is sent cut off (its rest follows next) unless ``whole``."""
        said = self._answered.get(slot, 0)
        if said > self._max_repeats:
            return None
        self._answered[slot] = said + 1
        turn = self._by_slot.get(slot)
        if turn is None:
            return self._respeak(slot)
        if said:
            return self._repeat(turn, said)
        rest = self._rest_of(turn) if whole else None
        return turn if rest is None else self._joined([turn, rest])

    def _rest_of(self, turn: Turn) -> Turn | None:
        """The "partial" continuation of ``turn``, when the script split it."""
        i = turn.index + 1
        if i < len(self.script.turns) and self.script.turns[i].kind == "partial":
            return self.script.turns[i]
        return None

    def _joined(self, turns: list[Turn]) -> Turn:
        """Several answers said in one breath (one turn). Recognition edits keep their
        word positions in the joined clean text."""
        for t in turns:
            self._sent.add(t.index)
        text = " ".join(t.text for t in turns)
        clean = " ".join(t.clean_text if t.clean_text is not None else t.text for t in turns)
        edits: list[dict[str, object]] = []
        shift = 0
        for t in turns:
            for e in t.edits:
                pos = e.get("pos")
                edits.append({**e, "pos": pos + shift} if isinstance(pos, int) else dict(e))
            shift += len((t.clean_text if t.clean_text is not None else t.text).split())
        first = turns[0]
        return first.model_copy(update={
            "text": text, "clean_text": clean if any(t.clean_text for t in turns) else None,
            "edits": edits, "wer": None,
            "events": [e for t in turns for e in t.events if e.get("type") != "partial_input"],
        })

    def _said(self) -> set[str]:
        """Slots the caller has given so far (answered, or named in its opening)."""
        return set(self._answered) | {s for s in self.script.slots if s not in self._by_slot}

    def _confirm_reply(self, question: str) -> Turn | None:
        """Yes when the value read back is the caller's; "No, " and the right answer when
        it is another value of a slot it gave; None when no value of its own was read back
        (then the question is read as an ordinary one)."""
        said = self._said()
        low = _norm(question)
        wrong: str | None = None
        for name in self.script.slots:
            sd = self.pack.slots.get(name)
            if sd is None or name not in said:
                continue
            value = self.script.slots[name]
            for form in (str(value), speak(sd.type, value)):
                if _norm(form) and f" {_norm(form)} " in f" {low} ":
                    return self._improvised(YES, "answer")
            got = parse(sd.type, question, {**sd.options(), "strict": True})
            if got is None:
                continue
            if normalise_arg(got) == normalise_arg(value):
                return self._improvised(YES, "answer")
            wrong = wrong or name
        if wrong is None:
            return None
        answer = self._answer(wrong)
        if answer is None:
            return self._give_up()
        return answer.model_copy(update={
            "text": "No, " + answer.text,
            "clean_text": None if answer.clean_text is None else "No, " + answer.clean_text,
            "edits": [{**e, "pos": e["pos"] + 1} if isinstance(e.get("pos"), int) else e
                      for e in answer.edits],
        })

    def _chosen_option(self, question: str) -> str | None:
        """The caller's answer to a question that offers choices ("... X or Y or Z?") when
        one of them is what it called for (its intent's goal, allowing for recognition
        errors): "I'd like to X."; else None."""
        if " or " not in question.lower():
            return None
        intent = self.pack.intents.get(self.script.intent)
        goal = intent.goal.strip() if intent is not None else ""
        if not goal or fuzzy_phrase_score(goal, question) < OPTION_MATCH:
            return None
        return f"I'd like to {goal}."

    def _improvised(self, text: str, kind: str = "filler", clean: str | None = None) -> Turn:
        """A line that is not in the script (numbered after the script's turns)."""
        self._extra += 1
        return Turn(index=len(self.script.turns) + self._extra - 1, kind=kind,
                    text=text, clean_text=clean)

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

    def _next_scripted(self) -> Turn | None:
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
