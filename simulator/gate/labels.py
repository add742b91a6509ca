"""Short names for runs, by what differs between them, so tables need no run ids.

A run may carry a label given at run time (``callsim run --label TEXT``, stored in the
run's meta as ``label``). A run without one is named by the first of its model, agent
profile, target, noise profile and transport that tells every run in the set apart (the
target without its scheme); when none does, by its run id. Labels that still collide get
``#2``, ``#3`` in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The run meta fields tried in order for runs without a label.
FIELDS: tuple[str, ...] = ("model", "agent", "target", "profile", "transport")


def _field(meta: Mapping[str, Any], name: str) -> str | None:
    if name == "agent":
        agent = meta.get("agent_profile")
        v = agent.get("name") if isinstance(agent, Mapping) else None
    else:
        v = meta.get(name)
    if v is None or v == "":
        return None
    text = str(v)
    if name == "target":
        text = text.split("://", 1)[-1]
    return text


def run_label(meta: Mapping[str, Any]) -> str | None:
    """The label the run was given at run time (None: none given)."""
    v = meta.get("label")
    return str(v) if v not in (None, "") else None


def label_runs(metas: Sequence[Mapping[str, Any]], run_ids: Sequence[str]) -> list[str]:
    """One distinct label per run, in order (see the module docstring)."""
    if len(metas) != len(run_ids):
        raise ValueError("one meta per run id")
    tell_apart = None
    for name in FIELDS:
        values = [_field(m, name) for m in metas]
        if None not in values and len(set(values)) == len(values):
            tell_apart = name
            break
    labels = []
    for meta, rid in zip(metas, run_ids, strict=True):
        own = run_label(meta)
        derived = _field(meta, tell_apart) if tell_apart else None
        labels.append(own or derived or rid)
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    # A generated "x#2" could itself collide with a given label "x#2": fall back to run ids.
    if len(set(out)) != len(out):
        return [f"{lab} ({rid})" for lab, rid in zip(out, run_ids, strict=True)]
    return out
