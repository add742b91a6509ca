"""Conversational perturbations of a caller's turns, before the ASR pass.

Each function takes a working turn, a seeded rng and the profile section, changes the turn
and appends an event (with its timing) to ``turn.events``. A ``stats`` Counter, when
given, counts events and chances (``name`` and ``name:n``) for rate checks.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.callscript import TurnKind
from simulator.degradation.asr_noise import MONTHS, NUMBER_WORDS, ONES
from simulator.degradation.profile import ConversationSection


@dataclass(slots=True)
class WorkTurn:
    """A mutable turn inside the engine (a :class:`~simulator.callscript.Turn` outside)."""

    kind: TurnKind
    text: str
    slot: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    pause_before_s: float = 0.0
    dtmf: str | None = None


def _skipper(rng: random.Random, p: float) -> Callable[[], int]:
    """A function giving the failures before the next success of Bernoulli(p) trials
    (geometric): the same distribution as drawing every trial, with one draw per success
    instead of per trial. ``log(1 - p)`` is computed once, not per draw."""
    if p >= 1.0:
        return lambda: 0
    log_q = math.log(1.0 - p)
    rnd = rng.random
    return lambda: int(math.log(1.0 - rnd()) / log_q)


def _count(stats: Counter[str] | None, name: str, hit: bool) -> None:
    if stats is not None:
        stats[name + ":n"] += 1
        if hit:
            stats[name] += 1


# --- self-corrections ------------------------------------------------------------------------

_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_ORD = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")
_DIGITS = re.compile(r"^[\d-]{4,}$")
_HOUR = re.compile(r"^(\d{1,2})$")
_CORRECTIONS = ("{w}, no, {c}", "{w}, sorry, {c}", "{w}, I mean {c}", "{w}, no wait, {c}",
                "{w}, no, sorry, {c}")
_STRIP = ".,?!;:\"'()"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _wrong_for(core: str, nxt: str, slot_value: str, rng: random.Random) -> str | None:
    """A plausible wrong value for the slot-bearing word ``core``, or None if not one."""
    m = _TIME.match(core)
    if m:
        h = int(m.group(1))
        return f"{h % 12 + 1 if rng.random() < 0.5 else (h - 2) % 12 + 1}:{m.group(2)}"
    m = _ORD.match(core)
    if m:
        n = int(m.group(1))
        return _ordinal(n + 1 if n < 28 and (n == 1 or rng.random() < 0.5) else n - 1)
    if _DIGITS.match(core):
        pos = [i for i, c in enumerate(core) if c.isdigit()]
        i = pos[-1] if rng.random() < 0.5 else rng.choice(pos)
        return core[:i] + str((int(core[i]) + rng.randrange(1, 10)) % 10) + core[i + 1:]
    if _HOUR.match(core) and nxt.upper().strip(_STRIP) in ("AM", "PM"):
        h = int(core)
        return str(h % 12 + 1)
    lower = core.lower()
    if lower in ONES:
        return rng.choice([w for w in ONES if w != lower])
    if lower in MONTHS and not any(c.isdigit() for c in slot_value):
        return None
    if core[:1].isupper() and slot_value.lower().endswith(lower) and len(lower) > 1:
        wrong = rng.choice(_WRONG_NAMES)
        return wrong if wrong.lower() != lower else _WRONG_NAMES[0]
    return None


_WRONG_NAMES = ("Johnson", "Garcia", "Miller", "Nguyen", "Patel", "Brown", "Lee", "Davis")


def _slot_span(tokens: list[str], slot_value: str, rng: random.Random
               ) -> tuple[int, str] | None:
    """The last token of the turn that carries the slot value, with a wrong value for it."""
    digit_words = [i for i, t in enumerate(tokens) if t.strip(_STRIP).lower() in ONES]
    for i in range(len(tokens) - 1, -1, -1):
        core = tokens[i].strip(_STRIP)
        if not core or (core.lower() in NUMBER_WORDS and digit_words and i != digit_words[-1]):
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        wrong = _wrong_for(core, nxt, slot_value, rng)
        if wrong is not None:
            return i, wrong
    return None


# Whether a turn has a slot word to correct does not depend on the draws (_wrong_for
# returns None or not before it draws), so the eligibility scan may use any rng: this one,
# instead of seeding a new Random per turn.
_SCRATCH = random.Random(0)


def self_correct(t: WorkTurn, slots: dict[str, Any], conv: ConversationSection,
                 rng: random.Random, stats: Counter[str] | None) -> None:
    """Say a wrong slot value, then correct it ("the 15th, no, the 16th"). The value that
    stays is the correct one, so the script's slots and expected tool calls still hold."""
    if t.slot is None or t.slot not in slots or conv.self_correction_rate <= 0:
        return
    # Draw first: finding the slot's words is the slow part, needed only on a hit (or
    # when counting chances). The draw is independent of eligibility, so rates hold.
    hit = rng.random() < conv.self_correction_rate
    if not hit and stats is None:
        return
    tokens = t.text.split()
    # Eligibility is decided the same way for a hit and a miss (a scratch rng), so the
    # observed rate over eligible turns is the configured one; only a hit then draws the
    # wrong value from the call's own stream.
    if _slot_span(tokens, str(slots[t.slot]), _SCRATCH) is None:
        return
    _count(stats, "self_correction", hit)
    if not hit:
        return
    span = _slot_span(tokens, str(slots[t.slot]), rng)
    if span is None:
        return
    i, wrong = span
    tok = tokens[i]
    core = tok.strip(_STRIP)
    lead = tok[: len(tok) - len(tok.lstrip(_STRIP))]
    trail = tok[len(lead) + len(core):]
    phrase = rng.choice(_CORRECTIONS).format(w=wrong, c=core)
    tokens[i] = lead + phrase + trail
    t.text = " ".join(tokens)
    t.events.append({"type": "self_correction", "slot": t.slot, "wrong": wrong,
                     "correct": core})


# --- disfluencies ---------------------------------------------------------------------------

_FILLERS = ("um", "uh", "um", "uh", "like", "you know")


def disfluencies(t: WorkTurn, conv: ConversationSection, rng: random.Random,
                 stats: Counter[str] | None) -> None:
    """Before each word, with probability rate/100: a filler or a repeated word."""
    p = conv.disfluency_per_100_words / 100.0
    if p <= 0:
        return
    tokens = t.text.split()
    n = len(tokens)
    out: list[str] = []
    inserted: list[dict[str, Any]] = []
    # Jump from one insertion to the next (geometric gaps) and copy the words in between
    # as slices: the turn is rebuilt only if something is inserted.
    skip = _skipper(rng, p)
    rnd = rng.random
    nxt = skip()
    copied = 0
    while nxt < n:
        tok = tokens[nxt]
        core = tok.strip(_STRIP)
        # A third are repeated words ("my, my name"), the rest fillers ("um,").
        filler = core if core and rnd() < 0.3 else rng.choice(_FILLERS)
        out += tokens[copied:nxt]
        out.append(filler + ",")
        inserted.append({"pos": nxt, "text": filler})
        copied = nxt
        nxt += 1 + skip()
    out += tokens[copied:]
    if stats is not None:
        stats["disfluency:n"] += n
        stats["disfluency"] += len(inserted)
    if inserted:
        t.text = " ".join(out)
        t.events.append({"type": "disfluency", "inserted": inserted})


# --- partial input, pauses, barge-in, backchannels, DTMF ------------------------------------

def partial_input(t: WorkTurn, conv: ConversationSection, rng: random.Random,
                  stats: Counter[str] | None) -> WorkTurn | None:
    """Endpointing fires early: cut ``t`` mid-sentence; return the rest as a new turn
    (kind "partial", sent right after), or None."""
    tokens = t.text.split()
    if len(tokens) < 4 or conv.partial_input_rate <= 0:
        return None
    hit = rng.random() < conv.partial_input_rate
    _count(stats, "partial_input", hit)
    if not hit:
        return None
    cut = rng.randrange(max(1, len(tokens) // 3), max(2, (2 * len(tokens)) // 3 + 1))
    t.text = " ".join(tokens[:cut])
    rest = WorkTurn(kind="partial", text=" ".join(tokens[cut:]), slot=t.slot)
    gap = round(rng.uniform(0.05, 0.4), 3)
    rest.pause_before_s = gap
    t.events.append({"type": "partial_input", "cut_at_word": cut, "rest_after_s": gap})
    return rest


def pauses(t: WorkTurn, conv: ConversationSection, rng: random.Random,
           stats: Counter[str] | None) -> None:
    """A long silence (4-10 s) or, failing that, a hesitation (0.3-2.0 s) before ``t``."""
    if conv.long_silence.rate > 0:
        hit = rng.random() < conv.long_silence.rate
        _count(stats, "long_silence", hit)
        if hit:
            d = round(rng.uniform(*conv.long_silence.range_s), 3)
            t.pause_before_s = round(t.pause_before_s + d, 3)
            t.events.append({"type": "long_silence", "duration_s": d})
            return
    if conv.hesitation.rate > 0:
        hit = rng.random() < conv.hesitation.rate
        _count(stats, "hesitation", hit)
        if hit:
            d = round(rng.uniform(*conv.hesitation.range_s), 3)
            t.pause_before_s = round(t.pause_before_s + d, 3)
            t.events.append({"type": "hesitation", "duration_s": d})


_BARGE_TEXTS = (
    "Sorry, wait, can I ask something?", "Hang on, hang on.", "No, sorry, that's not right.",
    "Wait, what was that?", "Actually, hold on a second.", "Sorry, can you repeat that?",
    "Okay, okay, got it.", "Hold on, let me grab a pen.",
)


def barge_in(t: WorkTurn, conv: ConversationSection, rng: random.Random,
             stats: Counter[str] | None) -> None:
    """Plan an interruption of the agent's reply to ``t``. The driver starts it at
    ``onset_min_s + onset_frac * (min(reply - reply_margin_s, onset_max_s) - onset_min_s)``
    seconds into the reply (``onset_s`` is that for a long reply)."""
    b = conv.barge_in
    if b.rate <= 0:
        return
    hit = rng.random() < b.rate
    _count(stats, "barge_in", hit)
    if not hit:
        return
    frac = round(rng.random(), 4)
    t.events.append({
        "type": "barge_in",
        "onset_s": round(b.onset_min_s + frac * (b.onset_max_s - b.onset_min_s), 3),
        "onset_frac": frac, "onset_min_s": b.onset_min_s, "onset_max_s": b.onset_max_s,
        "reply_margin_s": b.reply_margin_s,
        "duration_s": round(rng.uniform(*b.duration_s), 3),
        "text": rng.choice(_BARGE_TEXTS),
    })


_BACKCHANNELS = ("mm-hmm", "uh-huh", "okay", "yeah", "right", "mm")


def backchannels(t: WorkTurn, conv: ConversationSection, rng: random.Random,
                 stats: Counter[str] | None) -> None:
    """"mm-hmm" while the agent replies: each second after ``after_s`` has a
    ``rate_per_s`` chance; the driver fires those that fall inside the actual reply."""
    bc = conv.backchannel
    if bc.rate_per_s <= 0:
        return
    seconds = int(bc.horizon_s - bc.after_s + 1e-9)
    if stats is not None:
        stats["backchannel:n"] += max(0, seconds)
    skip = _skipper(rng, bc.rate_per_s)
    rnd = rng.random
    after = bc.after_s
    events = t.events
    k = skip()
    while k < seconds:
        if stats is not None:
            stats["backchannel"] += 1
        events.append({"type": "backchannel", "at_s": round(after + k + rnd(), 3),
                       "text": rng.choice(_BACKCHANNELS)})
        k += 1 + skip()


_DTMF_SLOTS = re.compile(r"phone|number|_id$|^id$|account|member|pin|zip|code")


def dtmf(t: WorkTurn, slots: dict[str, Any], conv: ConversationSection,
         rng: random.Random, stats: Counter[str] | None) -> None:
    """The caller keys a phone number or ID on the keypad (``turn.dtmf``); the text stays,
    so a text-only transport still has the digits."""
    if conv.dtmf_rate <= 0 or t.slot is None or not _DTMF_SLOTS.search(t.slot):
        return
    digits = "".join(c for c in str(slots.get(t.slot, "")) if c.isdigit())
    if len(digits) < 3:
        return
    hit = rng.random() < conv.dtmf_rate
    _count(stats, "dtmf", hit)
    if hit:
        t.dtmf = digits + "#"
        t.events.append({"type": "dtmf", "digits": t.dtmf, "tone_ms": 100, "gap_ms": 80})
