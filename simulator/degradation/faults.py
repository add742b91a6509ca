"""Tool faults: a seeded per-call schedule, and the pure function that applies one fault
to a tool result.

The schedule covers the expected tool calls plus ``spare_calls`` more (retries); each
slot independently gets at most one fault. The driver / tool backend looks up the k-th
tool call of the call and calls :func:`apply_fault` with a per-(call, k) seeded rng.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from simulator.degradation.profile import FAULT_KINDS, ToolFaultSection

Z95 = 1.6448536269514722  # standard normal 95th percentile


def lognormal_latency(rng: random.Random, median_s: float, p95_s: float) -> float:
    """A latency from the log-normal with the given median and 95th percentile."""
    sigma = math.log(p95_s / median_s) / Z95 if p95_s > median_s else 0.0
    return round(median_s * math.exp(sigma * rng.gauss(0.0, 1.0)), 4)


def fault_schedule(tf: ToolFaultSection, n_expected: int, rng: random.Random
                   ) -> list[dict[str, Any]]:
    """Faults for tool calls ``0 .. n_expected + spare_calls - 1``:
    ``{"tool_call_index", "kind", "latency_s"}`` (only calls that get a fault are listed)."""
    thresholds = _thresholds(tf)
    out: list[dict[str, Any]] = []
    rnd = rng.random
    for k in range(n_expected + tf.spare_calls):
        u = rnd()
        for kind, acc in thresholds:
            if u < acc:
                latency = (tf.hang_s if kind == "timeout"
                           else lognormal_latency(rng, tf.latency.median_s, tf.latency.p95_s))
                out.append({"tool_call_index": k, "kind": kind, "latency_s": latency})
                break
    return out


def _thresholds(tf: ToolFaultSection) -> tuple[tuple[str, float], ...]:
    """(kind, cumulative rate) in FAULT_KINDS order: the same sums as adding the rates
    one by one, computed once per section (the schedule is drawn per call)."""
    cached = _THRESHOLDS.get(id(tf))
    if cached is not None and cached[0] is tf:
        return cached[1]
    rates = tf.rates()
    acc = 0.0
    out = []
    for kind in FAULT_KINDS:
        acc += rates[kind]
        out.append((kind, acc))
    if len(_THRESHOLDS) > 256:
        _THRESHOLDS.clear()
    _THRESHOLDS[id(tf)] = (tf, tuple(out))
    return tuple(out)


_THRESHOLDS: dict[int, tuple[ToolFaultSection, tuple[tuple[str, float], ...]]] = {}


def can_fault(tf: ToolFaultSection) -> bool:
    """Whether ``tf`` can inject anything (else :func:`fault_schedule` is always empty,
    whatever its rng draws)."""
    return any(rate > 0 for rate in tf.rates().values())


Status = int | Literal["timeout"]


@dataclass(frozen=True)
class FaultEffect:
    """What the agent sees for one tool call: wait ``delay_s``, then ``status`` (200, 500,
    429, or "timeout": no answer at all) with ``body`` (JSON text, maybe broken).
    ``changed`` names the field a "wrong" fault altered (``a.b.0.c``), else None."""

    delay_s: float
    status: Status
    body: str
    kind: str = "ok"
    changed: str | None = None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_WRONG_NAMES = ("Johnson", "Garcia", "Miller", "Nguyen", "Patel", "Brown", "Lee", "Davis")


def _wrong_value(v: Any, rng: random.Random) -> Any:
    """A plausible but wrong value of the same shape (date +-1..3 days, time +-30 min,
    one digit changed, a different name, a nearby number, a flipped flag)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice((-2, -1, 1, 2))
    if isinstance(v, float):
        return round(v * rng.choice((0.9, 1.1, 1.5)), 2)
    if isinstance(v, str):
        if _DATE.match(v):
            try:
                d = date.fromisoformat(v)
            except ValueError:
                return v[:-1] + ("1" if v[-1] != "1" else "2")
            return (d + timedelta(days=rng.choice((-3, -2, -1, 1, 2, 3)))).isoformat()
        m = _TIME.match(v)
        if m:
            total = (int(m.group(1)) * 60 + int(m.group(2)) + rng.choice((-60, -30, 30, 60)))
            total %= 24 * 60
            return f"{total // 60:02d}:{total % 60:02d}"
        digits = [i for i, c in enumerate(v) if c.isdigit()]
        if digits:
            i = rng.choice(digits)
            return v[:i] + str((int(v[i]) + rng.randrange(1, 10)) % 10) + v[i + 1:]
        if v[:1].isupper():
            choices = [n for n in _WRONG_NAMES if n not in v]
            parts = v.split()
            parts[-1] = rng.choice(choices)
            return " ".join(parts)
        return v + "s" if v else "unknown"
    return v


def _leaves(obj: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict):
        return [leaf for k in sorted(obj) for leaf in _leaves(obj[k], (*path, str(k)))]
    if isinstance(obj, list):
        return [leaf for i, x in enumerate(obj) for leaf in _leaves(x, (*path, str(i)))]
    return [(path, obj)] if path else []


def _set(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, list):
        i = int(head)
        return [_set(x, rest, value) if j == i else x for j, x in enumerate(obj)]
    return {k: (_set(v, rest, value) if k == head else v) for k, v in obj.items()}


_IDENTITY_KEYS = ("id", "status", "ok", "error", "type")


def apply_fault(fault: dict[str, Any] | None, result: Any, rng: random.Random) -> FaultEffect:
    """The effect of ``fault`` (a schedule entry, or None for no fault) on ``result`` (the
    tool's true JSON result). Pure given ``rng``; never mutates ``result``."""
    if fault is None:
        return FaultEffect(0.0, 200, _dumps(result))
    kind = fault.get("kind")
    delay = float(fault.get("latency_s", 0.0))
    if kind == "timeout":
        return FaultEffect(delay, "timeout", "", kind)
    if kind == "slow":
        return FaultEffect(delay, 200, _dumps(result), kind)
    if kind == "http_5xx":
        return FaultEffect(delay, 500, _dumps({"error": "internal server error"}), kind)
    if kind == "http_429":
        return FaultEffect(delay, 429, _dumps({"error": "rate limited", "retry_after_s": 1}),
                           kind)
    if kind == "malformed":
        text = _dumps(result)
        if len(text) < 3:
            text = _dumps({"result": result})
        cut = rng.randrange(1, len(text) - 1)  # always drops the closing bracket
        return FaultEffect(delay, 200, text[:cut], kind)
    if kind == "empty":
        return FaultEffect(delay, 200, "[]" if isinstance(result, list) else "{}", kind)
    if kind == "wrong":
        leaves = [(p, v) for p, v in _leaves(result)
                  if v is not None and p[-1] not in _IDENTITY_KEYS]
        if not leaves:
            return FaultEffect(delay, 200, _dumps(result), kind)
        path, value = rng.choice(leaves)
        new = _wrong_value(value, rng)
        return FaultEffect(delay, 200, _dumps(_set(result, path, new)), kind, ".".join(path))
    raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
