"""Rank more than two runs and say which one wins where (a routing table).

Every pair of runs is judged with the gate's own machinery (:func:`decide.evaluate`: the same
intervals, margins and minimum call counts). A run scores one point for each gate number on
which it beats another run, so the score is a Copeland-style count of interval-decided
number wins; ties in score go to fewer number losses, then to the name. The same ranking is
computed inside each slice of the traffic (by vertical ``pack``, noise ``profile`` and
scenario ``intent``) to say which run to route that kind of call to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from simulator.errors import GateError
from simulator.gate.decide import GateResult, evaluate, fmt_value
from simulator.gate.rubric import GATE_NUMBERS, Rubric
from simulator.metrics.numbers import gate_numbers
from simulator.results import CallOutcome

DIMENSIONS: tuple[str, ...] = ("pack", "profile", "intent")


@dataclass(frozen=True)
class Standing:
    """One run's place: number wins and losses against every other run."""

    run: str
    score: int
    losses: int
    calls: int
    wins_by_number: dict[str, int]
    numbers: dict[str, float | None]


@dataclass(frozen=True)
class Route:
    """Which run wins one slice of traffic (``winner`` None when none clearly does)."""

    dimension: str
    value: str
    winner: str | None
    reason: str
    ranking: tuple[Standing, ...]


@dataclass(frozen=True)
class CompareResult:
    ranking: tuple[Standing, ...]
    routes: tuple[Route, ...]
    pairwise: dict[tuple[str, str], GateResult] = field(default_factory=dict)

    def route(self, dimension: str, value: str) -> Route:
        for r in self.routes:
            if r.dimension == dimension and r.value == value:
                return r
        raise KeyError((dimension, value))


def _rank(runs: Mapping[str, Sequence[CallOutcome]], rubric: Rubric, slice_key: str,
          ) -> tuple[tuple[Standing, ...], dict[tuple[str, str], GateResult]]:
    names = list(runs)
    wins = {n: dict.fromkeys(GATE_NUMBERS, 0) for n in names}
    losses = dict.fromkeys(names, 0)
    pairwise: dict[tuple[str, str], GateResult] = {}
    for a, b in combinations(names, 2):
        # b judged as the candidate against a; b's loss is a's win.
        res = evaluate(runs[a], runs[b], rubric, seed_parts=("compare", slice_key, a, b))
        pairwise[(a, b)] = res
        for row in res.rows:
            if row.decision == "win":
                wins[b][row.name] += 1
                losses[a] += 1
            elif row.decision in ("loss", "loss_badly"):
                wins[a][row.name] += 1
                losses[b] += 1
    standings = [
        Standing(n, sum(wins[n].values()), losses[n], len(runs[n]), wins[n],
                 gate_numbers(runs[n]))
        for n in names
    ]
    standings.sort(key=lambda s: (-s.score, s.losses, s.run))
    return tuple(standings), pairwise


def _winner(ranking: Sequence[Standing], rubric: Rubric) -> tuple[str | None, str]:
    if not ranking:
        return None, "no calls"
    thin = [s.run for s in ranking if s.calls < rubric.min_calls_per_arm]
    top = ranking[0]
    if top.score == 0:
        if thin:
            return None, (f"too few calls ({', '.join(thin)} below "
                          f"{rubric.min_calls_per_arm})")
        return None, "no run beats another on any number"
    level = [s.run for s in ranking if (s.score, s.losses) == (top.score, top.losses)]
    if len(level) > 1:
        return None, f"level between {', '.join(level)} ({_n(top.score, 'number win')} each)"
    return top.run, f"{_n(top.score, 'number win')}, {_n(top.losses, 'loss', 'losses')}"


def _n(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else (many or one + 's')}"


def compare(runs: Mapping[str, Sequence[CallOutcome]], rubric: Rubric,
            dimensions: Sequence[str] = DIMENSIONS) -> CompareResult:
    """Rank the runs overall and within each value of each dimension.

    ``runs`` maps a run name to its outcomes (at least two runs). Returns the overall
    ranking, one :class:`Route` per (dimension, value) seen in any run, and the pairwise
    gate results behind the overall ranking. Raises :class:`GateError` for fewer than two
    runs or an unknown dimension.
    """
    if len(runs) < 2:
        raise GateError(f"compare needs at least two runs, got {len(runs)}")
    for d in dimensions:
        if d not in DIMENSIONS:
            raise GateError(f"unknown breakdown '{d}': known are {', '.join(DIMENSIONS)}")
    ranking, pairwise = _rank(runs, rubric, "all")
    routes: list[Route] = []
    for d in dimensions:
        values = sorted({getattr(o, d) for outs in runs.values() for o in outs})
        for v in values:
            sliced = {n: [o for o in outs if getattr(o, d) == v] for n, outs in runs.items()}
            r, _ = _rank(sliced, rubric, f"{d}={v}")
            winner, reason = _winner(r, rubric)
            routes.append(Route(d, v, winner, reason, r))
    return CompareResult(ranking, tuple(routes), pairwise)


def render_compare(result: CompareResult) -> RenderableType:
    """The overall ranking and the routing table as rich renderables."""
    rank = Table(title="ranking (number wins against the other runs, interval-decided)")
    for col in ("#", "run", "calls", "wins", "losses", *GATE_NUMBERS):
        rank.add_column(col, justify="left" if col == "run" else "right")
    for i, s in enumerate(result.ranking, 1):
        rank.add_row(str(i), s.run, str(s.calls), str(s.score), str(s.losses),
                     *(f"{fmt_value(n, s.numbers[n])} ({s.wins_by_number[n]}w)"
                       for n in GATE_NUMBERS))
    routing = Table(title="routing: which run wins where")
    for col in ("by", "value", "winner", "why", "calls per run"):
        routing.add_column(col)
    for r in result.routes:
        calls = ", ".join(f"{s.run}={s.calls}" for s in sorted(r.ranking, key=lambda s: s.run))
        routing.add_row(r.dimension, r.value,
                        Text(r.winner or "-", style="bold green" if r.winner else "dim"),
                        r.reason, calls)
    return Group(rank, routing)


def compare_to_json(result: CompareResult) -> dict[str, object]:
    def standing(s: Standing) -> dict[str, object]:
        return {"run": s.run, "score": s.score, "losses": s.losses, "calls": s.calls,
                "wins_by_number": s.wins_by_number, "numbers": s.numbers}

    return {
        "ranking": [standing(s) for s in result.ranking],
        "routes": [{"dimension": r.dimension, "value": r.value, "winner": r.winner,
                    "reason": r.reason, "ranking": [standing(s) for s in r.ranking]}
                   for r in result.routes],
        "pairwise": [{"baseline": a, "candidate": b, "verdict": g.verdict,
                      "decisions": {row.name: row.decision for row in g.rows}}
                     for (a, b), g in result.pairwise.items()],
    }
