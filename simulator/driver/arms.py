"""Arms of an interleaved A/B run: several agent endpoints (or models) in one run.

An A/B run replays every planned script once per arm. The arrival schedule has one slot per
(script, arm) call; the arms of one script take consecutive slots, in an order drawn from
the run seed for that script, so whatever drifts during the run (provider load, a warming
cache, a busy machine) reaches every arm alike and the per-script difference cancels it.
Call index ``i`` maps to script slot ``i // k`` and arm ``order(slot)[i % k]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.errors import InputError
from simulator.seeding import rng

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Arm:
    """One arm: a name for the gate (``RUN:NAME``), the endpoint and the model it calls."""

    name: str
    target: str
    model: str


def parse_arm(spec: str, *, default_target: str | None, default_model: str) -> Arm:
    """``NAME=URL[,model=M]`` or ``NAME=model=M`` (the run's ``--target``), as an :class:`Arm`.

    Raises :class:`InputError` (one line naming the spec) when the name or a key is bad.
    """
    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name):
        raise InputError(f"bad --arm {spec!r}: expected NAME=URL[,model=M] with NAME made of "
                         "letters, digits, '_', '-' or '.' (at most 40)")
    target, model = None, default_model
    for k, part in enumerate(p.strip() for p in rest.split(",")):
        key, eq, value = part.partition("=")
        if k == 0 and "://" in part:
            target = part  # a URL (its query string may hold '=')
        elif eq and key in ("model", "target"):
            if not value:
                raise InputError(f"bad --arm {spec!r}: empty {key}")
            if key == "model":
                model = value
            else:
                target = value
        else:
            raise InputError(f"bad --arm {spec!r}: unknown part {part!r} "
                             "(known: a URL first, then model=M)")
    target = target or default_target
    if not target:
        raise InputError(f"bad --arm {spec!r}: no URL, and no --target to default to")
    return Arm(name, target, model)


def check_arms(arms: tuple[Arm, ...]) -> None:
    """Raise :class:`InputError` unless there are two or more arms with distinct names."""
    if len(arms) == 1:
        raise InputError(f"one --arm ({arms[0].name}) is not an A/B run: give two or more, "
                         "or none and --target")
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"--arm names must differ: {', '.join(dup)} given twice")


def arm_order(seed: int, slot: int, k: int) -> list[int]:
    """The order the ``k`` arms take within script slot ``slot`` (a seeded permutation)."""
    order = list(range(k))
    rng(seed, "arm-order", slot).shuffle(order)
    return order


def split_index(i: int, k: int, seed: int) -> tuple[int, int]:
    """Call index ``i`` of a run with ``k`` arms -> (script slot, arm index)."""
    if k <= 1:
        return i, 0
    slot, pos = divmod(i, k)
    return slot, arm_order(seed, slot, k)[pos]
