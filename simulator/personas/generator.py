"""The persona generator: packs + seed -> call scripts.

Pure and seeded: each call gets its own ``random.Random`` and a re-seeded (shared) Faker
from ``derive_seed(seed, pack, index)``, so output is byte-identical across processes and
PYTHONHASHSEED values, and a call does not depend on the calls before it.
"""

from __future__ import annotations

import datetime as _dt
import random
import string
from collections.abc import Mapping
from typing import Any

from faker import Faker

from simulator.callscript import BackendRecord, CallScript, Persona, Style, ToolCall, Turn
from simulator.errors import InputError
from simulator.personas.pack import IntentDef, Pack, ToolStep, ValueSpec
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


def _weighted_intent(pack: Pack, r: random.Random) -> tuple[str, IntentDef]:
    names = list(pack.intents)
    weights = [pack.intents[n].weight for n in names]
    name = r.choices(names, weights=weights)[0]
    return name, pack.intents[name]


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def generate_call(pack: Pack, seed: int, index: int, faker: Faker | None = None) -> CallScript:
    """One call script for ``pack`` (call ``index`` of a run seeded with ``seed``)."""
    call_seed = derive_seed(seed, pack.name, index)
    r = random.Random(call_seed)
    fk = faker or _get_faker()
    fk.seed_instance(call_seed)
    intent_name, intent = _weighted_intent(pack, r)
    table = pack.tables[intent.record_table]
    record = {f: generate_value(spec, r, fk) for f, spec in table.fields.items()}
    slots: dict[str, Any] = {}
    for s in intent.slots:
        sd = pack.slots[s]
        slots[s] = record[sd.from_record] if sd.from_record else generate_value(sd, r, fk)
    record_exists = r.random() >= pack.missing_record_share

    style = Style(
        verbosity=round(r.random(), 2),
        patience=round(r.random(), 2),
        disfluency=round(r.random(), 2),
        interruptiveness=round(r.random(), 2),
    )
    by_type: dict[str, Any] = {}
    for f, spec in table.fields.items():
        by_type.setdefault(spec.type, record[f])
    persona = Persona(
        name=str(by_type.get("person_name") or f"{fk.first_name()} {fk.last_name()}"),
        phone=str(by_type["phone"]) if "phone" in by_type else None,
        date_of_birth=str(by_type["date_of_birth"]) if "date_of_birth" in by_type else None,
        goal=intent.goal or intent_name.replace("_", " "),
        style=style,
        environment=r.choice(_ENVIRONMENTS),
        voice={"rate_wpm": r.randint(140, 190), "gender": r.choice(("female", "male"))},
    )

    def spoken(slot: str) -> str:
        sd = pack.slots[slot]
        return render(sd.type, slots[slot], r, sd.options())

    opening_tmpl = r.choice(intent.openings)
    mentioned = _fields(opening_tmpl)
    turns = [
        Turn(index=0, kind="opening", text=opening_tmpl.format(**{m: spoken(m) for m in mentioned}))
    ]
    for s in intent.slots:
        if s in mentioned:
            continue
        answers = pack.slots[s].answers
        # Terse callers favour the first (shortest) templates.
        k = len(answers) if style.verbosity >= 0.3 else max(1, len(answers) // 2)
        text = r.choice(answers[:k]).format(value=spoken(s))
        turns.append(Turn(index=len(turns), kind="answer", text=text, slot=s))
    turns.append(Turn(index=len(turns), kind="closing", text=r.choice(_CLOSINGS)))

    expected = [
        ToolCall(name=intent.lookup.tool, arguments=resolve_args(intent.lookup, slots, record))
    ]
    if record_exists and intent.action is not None:
        expected.append(
            ToolCall(name=intent.action.tool, arguments=resolve_args(intent.action, slots, record))
        )
    outcome = intent.outcome if record_exists else "refused_missing_record"
    backend = (
        [BackendRecord(table=intent.record_table, key=str(record[table.key]), data=record)]
        if record_exists
        else []
    )
    return CallScript(
        call_id=f"{pack.name}-{seed}-{index:06d}",
        pack=pack.name,
        intent=intent_name,
        seed=call_seed,
        persona=persona,
        record_exists=record_exists,
        slots=slots,
        turns=turns,
        expected_tool_calls=expected,
        expected_outcome=outcome,
        backend_records=backend,
    )


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
    faker = _get_faker()
    out = []
    for i in range(count):
        name = pack if pack != "all" else names[derive_seed(seed, "all", i) % len(names)]
        out.append(generate_call(packs[name], seed, i, faker))
    return out
