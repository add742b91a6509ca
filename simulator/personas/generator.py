"""The persona generator: packs + seed -> call scripts.

Pure and seeded: each call gets its own ``random.Random`` and a Faker-equivalent name
stream, both seeded from ``derive_seed(seed, pack, index)``, so output is byte-identical
across processes and PYTHONHASHSEED values, and a call does not depend on the calls before
it. The hot path (``generate_calls``) replays Faker's en_US name draws from precomputed
tables and compiles each pack once (see "Fast path" below); it gives the same bytes as the
plain Faker path, which ``generate_call(..., faker=...)`` still takes.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import string
from bisect import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import MappingProxyType
from typing import Any, Protocol

from faker import Faker

from simulator.callscript import (
    BackendRecord,
    CallScript,
    Persona,
    Style,
    ToolCall,
    Turn,
    trusted,
)
from simulator.errors import InputError
from simulator.personas.pack import IntentDef, Pack, SlotDef, ToolStep, ValueSpec
from simulator.seeding import derive_seed
from simulator.slots import REFERENCE_DATE, render

CLOSING_TEXT = "No, that's all, thank you."
_CLOSINGS = (
    "No, that's all, thank you.",
    "No, that's everything. Thanks!",
    "Nope, that's it, thank you so much.",
    "No thanks, that's all I needed.",
)
_ENVIRONMENTS = ("indoors", "car", "street", "office", "kitchen", "outdoors")

_faker: Faker | None = None


def _get_faker() -> Faker:
    # One Faker for the process: creating one is slow (~50 ms); it is re-seeded per call.
    global _faker
    if _faker is None:
        _faker = Faker("en_US")
    return _faker


def generate_value(spec: ValueSpec, r: random.Random, faker: Faker) -> Any:
    """A canonical value for ``spec`` drawn with ``r`` (and ``faker`` for names/streets)."""
    t = spec.type
    if t == "person_name":
        return f"{faker.first_name()} {faker.last_name()}"
    if t == "date_of_birth":
        start = _dt.date(1940, 1, 1).toordinal()
        end = _dt.date(2006, 12, 31).toordinal()
        return _dt.date.fromordinal(r.randint(start, end)).isoformat()
    if t == "date":
        lo, hi = spec.days_ahead
        d = REFERENCE_DATE + _dt.timedelta(days=r.randint(lo, hi))
        if d.weekday() == 6:  # closed on Sundays
            d += _dt.timedelta(days=1)
        return d.isoformat()
    if t == "time":
        slot = r.randint(0, 15)  # 09:00 .. 16:30 every 30 minutes, some quarter hours
        h, m = 9 + slot // 2, 30 * (slot % 2)
        if r.random() < 0.15:
            m += 15
        return f"{h:02d}:{m:02d}"
    if t == "phone":
        area = r.randint(201, 989)
        exch = r.randint(200, 999)
        return f"{area}{exch}{r.randint(0, 9999):04d}"
    if t == "address":
        return f"{r.randint(12, 9899)} {faker.street_name()}"
    if t in ("amount", "number"):
        assert spec.min is not None and spec.max is not None
        steps = int((spec.max - spec.min) / spec.step)
        x = spec.min + spec.step * r.randint(0, max(steps, 0))
        return int(x) if float(x).is_integer() else round(x, 2)
    if t == "record_id":
        lo = 10 ** (spec.digits - 1)
        return f"{spec.prefix}-{r.randint(lo, 10 * lo - 1)}"
    if t == "choice":
        assert spec.choices
        return r.choice(sorted(spec.choices))
    if t == "free_text":
        assert spec.examples
        return r.choice(spec.examples)
    raise ValueError(f"unknown slot type {t!r}")  # pragma: no cover - the schema forbids it


def resolve_args(
    step: ToolStep, slots: Mapping[str, Any], record: Mapping[str, Any]
) -> dict[str, Any]:
    """Tool-call arguments of ``step``: each source is a slot name or ``record.<field>``."""
    out: dict[str, Any] = {}
    for arg, src in step.args.items():
        out[arg] = record.get(src[7:]) if src.startswith("record.") else slots.get(src)
    return out


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


# --- Fast path ------------------------------------------------------------------------------
#
# Profiling (py-spy, 4,000 calls) put ~60% of generation in Faker's weighted draws (it
# rebuilds the cumulative weights of ~7,000 names on every first_name()/last_name()), the
# rest in per-call re-derivation of pack constants and pydantic validation. The fast path
# (1) replays Faker's en_US first_name / last_name / street_name draws with the cumulative
# weights computed once -- the same arithmetic as ``random.choices``, so the same names --
# (2) compiles each pack once, and (3) builds the script's models from values it has just
# made with the right types, skipping validation. A test checks it against the Faker path.

class _Names(Protocol):
    def first_name(self) -> str: ...
    def last_name(self) -> str: ...
    def street_name(self) -> str: ...


class _Pick:
    """Faker's ``random_element`` over one fixed table, replayed on a ``random.Random``."""

    __slots__ = ("cum", "hi", "items", "total")

    def __init__(self, items: Sequence[Any], weights: Sequence[float] | None) -> None:
        self.items = tuple(items)
        # random.choices(items, weights=w, k=1) == items[bisect(accumulate(w), random() *
        # total, 0, n - 1)]: the same floats, one random() -- so the same element.
        self.cum = list(accumulate(weights)) if weights is not None else None
        self.total = self.cum[-1] + 0.0 if self.cum else 0.0
        self.hi = len(self.items) - 1

    @classmethod
    def of(cls, elements: Any, weighted: bool) -> _Pick:
        if isinstance(elements, dict):  # faker: keys drawn, values are the weights
            return cls(tuple(elements), tuple(elements.values()) if weighted else None)
        return cls(tuple(elements), None)  # faker: random.choice(elements)

    def draw(self, r: random.Random) -> Any:
        if self.cum is None:
            return r.choice(self.items)
        return self.items[bisect(self.cum, r.random() * self.total, 0, self.hi)]


_TOKEN = re.compile(r"\{\{\s*(\w+)(:\s*\w+?)?\s*\}\}")  # faker.generator._re_token


@dataclass(frozen=True)
class _NameTables:
    first: _Pick
    last: _Pick
    suffix: _Pick
    street_formats: _Pick  # items: tuples of literal strings and "{{token}}" names


def _name_tables(fk: Faker) -> _NameTables | None:
    """Faker's en_US name and street tables, or None if ``fk`` draws them any other way
    (another version or locale layout): then the generator uses Faker itself."""
    from faker.providers.address import Provider as AddressBase
    from faker.providers.person import Provider as PersonBase

    try:
        if len(fk.factories) != 1:
            return None
        gen = fk.factories[0]
        person, address = gen.first_name.__self__, gen.street_name.__self__
        if (gen.first_name.__func__ is not PersonBase.first_name
                or gen.last_name.__func__ is not PersonBase.last_name
                or gen.last_name.__self__ is not person
                or gen.street_name.__func__ is not AddressBase.street_name
                or gen.street_suffix.__func__ is not AddressBase.street_suffix
                or gen.street_suffix.__self__ is not address):
            return None
        formats: list[tuple[str, ...]] = []
        for fmt in address.street_name_formats:
            parts: list[str] = []
            pos = 0
            for m in _TOKEN.finditer(fmt):
                if m.group(2) or m.group(1) not in ("first_name", "last_name", "street_suffix"):
                    return None
                parts += [fmt[pos:m.start()], "{{" + m.group(1)]
                pos = m.end()
            parts.append(fmt[pos:])
            formats.append(tuple(parts))
        return _NameTables(
            first=_Pick.of(person.first_names, person.__use_weighting__),
            last=_Pick.of(person.last_names, person.__use_weighting__),
            suffix=_Pick.of(address.street_suffixes, address.__use_weighting__),
            street_formats=_Pick(formats, None) if not isinstance(
                address.street_name_formats, dict) else _Pick(
                formats, tuple(address.street_name_formats.values())
                if address.__use_weighting__ else None),
        )
    except (AttributeError, TypeError):
        return None


class _ReplayNames:
    """Faker's name stream for one call: a ``random.Random(call_seed)`` (what
    ``faker.seed_instance(call_seed)`` makes), created on first use."""

    __slots__ = ("_r", "_seed", "_t")

    def __init__(self, tables: _NameTables, seed: int) -> None:
        self._t = tables
        self._seed = seed
        self._r: random.Random | None = None

    def _rng(self) -> random.Random:
        if self._r is None:
            self._r = random.Random(self._seed)
        return self._r

    def first_name(self) -> str:
        return str(self._t.first.draw(self._rng()))

    def last_name(self) -> str:
        return str(self._t.last.draw(self._rng()))

    def street_name(self) -> str:
        r = self._rng()
        parts = self._t.street_formats.draw(r)
        out = []
        for p in parts:
            if p[:2] != "{{":
                out.append(p)
            elif p == "{{first_name":
                out.append(str(self._t.first.draw(r)))
            elif p == "{{last_name":
                out.append(str(self._t.last.draw(r)))
            else:
                out.append(str(self._t.suffix.draw(r)))
        return "".join(out)


ValueFn = Callable[[random.Random, _Names], Any]


def _compile_value(spec: ValueSpec) -> ValueFn:
    """:func:`generate_value` for one spec with its constants computed once (same draws)."""
    t = spec.type
    if t == "person_name":
        return lambda r, n: f"{n.first_name()} {n.last_name()}"
    if t == "date_of_birth":
        start = _dt.date(1940, 1, 1).toordinal()
        end = _dt.date(2006, 12, 31).toordinal()
        return lambda r, n: _dt.date.fromordinal(r.randint(start, end)).isoformat()
    if t == "date":
        lo, hi = spec.days_ahead
        days: dict[int, str] = {}
        for k in range(lo, hi + 1) if hi - lo < 5000 else ():
            d = REFERENCE_DATE + _dt.timedelta(days=k)
            days[k] = (d + _dt.timedelta(days=1) if d.weekday() == 6 else d).isoformat()
        if not days:
            return lambda r, n: generate_value(spec, r, n)  # type: ignore[arg-type]
        return lambda r, n: days[r.randint(lo, hi)]
    if t == "time":
        def _time(r: random.Random, n: _Names) -> str:
            slot = r.randint(0, 15)
            h, m = 9 + slot // 2, 30 * (slot % 2)
            if r.random() < 0.15:
                m += 15
            return f"{h:02d}:{m:02d}"
        return _time

    if t == "phone":
        def _phone(r: random.Random, n: _Names) -> str:
            area = r.randint(201, 989)
            exch = r.randint(200, 999)
            return f"{area}{exch}{r.randint(0, 9999):04d}"
        return _phone
    if t == "address":
        return lambda r, n: f"{r.randint(12, 9899)} {n.street_name()}"
    if t == "record_id":
        lo_id = 10 ** (spec.digits - 1)
        return lambda r, n: f"{spec.prefix}-{r.randint(lo_id, 10 * lo_id - 1)}"
    if t == "choice":
        assert spec.choices
        options = sorted(spec.choices)
        return lambda r, n: r.choice(options)
    # amount, number, free_text: as generate_value (their cost is the draw itself)
    return lambda r, n: generate_value(spec, r, n)  # type: ignore[arg-type]






@dataclass(frozen=True)
class _SlotPlan:
    name: str
    sd: SlotDef
    opts: Mapping[str, Any]
    from_record: str | None
    value: ValueFn
    answers_all: tuple[str, ...]
    answers_terse: tuple[str, ...]  # the first half: terse callers favour short templates


@dataclass(frozen=True)
class _IntentPlan:
    name: str
    intent: IntentDef
    goal: str
    fields: tuple[tuple[str, ValueFn], ...]
    key_field: str
    slots: tuple[_SlotPlan, ...]
    by_slot: Mapping[str, _SlotPlan]
    openings: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...]
    name_field: str | None
    phone_field: str | None
    dob_field: str | None


@dataclass(frozen=True)
class _PackPlan:
    pack: Pack
    intents: _Pick  # items: _IntentPlan, weighted like the pack's intents


def _plan(pack: Pack) -> _PackPlan:
    cached = _PLANS.get(id(pack))
    if cached is not None and cached.pack is pack:
        return cached
    intents: list[_IntentPlan] = []
    for iname, intent in pack.intents.items():
        table = pack.tables[intent.record_table]
        first_of: dict[str, str] = {}
        for f, spec in table.fields.items():
            first_of.setdefault(spec.type, f)
        slot_plans = []
        for s in dict.fromkeys(intent.slots):
            sd = pack.slots[s]
            k = max(1, len(sd.answers) // 2)
            slot_plans.append(_SlotPlan(
                name=s, sd=sd, opts=MappingProxyType(sd.options()), from_record=sd.from_record,
                value=_compile_value(sd), answers_all=tuple(sd.answers),
                answers_terse=tuple(sd.answers[:k])))
        by_slot = {sp.name: sp for sp in slot_plans}
        intents.append(_IntentPlan(
            name=iname, intent=intent, goal=intent.goal or iname.replace("_", " "),
            fields=tuple((f, _compile_value(spec)) for f, spec in table.fields.items()),
            key_field=table.key,
            slots=tuple(by_slot[s] for s in intent.slots),
            by_slot=by_slot,
            openings=tuple((o, tuple(_fields(o)), frozenset(_fields(o)))
                           for o in intent.openings),
            name_field=first_of.get("person_name"), phone_field=first_of.get("phone"),
            dob_field=first_of.get("date_of_birth"),
        ))
    plan = _PackPlan(pack=pack, intents=_Pick(intents, [i.intent.weight for i in intents]))
    if len(_PLANS) > 64:  # packs are few; bound it for code that loads many
        _PLANS.clear()
    _PLANS[id(pack)] = plan
    return plan


_PLANS: dict[int, _PackPlan] = {}
_TABLES: list[_NameTables | None] = []  # [] until first use


def _replay_tables() -> _NameTables | None:
    if not _TABLES:
        _TABLES.append(_name_tables(Faker("en_US")))
    return _TABLES[0]


class _FakerNames:
    """The plain path: a real Faker re-seeded for the call."""

    __slots__ = ("_fk",)

    def __init__(self, fk: Faker, seed: int) -> None:
        fk.seed_instance(seed)
        self._fk = fk

    def first_name(self) -> str:
        return str(self._fk.first_name())

    def last_name(self) -> str:
        return str(self._fk.last_name())

    def street_name(self) -> str:
        return str(self._fk.street_name())


def _turn(index: int, kind: str, text: str, slot: str | None) -> Turn:
    return trusted(Turn, {
        "index": index, "kind": kind, "text": text, "slot": slot, "clean_text": None,
        "wer": None, "edits": [], "events": [], "pause_before_s": 0.0, "dtmf": None})


def _tool_call(step: ToolStep, slots: Mapping[str, Any], record: Mapping[str, Any]
               ) -> ToolCall:
    return trusted(ToolCall, {"name": step.tool,
                               "arguments": resolve_args(step, slots, record)})


def _generate(plan: _PackPlan, seed: int, index: int, faker: Faker | None) -> CallScript:
    pack = plan.pack
    call_seed = derive_seed(seed, pack.name, index)
    r = random.Random(call_seed)
    tables = _replay_tables() if faker is None else None
    names: _Names = (_ReplayNames(tables, call_seed) if tables is not None
                     else _FakerNames(faker or _get_faker(), call_seed))
    ip: _IntentPlan = plan.intents.draw(r)
    intent = ip.intent
    record = {f: fn(r, names) for f, fn in ip.fields}
    slots: dict[str, Any] = {}
    for sp in ip.slots:
        slots[sp.name] = record[sp.from_record] if sp.from_record else sp.value(r, names)
    record_exists = r.random() >= pack.missing_record_share

    verbosity = round(r.random(), 2)
    style = trusted(Style, {
        "verbosity": verbosity, "patience": round(r.random(), 2),
        "disfluency": round(r.random(), 2), "interruptiveness": round(r.random(), 2)})
    name_value = record[ip.name_field] if ip.name_field is not None else None
    persona = trusted(Persona, {
        "name": str(name_value or f"{names.first_name()} {names.last_name()}"),
        "phone": str(record[ip.phone_field]) if ip.phone_field is not None else None,
        "date_of_birth": str(record[ip.dob_field]) if ip.dob_field is not None else None,
        "email": None,
        "goal": ip.goal,
        "style": style,
        "environment": r.choice(_ENVIRONMENTS),
        "voice": {"rate_wpm": r.randint(140, 190), "gender": r.choice(("female", "male"))},
    })

    by_slot = ip.by_slot

    def spoken(slot: str) -> str:
        sp = by_slot.get(slot)
        if sp is None:  # a template field that is not one of the intent's slots
            sd = pack.slots[slot]
            return render(sd.type, slots[slot], r, sd.options())
        return render(sp.sd.type, slots[slot], r, sp.opts)

    opening_tmpl, mentioned, mentioned_set = r.choice(ip.openings)
    turns = [_turn(0, "opening",
                   opening_tmpl.format(**{m: spoken(m) for m in mentioned}), None)]
    terse = verbosity < 0.3
    for sp in ip.slots:
        if sp.name in mentioned_set:
            continue
        tmpl = r.choice(sp.answers_terse if terse else sp.answers_all)
        turns.append(_turn(len(turns), "answer", tmpl.format(value=spoken(sp.name)),
                           sp.name))
    turns.append(_turn(len(turns), "closing", r.choice(_CLOSINGS), None))

    expected = [_tool_call(intent.lookup, slots, record)]
    if record_exists and intent.action is not None:
        expected.append(_tool_call(intent.action, slots, record))
    backend = ([trusted(BackendRecord, {"table": intent.record_table,
                                         "key": str(record[ip.key_field]), "data": record})]
               if record_exists else [])
    return trusted(CallScript, {
        "schema_version": 1,
        "call_id": f"{pack.name}-{seed}-{index:06d}",
        "pack": pack.name,
        "intent": ip.name,
        "seed": call_seed,
        "persona": persona,
        "record_exists": record_exists,
        "slots": slots,
        "turns": turns,
        "expected_tool_calls": expected,
        "expected_outcome": intent.outcome if record_exists else "refused_missing_record",
        "backend_records": backend,
        "degradation": None,
    })


def generate_call(pack: Pack, seed: int, index: int, faker: Faker | None = None) -> CallScript:
    """One call script for ``pack`` (call ``index`` of a run seeded with ``seed``).

    With ``faker``, names and streets come from it (re-seeded per call); without, from the
    built-in replay of Faker's en_US tables, which gives the same values as
    ``Faker("en_US")``."""
    return _generate(_plan(pack), seed, index, faker)


def generate_calls(packs: Mapping[str, Pack], pack: str, count: int, seed: int) -> list[CallScript]:
    """``count`` call scripts from ``pack`` (a pack name, or ``"all"`` to mix every pack).

    With "all", each index picks its pack from a stable hash of (seed, index), so adding
    calls does not reshuffle earlier ones. Raises :class:`InputError` for an unknown pack
    or a negative count."""
    if count < 0:
        raise InputError(f"--count: must be >= 0, got {count}")
    names = sorted(packs)
    if pack != "all" and pack not in packs:
        raise InputError(f"--pack: unknown pack {pack!r} (known: {', '.join(names)}, all)")
    if not names:
        raise InputError("--pack: no persona packs loaded")
    plans = {n: _plan(packs[n]) for n in (names if pack == "all" else [pack])}
    out = []
    for i in range(count):
        name = pack if pack != "all" else names[derive_seed(seed, "all", i) % len(names)]
        out.append(_generate(plans[name], seed, i, None))
    return out
