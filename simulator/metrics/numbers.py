"""The gate numbers computed from graded call outcomes.

Every number is one of two shapes, so that point estimates and bootstrap resamples share one
code path (:mod:`simulator.gate.stats`):

* a **ratio** of two per-call sums, ``sum(num) / sum(den)`` (rates, accuracy, mean cost);
* a **quantile** of per-item values, each item belonging to one call (p95 over the pooled
  turns of ok calls; p95 of an ``extra`` value).

Definitions (see docs/gate.md):

=========================  ===============================================================
p95_ttft_ms                95th percentile (inverted CDF) of the pooled per-turn ``ttft_ms``
                           of ok calls
tool_arg_accuracy          sum(arg_correct) / sum(arg_total) over all calls
strict_pass_rate           share of calls with ``strict_pass``
refusal_rate               over calls whose record does not exist: refused and not fabricated
fabrication_rate           over calls whose record does not exist: fabricated
over_refusal_rate          over calls whose record exists: refused
cost_per_session_usd       mean ``cost_usd`` over all calls (failed calls cost money too)
error_rate                 share of calls that are not ``ok``
=========================  ===============================================================

Guard metrics may also name an ``extra`` key: ``p95_<key>`` / ``p50_<key>`` / ``p99_<key>``
(quantile of the per-call value over calls that carry it), ``mean_<key>`` or plain ``<key>``
(mean over calls that carry it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.errors import GateError
from simulator.results import CallOutcome

#: Reported by :func:`gate_numbers`, in display order (the four gate numbers first).
REPORTED: tuple[str, ...] = (
    "p95_ttft_ms",
    "tool_arg_accuracy",
    "refusal_rate",
    "cost_per_session_usd",
    "strict_pass_rate",
    "fabrication_rate",
    "over_refusal_rate",
    "error_rate",
)

# Comparisons at a quantile boundary tolerate float rounding of q * total (0.95 * 100 is
# 95.00000000000001, which would otherwise skip the 95th item).
_QEPS = 1e-9


@dataclass(frozen=True, slots=True)
class Ratio:
    """``sum(num) / sum(den)`` over calls; ``num`` and ``den`` are per-call arrays."""

    num: np.ndarray
    den: np.ndarray

    def calls(self) -> int:
        return int(np.count_nonzero(self.den))


@dataclass(frozen=True, slots=True)
class Quantile:
    """The ``q`` quantile (inverted CDF) of items sorted by value; ``call`` maps item->call."""

    values: np.ndarray
    call: np.ndarray
    q: float

    def calls(self) -> int:
        return int(np.unique(self.call).size)


Metric = Ratio | Quantile


def _flags(outcomes: Sequence[CallOutcome]) -> dict[str, np.ndarray]:
    n = len(outcomes)
    f = {
        "ok": np.fromiter((o.ok for o in outcomes), bool, n),
        "exists": np.fromiter((o.record_exists for o in outcomes), bool, n),
        "refused": np.fromiter((o.refused for o in outcomes), bool, n),
        "fabricated": np.fromiter((o.fabricated for o in outcomes), bool, n),
        "strict": np.fromiter((o.strict_pass for o in outcomes), bool, n),
    }
    return f


def _quantile_of_turns(outcomes: Sequence[CallOutcome], q: float) -> Quantile:
    lengths = np.fromiter((len(o.ttft_ms) if o.ok else 0 for o in outcomes), np.int64,
                          len(outcomes))
    values = np.fromiter(
        (t for o in outcomes if o.ok for t in o.ttft_ms), np.float64, int(lengths.sum())
    )
    call = np.repeat(np.arange(len(outcomes)), lengths)
    order = np.argsort(values, kind="stable")
    return Quantile(values[order], call[order], q)


def _extra_metric(outcomes: Sequence[CallOutcome], name: str) -> Metric:
    keys = {k for o in outcomes for k in o.extra}
    m = re.match(r"^(p\d{1,2}|mean)_(.+)$", name)
    stat, key = ("mean", name) if name in keys or m is None else (m.group(1), m.group(2))
    if key not in keys:
        seen = ", ".join(sorted(keys)) or "none recorded"
        raise GateError(
            f"unknown metric '{name}': known are {', '.join(REPORTED)}, or "
            f"[p95_|p50_|mean_]<key> of the outcomes' 'extra' values (keys: {seen})"
        )
    has = np.fromiter((key in o.extra for o in outcomes), bool, len(outcomes))
    vals = np.fromiter((float(o.extra.get(key, 0.0)) for o in outcomes), np.float64,
                       len(outcomes))
    if stat == "mean":
        return Ratio(np.where(has, vals, 0.0), has.astype(np.float64))
    idx = np.flatnonzero(has)
    order = np.argsort(vals[idx], kind="stable")
    return Quantile(vals[idx][order], idx[order], int(stat[1:]) / 100.0)


def metric(outcomes: Sequence[CallOutcome], name: str) -> Metric:
    """The :class:`Ratio` / :class:`Quantile` behind a number or an ``extra`` guard metric."""
    n = len(outcomes)
    if name == "p95_ttft_ms":
        return _quantile_of_turns(outcomes, 0.95)
    if name in ("p50_ttft_ms", "p99_ttft_ms"):
        return _quantile_of_turns(outcomes, int(name[1:3]) / 100.0)
    ones = np.ones(n)
    if name == "tool_arg_accuracy":
        return Ratio(
            np.fromiter((o.arg_correct for o in outcomes), np.float64, n),
            np.fromiter((o.arg_total for o in outcomes), np.float64, n),
        )
    if name == "cost_per_session_usd":
        return Ratio(np.fromiter((o.cost_usd for o in outcomes), np.float64, n), ones)
    f = _flags(outcomes)
    missing = ~f["exists"]
    simple = {
        "strict_pass_rate": (f["strict"], ones),
        "refusal_rate": (missing & f["refused"] & ~f["fabricated"], missing),
        "fabrication_rate": (missing & f["fabricated"], missing),
        "over_refusal_rate": (f["exists"] & f["refused"], f["exists"]),
        "error_rate": (~f["ok"], ones),
        "cost_estimated_rate": (
            np.fromiter((o.cost_estimated for o in outcomes), bool, n), ones),
    }
    if name in simple:
        num, den = simple[name]
        return Ratio(np.asarray(num, np.float64), np.asarray(den, np.float64))
    return _extra_metric(outcomes, name)


def point(m: Metric) -> float | None:
    """The metric's value on the data as recorded (``None`` when it has no data)."""
    if isinstance(m, Ratio):
        den = float(m.den.sum())
        return float(m.num.sum()) / den if den > 0 else None
    if m.values.size == 0:
        return None
    k = int(np.ceil(m.q * m.values.size - _QEPS * m.values.size)) - 1
    return float(m.values[max(k, 0)])


def gate_numbers(outcomes: Sequence[CallOutcome]) -> dict[str, float | None]:
    """Every number in :data:`REPORTED` for one run (``None`` where it has no data)."""
    return {name: point(metric(outcomes, name)) for name in REPORTED}


def metric_calls(outcomes: Sequence[CallOutcome], name: str) -> int:
    """How many calls contribute to a number (the count the minimums are checked on)."""
    return metric(outcomes, name).calls()
