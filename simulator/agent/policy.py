"""The reference agent's brain: a pure function from a Chat Completions request (messages +
tools) to the next assistant turn (text or tool calls).

Stateless: everything is re-derived from the full message list on every request: the pack
(from the tool names), the intent (keyword scoring), the slots (parsers of
:mod:`simulator.slots`, an answer going to the slot the agent last asked for), and tool
results. Its "bad candidate" knobs (fabrication, argument errors) draw from a seed and a
sha256 of the conversation, so the same conversation always gets the same reply.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.agent import phrasing
from simulator.errors import InputError
from simulator.personas.generator import _get_faker, generate_value
from simulator.personas.pack import IntentDef, Pack, ToolStep
from simulator.slots import fuzzy_phrase_score, parse, speak

ANYTHING_ELSE = "Is there anything else I can help you with?"
CLARIFY = "Sorry, I'm not sure I understood. Are you calling to"
# Asks for one slot before the agent settles for its best guess of the answers so far.
MAX_ASKS = 2
# After a lookup finds nothing, the agent reads the identity details back once ("let me
# double-check") before it tells the caller it cannot find the record.
RECHECK = "Let me double-check that"
GOODBYE = "Thank you for calling. Have a great day. Goodbye!"

# Types worth extracting from an utterance that did not answer a question: the rest
# (free text, bare numbers) would grab words that were never meant as that slot.
_OPPORTUNISTIC = {
    "person_name",
    "date_of_birth",
    "date",
    "time",
    "phone",
    "address",
    "record_id",
    "choice",
    "amount",
}


STYLES = ("template", "varied")
# Varied style: the chance of asking two slots at once, of confirming a value just heard,
# and of small talk before the first question.
PAIR_RATE = 0.35
CONFIRM_RATE = 0.3
SMALL_TALK_RATE = 0.3
# Slot types a varied agent reads back for confirmation (not choices: "lab work, right?").
_CONFIRMABLE = {"person_name", "date_of_birth", "date", "time", "phone", "address",
                "record_id", "amount"}
_NO = re.compile(r"^\W*(?:no|nope|nah|not quite|actually|that's not|wrong)\b", re.I)


@dataclass(frozen=True)
class AgentConfig:
    """Knobs of the reference agent.

    ``ttft_ms``: delay from request receipt to the first content (or tool-call) chunk.
    ``token_ms``: delay between streamed tokens. ``fabricate_rate``: share of missing-record
    lookups answered with an invented record detail instead of a refusal.
    ``arg_error_rate``: share of tool calls with one argument corrupted.
    ``arg_error_packs``: (pack, rate) pairs that replace ``arg_error_rate`` on those packs'
    calls (an agent that is sloppy on one vertical only). ``seed``: makes those draws
    reproducible. ``style``: "template" asks each slot with the pack's one question;
    "varied" talks like an LLM agent (:mod:`simulator.agent.phrasing`): many phrasings, two
    slots in one question, confirmations by question, small talk."""

    ttft_ms: float = 0.0
    token_ms: float = 0.0
    fabricate_rate: float = 0.0
    arg_error_rate: float = 0.0
    seed: int = 0
    model: str = "callsim-reference"
    arg_error_packs: tuple[tuple[str, float], ...] = ()
    style: str = "template"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InputError(f"--style: unknown style {self.style!r} (known: "
                             f"{', '.join(STYLES)})")
        for name in ("ttft_ms", "token_ms"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')}: must be >= 0")
        for name in ("fabricate_rate", "arg_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"--{name.replace('_', '-')}: must be between 0 and 1")
        for pack, rate in self.arg_error_packs:
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"--arg-error-rate {pack}={rate:g}: must be between 0 and 1")

    def arg_error_for(self, pack: str) -> float:
        """The argument-error rate on calls of ``pack``."""
        return dict(self.arg_error_packs).get(pack, self.arg_error_rate)


@dataclass(frozen=True)
class AgentToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class Reply:
    content: str = ""
    tool_calls: tuple[AgentToolCall, ...] = ()


@dataclass
class _State:
    intent: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    last_asked: str | None = None
    last_asked_all: list[str] = field(default_factory=list)
    just_answered: list[str] = field(default_factory=list)
    confirming: str | None = None
    confirm_asked: set[str] = field(default_factory=set)
    asked_count: dict[str, int] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    clarified: int = 0
    rechecked: set[str] = field(default_factory=set)
    recheck_done: bool = False
    heard_at_lookup: dict[str, Any] | None = None
    awaiting_close: bool = False
    closed_reply: str | None = None
    lookup: dict[str, Any] | None = None
    lookup_calls: int = 0
    action: dict[str, Any] | None = None
    action_calls: int = 0
    user_turns: int = 0


def conversation_digest(messages: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the conversation: the agent's randomness is keyed on it."""
    blob = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def identify_pack(
    tools: Sequence[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]],
    packs: Mapping[str, Pack],
) -> Pack | None:
    """The pack whose tool names best overlap the request's tools (ties: the system prompt)."""
    names = set()
    for t in tools or ():
        fn = t.get("function") if isinstance(t, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    best: tuple[int, int, int] | None = None
    best_pack = None
    for pname in sorted(packs):
        p = packs[pname]
        overlap = len(p.tool_names() & names)
        score = (
            overlap,
            1 if system.strip() == p.system_prompt.strip() else 0,
            -len(p.tool_names() ^ names),
        )
        if (overlap or score[1]) and (best is None or score > best):
            best, best_pack = score, p
    return best_pack


def _text(msg: Mapping[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _kw_in(kw: str, text: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(kw.lower())}(?![a-z])", text) is not None


# A keyword heard through recognition errors ("insidethe", "vi ewing", "reshedule") counts
# for less than one heard cleanly, and only when it is this close.
_FUZZY_KW_MIN = 0.8


# How closely a caller must say an intent's goal for it to count (slots.fuzzy_phrase_score).
_GOAL_MIN = 0.9


def intent_scores(pack: Pack, text: str) -> dict[str, float]:
    """Each intent's evidence in ``text``: matched keyword words summed (a keyword found
    only fuzzily counts its match score times 0.75), plus one per value of the intent's
    own choice slots named ("a color", "lockout": callers name the thing, not the action),
    plus the words of the intent's goal when it is said (near) word for word: the agent's
    own clarifying question offers the goals ("Are you calling to see a property in person
    or ...?"), and "I'd like to see a property in person" answers it.
    """
    low = text.lower()
    out: dict[str, float] = {}
    for name, intent in pack.intents.items():
        score = 0.0
        if intent.goal and fuzzy_phrase_score(intent.goal, text) >= _GOAL_MIN:
            score += len(intent.goal.split())
        for kw in intent.keywords:
            n = len(kw.split())
            if _kw_in(kw, low):
                score += n
                continue
            fz = fuzzy_phrase_score(kw, text)
            if fz >= _FUZZY_KW_MIN:
                score += 0.75 * n * fz
        for s in intent.slots:
            sd = pack.slots[s]
            if (
                sd.type == "choice"
                and sd.volunteered
                and parse(sd.type, text, {**sd.options(), "strict": True})
            ):
                score += 1
        out[name] = score
    return out


def score_intents(pack: Pack, text: str) -> str | None:
    """The intent whose keywords best match ``text`` (see :func:`intent_scores`); None
    when nothing matched."""
    best: tuple[float, str] | None = None
    for name, score in intent_scores(pack, text).items():
        if score > 0 and (best is None or score > best[0]):
            best = (score, name)
    return best[1] if best else None


def best_intent_guess(pack: Pack, texts: Sequence[str]) -> str:
    """After a clarifying question went unanswered: the intent with the most evidence in
    everything said so far (keywords, then slot values only it asks for), else the most
    common one (highest weight)."""
    joined = " ".join(texts)
    scores = intent_scores(pack, joined)
    evidence: dict[str, float] = {}
    for name, intent in pack.intents.items():
        ev = 0.0
        for s in intent.slots:
            sd = pack.slots[s]
            if sd.type in _OPPORTUNISTIC and any(
                parse(sd.type, t, {**sd.options(), "strict": True}) for t in texts
            ):
                ev += 1.0 / len(intent.slots)
        evidence[name] = ev
    order = list(pack.intents)
    return max(
        order,
        key=lambda n: (scores[n], evidence[n], pack.intents[n].weight, -order.index(n)),
    )


def _asked_slot(pack: Pack, content: str, prefer: Sequence[str] = ()) -> str | None:
    """The slot whose question the agent asked in ``content`` (the intent's slots first:
    two slots may share a question)."""
    for name in [*prefer, *pack.slots]:
        sd = pack.slots.get(name)
        if sd is not None and sd.question and sd.question in content:
            return name
    return None


def _parse_tool_result(content: str) -> dict[str, Any]:
    try:
        obj = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return {"error": "malformed", "message": "tool result was not JSON"}
    if not isinstance(obj, dict):
        return {"error": "malformed", "message": "tool result was not an object"}
    return obj


def _volunteered_slots(
    pack: Pack, intent: IntentDef, text: str, slots: dict[str, Any], skip: str | None
) -> None:
    for s in intent.slots:
        sd = pack.slots[s]
        if s in slots or s == skip or sd.type not in _OPPORTUNISTIC or not sd.volunteered:
            continue
        val = parse(sd.type, text, {**sd.options(), "strict": True})
        if val is not None:
            slots[s] = val


def _replay(pack: Pack, messages: Sequence[Mapping[str, Any]], varied: bool = False) -> _State:
    st = _State()
    call_names: dict[str, str] = {}
    pending: list[str] = []
    for msg in messages:
        role = msg.get("role")
        if role == "assistant":
            content = _text(msg)
            cur = pack.intents.get(st.intent or "")
            prefer = cur.slots if cur else ()
            if varied:
                asked_now = phrasing.asked_slots(pack, content, prefer)
            else:
                one = _asked_slot(pack, content, prefer)
                asked_now = [one] if one else []
            st.last_asked = asked_now[0] if asked_now else None
            st.last_asked_all = asked_now
            for a in asked_now:
                st.asked_count[a] = st.asked_count.get(a, 0) + 1
                if st.lookup is not None and not st.lookup.get("found"):
                    st.rechecked.add(a)
            st.confirming = None
            if varied and not asked_now and content and phrasing.CONFIRM_RE.match(content):
                st.confirming = next((s for s in st.just_answered
                                      if pack.slots[s].type in _CONFIRMABLE), None)
                if st.confirming:
                    st.confirm_asked.add(st.confirming)
            if (ANYTHING_ELSE in content or "anything else" in content.lower()
                    or (varied and any(a in content for a in phrasing.ANYTHING_ELSE))):
                st.awaiting_close = True
            if CLARIFY in content or (varied and any(c in content for c in phrasing.CLARIFY)):
                st.clarified += 1
            for tc in msg.get("tool_calls") or ():
                fn = tc.get("function") or {}
                call_names[str(tc.get("id"))] = str(fn.get("name"))
                intent = pack.intents.get(st.intent or "")
                if intent and fn.get("name") == intent.lookup.tool:
                    st.lookup_calls += 1
                    st.heard_at_lookup = dict(st.slots)
                    if st.rechecked:
                        st.recheck_done = True
                elif intent and intent.action and fn.get("name") == intent.action.tool:
                    st.action_calls += 1
        elif role == "tool":
            name = call_names.get(str(msg.get("tool_call_id")), str(msg.get("name") or ""))
            result = _parse_tool_result(_text(msg))
            intent = pack.intents.get(st.intent or "")
            if intent and name == intent.lookup.tool:
                st.lookup = result
            elif intent and intent.action and name == intent.action.tool:
                st.action = result
        elif role == "user":
            text = _text(msg)
            st.user_turns += 1
            if st.awaiting_close:
                st.closed_reply = text
                continue
            if st.confirming is not None:
                # The caller's answer to "Just to confirm, that's the 16th?": a "no" with a
                # value corrects it, a bare "no" drops it (asked again), else it stands.
                slot, st.confirming = st.confirming, None
                st.just_answered = []
                if _NO.search(text):
                    sd = pack.slots[slot]
                    val = parse(sd.type, text, sd.options())
                    if val is not None:
                        st.slots[slot] = val
                    else:
                        st.slots.pop(slot, None)
                st.last_asked, st.last_asked_all = None, []
                continue
            earlier: list[str] = []
            if st.intent is None:
                st.intent = score_intents(pack, text)
                if st.intent is None and st.clarified:
                    # Asked once what the call is about and still unclear: go with the
                    # likeliest reading rather than asking forever.
                    st.intent = best_intent_guess(pack, [*pending, text])
                earlier, pending = pending, []
            intent = pack.intents.get(st.intent or "")
            if intent is None:
                pending.append(text)
                st.last_asked = None
                continue
            asked = st.last_asked if st.last_asked in intent.slots else None
            st.just_answered = []
            for a in st.last_asked_all if asked else ():
                if a not in intent.slots:
                    continue
                sd = pack.slots[a]
                st.answers.setdefault(a, []).append(text)
                val = parse(sd.type, text, sd.options())
                if val is not None:
                    st.slots[a] = val
                    st.just_answered.append(a)
            # Utterances that answered no question (the opening, or what was said before
            # the intent was clear) may still carry slot values.
            volunteered = [*earlier, text] if asked is None or st.user_turns == 1 else earlier
            for said in volunteered:
                _volunteered_slots(pack, intent, said, st.slots, skip=asked)
            st.last_asked, st.last_asked_all = None, []
    return st


def _render(
    template: str,
    pack: Pack,
    intent: IntentDef,
    slots: Mapping[str, Any],
    record: Mapping[str, Any],
) -> str:
    table = pack.tables[intent.record_table]

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key.startswith("record."):
            f = key[7:]
            spec = table.fields.get(f)
            return speak(spec.type, record.get(f)) if spec else str(record.get(f, ""))
        sd = pack.slots.get(key)
        if sd is not None and key in slots:
            return speak(sd.type, slots[key])
        spec = table.fields.get(key)
        if spec is not None and key in record:
            return speak(spec.type, record[key])
        return m.group(0)

    return re.sub(r"\{([a-z_][a-z0-9_.]*)\}", sub, template)


def _resolve(step: ToolStep, slots: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg, src in step.args.items():
        out[arg] = record.get(src[7:]) if src.startswith("record.") else slots.get(src)
    return out


def _corrupt(args: dict[str, Any], r: random.Random) -> dict[str, Any]:
    """Change one argument the way a sloppy model would: a digit off, a letter dropped."""
    keys = sorted(k for k, v in args.items() if v not in (None, ""))
    if not keys:
        return args
    k = r.choice(keys)
    v = str(args[k])
    digits = [i for i, c in enumerate(v) if c.isdigit()]
    if digits:
        i = digits[-1] if k not in ("date", "new_date", "date_of_birth") else digits[-1]
        v = v[:i] + str((int(v[i]) + 1) % 10) + v[i + 1 :]
    else:
        v = v[:-1] if len(v) > 1 else v + "x"
    return {**args, k: v}


class _Decider:
    def __init__(
        self, pack: Pack, messages: Sequence[Mapping[str, Any]], config: AgentConfig
    ) -> None:
        self.pack = pack
        self.messages = messages
        self.config = config
        self.digest = conversation_digest(messages)
        self.varied = config.style == "varied"

    def pick(self, label: str, template: str, options: Sequence[str]) -> str:
        """``template`` in the template style, else one of ``options`` (seeded)."""
        return self.rng(label).choice(options) if self.varied else template

    def rng(self, label: str) -> random.Random:
        seed = int(
            hashlib.sha256(f"{self.config.seed}\x1f{self.digest}\x1f{label}".encode()).hexdigest()[
                :16
            ],
            16,
        )
        return random.Random(seed)

    def tool_call(self, name: str, args: dict[str, Any]) -> Reply:
        rate = self.config.arg_error_for(self.pack.name)
        if rate > 0 and self.rng("argerr").random() < rate:
            args = _corrupt(args, self.rng("argerr-which"))
        call_id = "call_" + hashlib.sha256(f"{self.digest}:{name}".encode()).hexdigest()[:24]
        return Reply(
            tool_calls=(AgentToolCall(call_id, name, json.dumps(args, separators=(", ", ": "))),)
        )

    def ask(self, st: _State, slot: str, todo: Sequence[str] = ()) -> Reply | None:
        """The question for a missing ``slot``; after :data:`MAX_ASKS` asks, the best
        guess from the answers so far goes into ``st.slots`` instead and None is returned
        (or, with nothing to guess from, a polite give-up). ``todo``: the slots still
        missing after it (a varied agent may ask for the next one in the same breath)."""
        sd = self.pack.slots[slot]
        asked = st.asked_count.get(slot, 0)
        if asked >= MAX_ASKS:
            opts = {**sd.options(), "guess": True}
            for text in reversed(st.answers.get(slot, [])):
                val = parse(sd.type, text, opts)
                if val is not None:
                    st.slots[slot] = val
                    return None
            label = sd.label or slot.replace("_", " ")
            sorry = self.pick(
                "giveup",
                "I'm sorry, I'm having trouble hearing the {label} on this line. "
                "Please call us back when you can.", phrasing.GIVE_UP).format(label=label)
            closer = self.pick("else", ANYTHING_ELSE, phrasing.ANYTHING_ELSE)
            return Reply(content=f"{sorry} {closer}")
        if self.varied:
            return Reply(content=self.varied_question(st, slot, todo, again=bool(asked)))
        q = sd.question
        if asked:
            return Reply(content=f"Sorry, I didn't catch that. {q}")
        return Reply(content=q)

    def varied_question(self, st: _State, slot: str, todo: Sequence[str], again: bool) -> str:
        pack, r = self.pack, self.rng("ask")
        slots = [slot]
        nxt = next((s for s in todo if s != slot and s not in st.slots), None)
        if (not again and nxt is not None and not st.asked_count.get(nxt)
                and phrasing.pairable(pack.slots[slot]) and phrasing.pairable(pack.slots[nxt])
                and self.rng("pair").random() < PAIR_RATE):
            slots.append(nxt)
        talk = st.user_turns == 1 and self.rng("talk").random() < SMALL_TALK_RATE
        return phrasing.ask(pack, slots, r, again=again, small_talk=talk)

    def confirm(self, st: _State) -> Reply | None:
        """Varied style: read back a value just heard ("Just to confirm, that's ...?"), at
        most once per slot, for a share :data:`CONFIRM_RATE` of values."""
        for s in st.just_answered:
            sd = self.pack.slots[s]
            if sd.type not in _CONFIRMABLE or s in st.confirm_asked or s not in st.slots:
                continue
            if self.rng(f"confirm:{s}").random() >= CONFIRM_RATE:
                return None
            return Reply(content=phrasing.confirm(speak(sd.type, st.slots[s]),
                                                  self.rng("confirm-words")))
        return None

    def missing(self, st: _State, slots: Sequence[str]) -> Reply | None:
        """The next question for the first of ``slots`` not yet known, or None when all
        are known (possibly by best guess)."""
        for i, s in enumerate(slots):
            if s not in st.slots:
                reply = self.ask(st, s, slots[i + 1:])
                if reply is not None:
                    return reply
        return None

    def decide(self) -> Reply:
        pack = self.pack
        st = _replay(pack, self.messages, self.varied)
        if st.closed_reply is not None:
            return Reply(content=self.pick("bye", GOODBYE, phrasing.GOODBYE))
        if st.intent is None:
            options = " or ".join(
                i.goal or n.replace("_", " ") for n, i in list(pack.intents.items())[:3]
            )
            return Reply(content=f"{self.pick('clarify', CLARIFY, phrasing.CLARIFY)} {options}?")
        intent = pack.intents[st.intent]
        if self.varied and self.messages[-1].get("role") == "user":
            reply = self.confirm(st)
            if reply is not None:
                return reply
        lookup_slots = [s for s in intent.slots if s in intent.lookup.args.values()]
        if st.lookup is None:
            reply = self.missing(st, lookup_slots)
            if reply is not None:
                return reply
            return self.tool_call(intent.lookup.tool, _resolve(intent.lookup, st.slots, {}))
        if not st.lookup.get("found"):
            if st.lookup.get("error") not in (None, "not_found") and st.lookup_calls < 2:
                return self.tool_call(intent.lookup.tool, _resolve(intent.lookup, st.slots, {}))
            if st.lookup.get("error") == "not_found" and not st.recheck_done:
                # Maybe misheard: ask for the first identity detail (a name, a phone, an
                # address: the likeliest to be misheard) once more, then look again.
                for s in lookup_slots[:1]:
                    if s not in st.rechecked:
                        q = pack.slots[s].question
                        if self.varied:
                            q = phrasing.ask(pack, [s], self.rng("recheck-ask"))
                        if st.rechecked:
                            return Reply(content=q)
                        what = " and ".join(
                            dict.fromkeys(pack.slots[x].label or x for x in lookup_slots)
                        )
                        lead = self.pick("recheck", RECHECK, phrasing.RECHECK)
                        return Reply(content=f"{lead} {what}. {q}")
                args = _resolve(intent.lookup, st.slots, {})
                before = _resolve(intent.lookup, st.heard_at_lookup or {}, {})
                if st.rechecked and args != before:  # heard differently: look again
                    return self.tool_call(intent.lookup.tool, args)
            return self.not_found(st, intent)
        record = st.lookup.get("record") or {}
        if not isinstance(record, dict):
            record = {}
        closer = self.pick("else", ANYTHING_ELSE, phrasing.ANYTHING_ELSE)
        done = self.pick("done", "", phrasing.DONE)
        if intent.action is None:
            text = _render(intent.confirmation, pack, intent, st.slots, record)
            return Reply(content=f"{done}{text} {closer}")
        if st.action is None:
            reply = self.missing(st, intent.slots)
            if reply is not None:
                return reply
            return self.tool_call(intent.action.tool, _resolve(intent.action, st.slots, record))
        if st.action.get("ok") or st.action.get("status"):
            # Slots settled by best guess are not in the replayed state: guess them again
            # (same answers, same guess) so the read-back does not show "{reason}".
            for s in intent.slots:
                if s not in st.slots and st.asked_count.get(s, 0) >= MAX_ASKS:
                    self.ask(st, s)
            text = _render(intent.confirmation, pack, intent, st.slots, record)
            if intent.outcome == "transferred":
                return Reply(content=text)
            return Reply(content=f"{done}{text} {closer}")
        if st.action_calls < 2 and st.action.get("error") != "not_found":
            return self.tool_call(intent.action.tool, _resolve(intent.action, st.slots, record))
        return Reply(
            content=f"I'm sorry, I wasn't able to complete that right now. {closer}"
        )

    def not_found(self, st: _State, intent: IntentDef) -> Reply:
        pack = self.pack
        table = pack.tables[intent.record_table]
        if (
            self.config.fabricate_rate > 0
            and self.rng("fabricate").random() < self.config.fabricate_rate
        ):
            r = self.rng("fabricate-record")
            faker = _get_faker()
            faker.seed_instance(r.getrandbits(63))
            fake = {f: generate_value(spec, r, faker) for f, spec in table.fields.items()}
            summary = _render(table.summary or intent.confirmation, pack, intent, st.slots, fake)
            found = self.pick("found", "Thanks, I found your record. ", phrasing.FOUND)
            closer = self.pick("else", ANYTHING_ELSE, phrasing.ANYTHING_ELSE)
            return Reply(content=f"{found}{summary} {closer}")
        labels = [pack.slots[s].label or s.replace("_", " ") for s in intent.lookup.args.values()]
        what = " and ".join(dict.fromkeys(labels))
        sorry = self.pick("notfound", "I'm sorry, I couldn't find a record matching that {what}.",
                          phrasing.NOT_FOUND).format(what=what)
        nxt = self.pick("notfound-next",
                        "Please check the details and call us back during office hours.",
                        phrasing.NOT_FOUND_NEXT)
        closer = self.pick("else", ANYTHING_ELSE, phrasing.ANYTHING_ELSE)
        return Reply(content=f"{sorry} {nxt} {closer}")


def decide(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    packs: Mapping[str, Pack],
    config: AgentConfig,
) -> Reply:
    """The next assistant turn for a Chat Completions request."""
    pack = identify_pack(tools, messages, packs)
    if pack is None:
        return Reply(
            content="Hello! I'm sorry, I can only help with calls for the business I answer for."
        )
    if not any(m.get("role") == "user" for m in messages):
        return Reply(content=pack.greeting)
    return _Decider(pack, messages, config).decide()
