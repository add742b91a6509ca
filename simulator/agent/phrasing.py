"""How the reference agent words things in ``--style varied``: the way an LLM agent talks.

Questions for a slot come from parts (an acknowledgement, a frame, a noun phrase for the
slot; or a whole question a type has of its own), sometimes two slots in one question,
sometimes with small talk; values are confirmed by question; refusals, invented records,
closings and goodbyes each have their own set of phrasings. Every choice takes a
``random.Random`` the caller seeds, so the same conversation gets the same words.

Recognition runs the other way: :func:`asked_slots` finds which slots a reply of this module
asked for (the agent is stateless and re-reads its own past turns on every request).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from simulator.personas.pack import Pack, SlotDef

ACKS = ("", "Okay. ", "Great, thank you. ", "Perfect. ", "Got it. ", "Alright. ",
        "Thanks for that. ", "Wonderful. ")

# Frames around a noun phrase ("your date of birth").
FRAMES = (
    "Could I get {np}?",
    "Can you tell me {np}?",
    "Could you let me know {np}?",
    "May I have {np}, please?",
    "Would you mind giving me {np}?",
    "Can I grab {np}?",
    "Could you share {np} with me?",
    "I'll just need {np}.",
    "Mind telling me {np}?",
    "Could you go ahead and give me {np}?",
    "Can I ask for {np}?",
)

# Yes/no slots (choices "yes" and "no"): a frame around what is being asked for.
YES_NO_FRAMES = (
    "Do we have {np}?",
    "Can we get {np}?",
    "Are you okay giving us {np}?",
    "Would you give us {np}?",
    "Would you be comfortable giving us {np}?",
    "Quick question: do we have {np}?",
    "And do we have {np}?",
    "Should I note down that we have {np}?",
    "Can I put down that we have {np}?",
    "One more thing, do we have {np}?",
)

# Noun phrases per slot type ({label}: the slot's label). A pack may give its own
# (``phrases`` on the slot), which replace these.
NOUNS: dict[str, tuple[str, ...]] = {
    "person_name": ("your full name", "your first and last name", "the name on the account"),
    "date_of_birth": ("your date of birth", "your birth date",
                      "the date of birth we have on file"),
    "date": ("the day that suits you", "a date that works for you", "the date you have in mind"),
    "time": ("a time that works for you", "the time you'd prefer", "a good time for you"),
    "phone": ("your phone number", "the best number to reach you", "a good callback number"),
    "address": ("the property address", "the address of the home", "the street address"),
    "record_id": ("the {label}", "the {label} if you have it", "the {label} you're calling about"),
    "amount": ("the {label}", "the amount you have in mind", "the figure you'd like to put in"),
    "number": ("the {label}", "the number you have in mind", "that number"),
    "choice": ("the {label}", "a quick word on the {label}", "some detail on the {label}"),
    "free_text": ("the {label}", "a few words on the {label}", "some detail on the {label}"),
}

# Whole questions of a type (no noun phrase), the kind an LLM agent improvises.
OWN: dict[str, tuple[str, ...]] = {
    "person_name": ("Who am I speaking with today?", "And who do I have the pleasure of "
                    "speaking with?", "Who's calling, please?", "What name should I put this "
                    "under?"),
    "date_of_birth": ("When were you born?", "And when's your birthday, with the year?",
                      "What's the birthday on file?"),
    "date": ("What day suits you best?", "Which day were you thinking?", "When works for you?",
             "What day should I put you down for?"),
    "time": ("What time suits you?", "Morning or afternoon, what time is best?",
             "What time should I put you down for?", "Roughly what time were you hoping for?"),
    "phone": ("What's a good number to reach you at?", "What number should we call you back "
              "on?", "Which number is on the account?"),
    "address": ("Which property are you calling about?", "Where's the home located?",
                "Which house is this about?"),
    "record_id": ("Do you happen to have the {label} handy?",
                  "Is there a {label} on the listing you saw?"),
    "amount": ("How much would you like to offer?", "What figure did you have in mind?",
               "What price are you thinking?"),
}

PAIR_FRAMES = (
    "Could I get {a} and {b}{why}?",
    "Can you give me {a} and {b}{why}?",
    "I'll need {a} and {b}{why}.",
    "May I have {a}, and also {b}{why}?",
    "Let's get {a} and {b}{why}.",
    "Could you tell me {a}, and then {b}{why}?",
)
PAIR_WHY = ("", " to pull up your file", " so I can look you up")
PAIR_TYPES = frozenset({"person_name", "date_of_birth", "date", "time", "phone", "address",
                        "record_id", "amount"})

REASK = ("Sorry, I didn't catch that. ", "I'm sorry, I missed that. ",
         "Sorry, the line cut out for a second. ", "I didn't quite get that. ",
         "Apologies, could you say that once more? ")
SMALL_TALK = ("Thanks for your patience. ", "I appreciate you calling in. ",
              "Hope your day's going well. ", "How's your day going so far? ",
              "Lovely to hear from you. ")
CONFIRM = ("Just to confirm, that's {v}?", "Let me make sure I have that right: {v}?",
           "So that's {v}, correct?", "I have {v}. Is that right?", "Did you say {v}?",
           "Okay, {v}, is that correct?")
CONFIRM_RE = re.compile(
    r"^(?:Just to confirm, that's |Let me make sure I have that right: |So that's "
    r"|I have |Did you say |Okay, ).*(?:\?|, correct\?|Is that right\?|is that correct\?)$")
ANYTHING_ELSE = ("Is there anything else I can help you with?",
                 "Can I help with anything else today?", "Is there anything else you need?",
                 "Anything else I can do for you?", "What else can I help you with today?")
GOODBYE = ("Thank you for calling. Have a great day. Goodbye!", "Take care, bye now!",
           "Thanks so much for calling. Have a good one, bye!",
           "You're welcome. Have a wonderful day, goodbye!")
DONE = ("", "Perfect. ", "All done. ", "Great news. ")
NOT_FOUND = (
    "I'm sorry, I couldn't find a record matching that {what}.",
    "Hmm, I can't find anyone under that {what}.",
    "I'm sorry, I'm not able to find an account with that {what}.",
    "Unfortunately I wasn't able to locate a record with that {what}.",
    "I've looked, and there's no record under that {what}.",
    "I'm afraid I can't pull up anything with that {what}.",
)
NOT_FOUND_NEXT = ("Please check the details and call us back during office hours.",
                  "You might want to double-check the details and give us a call back.",
                  "If you find the right details, please call us back during office hours.")
FOUND = ("Okay, I found you. ", "Great, I've got your record here. ", "There you are. ",
         "Thanks, I see your file. ")
RECHECK = ("Let me double-check that", "Just so I search correctly, let me re-verify the",
           "Let me confirm I have the right")
CLARIFY = ("Sorry, I'm not sure I understood. Are you calling to",
           "Sorry, could you tell me a bit more? Are you looking to",
           "Just so I point you the right way, are you hoping to")
GIVE_UP = ("I'm sorry, I'm having trouble hearing the {label} on this line. Please call us "
           "back when you can.", "Apologies, the {label} isn't coming through clearly. Please "
           "try calling again from a quieter spot.")


def is_yes_no(sd: SlotDef) -> bool:
    return sd.type == "choice" and set(sd.choices or {}) == {"yes", "no"}


def nouns(sd: SlotDef, slot: str) -> tuple[str, ...]:
    """The noun phrases for ``slot`` (the pack's own, else its type's)."""
    label = sd.label or slot.replace("_", " ")
    base = tuple(sd.phrases) if sd.phrases else NOUNS.get(sd.type, NOUNS["choice"])
    return tuple(n.format(label=label) for n in base)


def own(sd: SlotDef, slot: str) -> tuple[str, ...]:
    """Whole questions of the slot's type (none for choices: they depend on the slot)."""
    label = sd.label or slot.replace("_", " ")
    return tuple(q.format(label=label) for q in OWN.get(sd.type, ()))


def questions(sd: SlotDef, slot: str) -> list[str]:
    """Every single-slot question the varied agent may ask for ``slot`` (without the
    acknowledgement in front)."""
    frames = YES_NO_FRAMES if is_yes_no(sd) else FRAMES
    out = [f.format(np=n) for f in frames for n in nouns(sd, slot)]
    out += own(sd, slot)
    out.append(sd.question)
    return out


def pairable(sd: SlotDef) -> bool:
    return sd.type in PAIR_TYPES


def ask(pack: Pack, slots: Sequence[str], r: random.Random, *, again: bool = False,
        small_talk: bool = False) -> str:
    """A question for ``slots`` (one or two of them)."""
    if len(slots) == 2:
        a, b = (r.choice(nouns(pack.slots[s], s)) for s in slots)
        why = r.choice(PAIR_WHY)
        q = r.choice(PAIR_FRAMES).format(a=a, b=b, why=why)
    else:
        q = r.choice(questions(pack.slots[slots[0]], slots[0]))
    lead = r.choice(REASK) if again else r.choice(ACKS)
    if small_talk and not again:
        lead = r.choice(SMALL_TALK)
    return lead + q


def confirm(value_spoken: str, r: random.Random) -> str:
    return r.choice(CONFIRM).format(v=value_spoken)


_Index = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
_INDEXES: dict[int, tuple[Pack, _Index]] = {}


def _index(pack: Pack) -> _Index:
    """(noun phrase, slot) and (whole question, slot), longest first (cached per pack)."""
    hit = _INDEXES.get(id(pack))
    if hit is not None and hit[0] is pack:
        return hit[1]
    nps: list[tuple[str, str]] = []
    whole: list[tuple[str, str]] = []
    for name, sd in pack.slots.items():
        if is_yes_no(sd):
            whole += [(q, name) for q in questions(sd, name)]
            continue
        nps += [(n, name) for n in nouns(sd, name)]
        whole += [(q, name) for q in own(sd, name)]
        whole.append((sd.question, name))
    key = lambda kv: -len(kv[0])  # noqa: E731
    out = (tuple(sorted(nps, key=key)), tuple(sorted(whole, key=key)))
    _INDEXES[id(pack)] = (pack, out)
    return out


def asked_slots(pack: Pack, content: str, prefer: Sequence[str] = ()) -> list[str]:
    """The slots a varied reply asked for, in the order asked. Two slots may share a
    question or a noun phrase: the intent's own (``prefer``) win."""
    found: list[tuple[int, str]] = []
    text = content
    nps, whole = _index(pack)
    for phrase, _ in (*whole, *nps):
        at = text.find(phrase)
        if at < 0:
            continue
        names = [n for p, n in (*whole, *nps) if p == phrase]
        chosen = next((n for n in prefer if n in names), names[0])
        if all(n != chosen for _, n in found):
            found.append((at, chosen))
        text = text[:at] + "\0" * len(phrase) + text[at + len(phrase):]
    return [n for _, n in sorted(found)]
