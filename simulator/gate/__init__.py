"""The eval gate: does a candidate run earn its slot against a baseline run?

Pure core over lists of :class:`simulator.results.CallOutcome`: the rubric
(:mod:`.rubric`), the metric definitions (:mod:`simulator.metrics.numbers`), seeded
bootstrap intervals (:mod:`.stats`), the decision (:mod:`.decide`), renderers
(:mod:`.output`) and multi-run ranking with a routing table (:mod:`.compare`). See
docs/gate.md.
"""

from __future__ import annotations

from simulator.gate.compare import CompareResult, compare, compare_to_json, render_compare
from simulator.gate.decide import (
    GateResult,
    NumberRow,
    check_meta,
    evaluate,
    judge,
    scenario_set_id,
)
from simulator.gate.output import render, to_json, write_junit
from simulator.gate.rubric import GATE_NUMBERS, Rubric, load_rubric, rubric_from_dict
from simulator.gate.stats import Estimate, bootstrap_one, bootstrap_pair
from simulator.metrics.numbers import gate_numbers

__all__ = [
    "GATE_NUMBERS",
    "CompareResult",
    "Estimate",
    "GateResult",
    "NumberRow",
    "Rubric",
    "bootstrap_one",
    "bootstrap_pair",
    "check_meta",
    "compare",
    "compare_to_json",
    "evaluate",
    "gate_numbers",
    "judge",
    "load_rubric",
    "render",
    "render_compare",
    "rubric_from_dict",
    "scenario_set_id",
    "to_json",
    "write_junit",
]
