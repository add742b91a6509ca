"""Every metric callsim reports, defined once: name, label, unit, direction, the calls it
is counted over (and so which rubric minimum applies) and how it is computed from graded
call outcomes. The gate, rubric validation, the run summary, run history, the HTML report
and JUnit read these definitions (:data:`METRICS`); adding a metric is one
:class:`MetricDef` here plus its test.

Every number is one of two shapes, so that point estimates and bootstrap resamples share one
code path (:mod:`simulator.gate.stats`):

* a **ratio** of two per-call sums, ``sum(num) / sum(den)`` (rates, accuracy, mean cost);
* a **quantile** of per-item values, each item belonging to one call (p95 over the pooled
  turns of ok calls; p95 of an ``extra`` value).

Definitions (see docs/gate.md):

=========================  ===============================================================
p95_ttft_ms                95th percentile (inverted CDF) of the pooled per-turn ``ttft_ms``
                           of ok calls
tool_arg_accuracy          sum(arg_correct) / sum(arg_total) over all calls; no data ("not
                           observed") when the agent calls tools over the relay and sent it
                           no request on any call (it keeps its own backend)
strict_pass_rate           share of calls with ``strict_pass`` (not observed as tool accuracy)
refusal_rate               over calls whose record does not exist: refused and not fabricated
fabrication_rate           over calls whose record does not exist: fabricated
over_refusal_rate          over calls whose record exists: refused
cost_per_session_usd       mean ``cost_usd`` over all calls (failed calls cost money too)
error_rate                 share of calls that are not ``ok``
=========================  ===============================================================

Audio calls add per-turn timings, each as ``p50_`` / ``p95_`` / ``p99_`` quantiles over the
pooled caller turns of ok calls: ``ttfa_ms`` (time to first audio), ``first_voiced_ms``,
``barge_in_reaction_ms`` and ``agent_speech_s``.

Guard metrics may also name an ``extra`` key: ``p95_<key>`` / ``p50_<key>`` / ``p99_<key>``
(quantile of the per-call value over calls that carry it), ``mean_<key>`` or plain ``<key>``
(mean over calls that carry it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simulator.errors import GateError
from simulator.results import CallOutcome

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


def _quantile_of_turns(outcomes: Sequence[CallOutcome], q: float,
                       name: str = "ttft_ms") -> Quantile:
    """The ``q`` quantile of a per-turn timing (a tuple field of the outcomes), pooled
    over the turns of ok calls."""
    per_call = [getattr(o, name) if o.ok else () for o in outcomes]
    lengths = np.fromiter((len(v) for v in per_call), np.int64, len(outcomes))
    values = np.fromiter((t for v in per_call for t in v), np.float64, int(lengths.sum()))
    call = np.repeat(np.arange(len(outcomes)), lengths)
    order = np.argsort(values, kind="stable")
    return Quantile(values[order], call[order], q)


Unit = Literal["ms", "s", "rate", "usd", ""]
Population = Literal["calls", "missing_record", "existing_record", "tool_args", "timed_turns"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric. ``compute`` turns a run's outcomes into the :class:`Ratio` /
    :class:`Quantile` behind its value (and its bootstrap); ``population`` says which calls
    count towards it, and so which rubric minimum applies; ``gate``: one of the four numbers
    that vote; ``reported``: shown in every summary and report; ``short``: a name of a few
    letters for tables that must fit 80 columns (the label when empty); ``drifts``: it moves
    with the load and the time of day, not only with the agent (latencies, and cost, whose
    per-minute charges follow call length), so two runs made apart can differ on it with
    nothing changed."""

    name: str
    label: str
    unit: Unit
    direction: Literal["lower", "higher"]
    population: Population
    compute: Callable[[Sequence[CallOutcome]], Metric]
    gate: bool = False
    reported: bool = False
    drifts: bool = False
    short: str = ""


def _ratio(num: Callable[[CallOutcome], float], den: Callable[[CallOutcome], float]
           ) -> Callable[[Sequence[CallOutcome]], Metric]:
    def compute(outcomes: Sequence[CallOutcome]) -> Metric:
        n = len(outcomes)
        return Ratio(np.fromiter((float(num(o)) for o in outcomes), np.float64, n),
                     np.fromiter((float(den(o)) for o in outcomes), np.float64, n))

    return compute


def _turns(name: str, q: float) -> Callable[[Sequence[CallOutcome]], Metric]:
    return lambda outcomes: _quantile_of_turns(outcomes, q, name)


def tools_not_observed(outcomes: Sequence[CallOutcome]) -> bool:
    """True when the agent called tools over callsim's relay on no call at all: it keeps its
    own backend, so its tool calls cannot be seen (one call that used the relay makes every
    call count, a call without tool requests then scoring 0)."""
    seen = [o.tools_observed for o in outcomes if o.tools_observed is not None]
    return bool(seen) and not any(seen)


def _observed_tools(compute: Callable[[Sequence[CallOutcome]], Metric]
                    ) -> Callable[[Sequence[CallOutcome]], Metric]:
    """Tool accuracy has no data (None, "not observed") when :func:`tools_not_observed`."""
    def wrapped(outcomes: Sequence[CallOutcome]) -> Metric:
        m = compute(outcomes)
        if isinstance(m, Ratio) and tools_not_observed(outcomes):
            return Ratio(np.zeros_like(m.num), np.zeros_like(m.den))
        return m

    return wrapped


def _missing(o: CallOutcome) -> bool:
    return not o.record_exists


_DEFS: list[MetricDef] = [
    MetricDef("p95_ttft_ms", "p95 first-token latency", "ms", "lower", "timed_turns",
              _turns("ttft_ms", 0.95), gate=True, reported=True, drifts=True,
              short="p95 latency"),
    MetricDef("tool_arg_accuracy", "tool-call argument accuracy", "rate", "higher",
              "tool_args", _observed_tools(_ratio(lambda o: o.arg_correct, lambda o: o.arg_total)),
              gate=True, reported=True, short="arg accuracy"),
    MetricDef("refusal_rate", "refusal-on-missing-record rate", "rate", "higher",
              "missing_record",
              _ratio(lambda o: _missing(o) and o.refused and not o.fabricated, _missing),
              gate=True, reported=True, short="refusal"),
    MetricDef("cost_per_session_usd", "per-session cost", "usd", "lower", "calls",
              _ratio(lambda o: o.cost_usd, lambda o: 1.0), gate=True, reported=True,
              short="cost", drifts=True),
    MetricDef("strict_pass_rate", "strict pass rate", "rate", "higher", "calls",
              _observed_tools(_ratio(lambda o: o.strict_pass, lambda o: 1.0)), reported=True),
    MetricDef("fabrication_rate", "fabrication rate (missing records)", "rate", "lower",
              "missing_record", _ratio(lambda o: _missing(o) and o.fabricated, _missing),
              reported=True),
    MetricDef("over_refusal_rate", "over-refusal rate (existing records)", "rate", "lower",
              "existing_record", _ratio(lambda o: o.record_exists and o.refused,
                                        lambda o: o.record_exists), reported=True),
    MetricDef("error_rate", "error rate", "rate", "lower", "calls",
              _ratio(lambda o: not o.ok, lambda o: 1.0), reported=True),
    MetricDef("cost_estimated_rate", "share of calls with estimated cost", "rate", "lower",
              "calls", _ratio(lambda o: o.cost_estimated, lambda o: 1.0)),
]
_TURN_LABELS: dict[str, tuple[str, Unit]] = {
    "ttft_ms": ("first-token latency", "ms"),
    "ttfa_ms": ("time to first audio", "ms"),
    "first_voiced_ms": ("time to first voiced audio", "ms"),
    "barge_in_reaction_ms": ("barge-in reaction", "ms"),
    "agent_speech_s": ("agent speech per turn", "s"),
}
for _field, (_label, _unit) in _TURN_LABELS.items():
    for _p in (50, 95, 99):
        if f"p{_p}_{_field}" not in {d.name for d in _DEFS}:
            _DEFS.append(MetricDef(f"p{_p}_{_field}", f"p{_p} {_label}", _unit, "lower",
                                   "timed_turns", _turns(_field, _p / 100.0), drifts=True))

#: Every defined metric by name.
METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}
#: The four numbers that vote in the gate, in display order.
GATE_METRICS: tuple[str, ...] = tuple(d.name for d in _DEFS if d.gate)
#: Reported by :func:`gate_numbers`, in display order (the four gate numbers first).
REPORTED: tuple[str, ...] = tuple(d.name for d in _DEFS if d.reported)


def _extra_metric(outcomes: Sequence[CallOutcome], name: str) -> Metric:
    keys = {k for o in outcomes for k in o.extra}
    m = re.match(r"^(p\d{1,2}|mean)_(.+)$", name)
    stat, key = ("mean", name) if name in keys or m is None else (m.group(1), m.group(2))
    if key not in keys:
        seen = ", ".join(sorted(keys)) or "none recorded"
        raise GateError(
            f"unknown metric '{name}': known are {', '.join(REPORTED)}, p50_/p95_/p99_ of "
            f"{', '.join(_TURN_LABELS)}, or "
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
    """The :class:`Ratio` / :class:`Quantile` behind a defined metric or an ``extra`` guard
    metric; an unknown name is a :class:`GateError` listing the known ones."""
    d = METRICS.get(name)
    if d is None:
        return _extra_metric(outcomes, name)
    m = d.compute(outcomes)
    if isinstance(m, Quantile) and m.values.size == 0 and d.population == "timed_turns":
        # A custom grader may record the same timing per call in ``extra`` (runs graded
        # before the per-turn field existed did): use that when no turn carries it.
        key = name.split("_", 1)[1]
        if any(key in o.extra for o in outcomes):
            return _extra_metric(outcomes, name)
    return m


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
