"""Before a gated run: does the planned run give the rubric the calls it needs?

A gate number behind fewer calls than the rubric's minimum is inconclusive, whatever the
agent did. The planned calls (per arm, after warm-up) and the scripts they replay are known
before the first call starts, so the shortfall can be said then, not discovered after. Which
calls count towards a number is its definition's population (:mod:`simulator.metrics.numbers`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.callscript import CallScript
from simulator.driver.arms import split_index
from simulator.gate.decide import min_calls
from simulator.gate.rubric import Rubric
from simulator.metrics.numbers import GATE_METRICS, METRICS, Population


@dataclass(frozen=True)
class CallPlan:
    """What one arm of a planned run holds: calls, missing-record and existing-record
    calls, calls with expected tool arguments (all measured calls, warm-up excluded)."""

    calls: int
    missing_record: int
    existing_record: int
    with_arguments: int

    def count(self, population: Population) -> int:
        """Planned calls in a metric's population (timed turns: every call, if all are ok)."""
        return {"calls": self.calls, "timed_turns": self.calls,
                "missing_record": self.missing_record,
                "existing_record": self.existing_record,
                "tool_args": self.with_arguments}[population]


def planned_calls(calls: Sequence[CallScript], k_arms: int, seed: int, total: int,
                  n_warm: int) -> CallPlan:
    """The per-arm :class:`CallPlan` of a run of ``total`` calls (``n_warm`` warm-up)."""
    n = missing = with_args = 0
    for i in range(n_warm, total):
        slot, arm = split_index(i, k_arms, seed)
        if arm != 0:
            continue
        script = calls[slot % len(calls)]
        n += 1
        missing += not script.record_exists
        with_args += any(c.arguments for c in script.expected_tool_calls)
    return CallPlan(n, missing, n - missing, with_args)


def calls_notice(rubric: Rubric, calls: Sequence[CallScript], config: Any, total: int,
                 n_warm: int, *, open_ended: bool = False) -> str:
    """One or more lines saying what the rubric needs and whether the planned run reaches it.

    ``config`` is the run's :class:`~simulator.driver.runner.RunConfig`. ``open_ended``: a
    closed-loop run bounded by time, whose call count is only a ceiling.
    """
    k = config.k_arms
    p = planned_calls(calls, k, config.seed, total, n_warm)
    per = "per arm" if k > 1 else "in the run"
    need_calls, need_missing = rubric.min_calls_per_arm, rubric.min_missing_record_calls
    head = (f"rubric: needs {need_calls} calls {per} and {need_missing} on missing records; "
            f"this run plans {p.calls} {per} ({p.missing_record} on missing records, "
            f"{p.with_arguments} with expected tool arguments)")
    if open_ended:
        head += ", if the --duration allows them all"
    # Numbers short of the same calls share a line: "p95_ttft_ms and cost_per_session_usd".
    short: dict[tuple[int, int, str], list[str]] = {}
    for name in GATE_METRICS:
        population = METRICS[name].population
        have = p.count(population)
        need, what = min_calls(name, rubric)
        if have < need:
            what = "calls" if population == "timed_turns" else what
            short.setdefault((have, need, what), []).append(name)
    if not short:
        return head + ": enough, if the calls complete"
    lines = [head + ": NOT enough; these will be inconclusive:"]
    lines += [f"  - {' and '.join(names)}: {have} {what}, {need} needed"
              for (have, need, what), names in short.items()]
    hint = _more_calls(p, rubric)
    if hint is not None:
        lines.append(f"  about {hint} calls {per} would reach every minimum "
                     "(--count, or a longer --duration)")
    return "\n".join(lines)


def _more_calls(p: CallPlan, rubric: Rubric) -> int | None:
    """Calls per arm that would meet every minimum at the planned mix (None: cannot say)."""
    if p.calls == 0:
        return None
    want = 0.0
    for name in GATE_METRICS:
        have, (need, _) = p.count(METRICS[name].population), min_calls(name, rubric)
        if have == 0:
            return None
        want = max(want, need * p.calls / have)
    return math.ceil(want)
