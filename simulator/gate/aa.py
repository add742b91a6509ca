"""A/A calibration: how often does the rubric fail an agent against itself on this setup?

An A/A run is an interleaved A/B run whose arms call the same agent. The gate's verdict on
it is one draw; the false-loss rate needs many. Because the arms of a script were replayed
in a random order under the same conditions, which of its two calls is labelled "baseline"
is arbitrary: swapping the labels of a random half of the scripts gives another equally
likely A/A outcome (a randomisation test). The gate is run on ``draws`` such relabellings,
each seeded, and the share of FAIL verdicts (and of losses per number) is the false-fail
rate of this rubric on this setup, to compare with ``1 - confidence``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.gate.decide import GateResult, evaluate, pair_arms
from simulator.gate.rubric import GATE_NUMBERS, Rubric
from simulator.results import CallOutcome
from simulator.seeding import rng


@dataclass(frozen=True)
class AAResult:
    """The A/A verdict as run, and the false-loss rates over relabelled draws."""

    direct: GateResult
    draws: int
    fails: int
    losses: dict[str, int] = field(default_factory=dict)    # per gate number, any loss
    allowed: float = 0.05                                    # 1 - confidence
    scripts: int = 0

    @property
    def false_fail_rate(self) -> float:
        return self.fails / self.draws if self.draws else 0.0

    @property
    def ok(self) -> bool:
        """The rubric fails the agent against itself no more often than its confidence
        allows (and the A/A run as recorded did not fail)."""
        return self.direct.verdict != "FAIL" and self.false_fail_rate <= self.allowed


def relabel(a: Sequence[CallOutcome], b: Sequence[CallOutcome], seed: object
            ) -> tuple[list[CallOutcome], list[CallOutcome]]:
    """Swap the arms of a seeded random half of the scripts (all calls of a script move)."""
    ids = sorted({o.script_id for o in a})
    r = rng(seed, "aa-relabel")
    swap = {sid for sid in ids if r.random() < 0.5}
    na = [o for o in a if o.script_id not in swap] + [o for o in b if o.script_id in swap]
    nb = [o for o in b if o.script_id not in swap] + [o for o in a if o.script_id in swap]
    return na, nb


def calibrate(a: Sequence[CallOutcome], b: Sequence[CallOutcome], rubric: Rubric,
              direct: GateResult, *, draws: int = 100) -> AAResult:
    """Run the gate on ``draws`` relabellings of the A/A arms ``a`` and ``b``.

    ``direct`` is the gate's result on the arms as recorded (from :func:`judge`). Each draw
    is judged as :func:`evaluate` judges (same rubric, intervals and minimums), seeded from
    the rubric seed and the draw number, so the same run gives the same rates.
    """
    a, b, _ = pair_arms(a, b)
    fails = 0
    losses = dict.fromkeys(GATE_NUMBERS, 0)
    for d in range(draws):
        ra, rb = relabel(a, b, (rubric.seed, d))
        res = evaluate(ra, rb, rubric, paired=True, seed_parts=("aa", d))
        fails += res.verdict == "FAIL"
        for row in res.rows:
            losses[row.name] += row.decision in ("loss", "loss_badly")
    return AAResult(direct, draws, fails, losses, allowed=1.0 - rubric.confidence,
                    scripts=len({o.script_id for o in a}))
