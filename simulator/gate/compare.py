"""Compare two or more runs and say which one to route each kind of call to.

The traffic is cut into segments: all calls, then each value of ``pack`` (vertical),
``profile`` (noise) and ``intent`` (scenario kind). Inside a segment every pair of runs is
judged on the four gate numbers with the gate's own rules (:func:`decide.decide_number`:
the same percentile-bootstrap intervals and margins), with two differences that let a
segment stand on its own footing:

* the minimum number of calls behind a number is the rubric's ``min_calls_per_segment``
  (a segment is a slice of a run, so the whole-run ``min_calls_per_arm`` would never be
  met); a number below it is not tested at all;
* every tested number in every segment and pair is one test in a single family, and the
  family is controlled with Holm's step-down method: the tests are ordered by their
  bootstrap p-value and the i-th (from 0) of K is decided on an interval at confidence
  ``1 - (1 - confidence) / (K - i)``, stopping at the first one that does not win or lose.
  So the chance of naming any false winner anywhere in the table stays at most
  ``1 - confidence`` however many segments there are (see docs/gate.md).

A run scores a point per number it wins against another run in a segment; the segment's
winner is the run with the most points (then fewest losses), if it is alone there.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

from simulator.errors import GateError
from simulator.gate.decide import NumberRow, decide_number, drift_allowance, drifts, fmt_delta
from simulator.gate.rubric import GATE_NUMBERS, Rubric
from simulator.gate.stats import Estimate, PairEstimate, interval_at, pair_samples
from simulator.metrics.numbers import METRICS, gate_numbers, metric, metric_calls, point
from simulator.results import CallOutcome

DIMENSIONS: tuple[str, ...] = ("pack", "profile", "intent")

#: Short names of the gate numbers for 80-column output.
SHORT: dict[str, str] = {n: METRICS[n].short or METRICS[n].label for n in GATE_NUMBERS}

# Bootstrap resamples beyond the most extreme Holm level, at least: a percentile far in the
# tail needs enough resamples past it to be an estimate rather than the sample minimum.
_TAIL_RESAMPLES = 10
_MAX_RESAMPLES = 10_000


@dataclass(frozen=True)
class Standing:
    """One run's place in a segment: number wins and losses against every other run."""

    run: str
    score: int
    losses: int
    calls: int
    wins_by_number: dict[str, int]
    numbers: dict[str, float | None]


@dataclass(frozen=True)
class Comparison:
    """One gate number, one pair of runs, one segment: the decision after Holm.

    ``row`` is the gate's judgement on the interval at ``confidence`` (the Holm level of
    this test; the rubric's level for a number not tested). ``p`` is the bootstrap p-value
    of "no difference beyond the win margin" (None: not tested, too few calls or no value).
    """

    baseline: str
    candidate: str
    row: NumberRow
    confidence: float
    p: float | None

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def tested(self) -> bool:
        return self.p is not None

    def winner(self) -> str | None:
        if self.row.decision == "win":
            return self.candidate
        if self.row.decision in ("loss", "loss_badly"):
            return self.baseline
        return None


@dataclass(frozen=True)
class Route:
    """Which run to send one segment of traffic to (``winner`` None when none clearly wins).

    ``status``: ``win``, ``tie`` (every tested number within its margin), ``level`` (runs
    win different numbers), ``undecided`` (intervals straddle a margin) or ``too few``
    (no number has ``min_calls_per_segment`` calls in every run). ``decisive`` is the
    comparison the line shows: the winner's strongest win, or the test closest to deciding.
    """

    dimension: str
    value: str
    winner: str | None
    status: str
    reason: str
    decisive: Comparison | None
    calls: dict[str, int]
    comparisons: tuple[Comparison, ...]
    ranking: tuple[Standing, ...]

    @property
    def segment(self) -> str:
        return "all calls" if self.dimension == "all" else f"{self.dimension} {self.value}"


@dataclass(frozen=True)
class Drift:
    """Two of the compared runs made separately: how far the intervals of the numbers that
    drift (latencies, cost) were widened between them, as a fraction of the baseline's value
    on each side, and the rubric's drift lines that say why (see ``decide.drift_allowance``)."""

    baseline: str
    candidate: str
    widened: float
    lines: tuple[str, ...]


@dataclass(frozen=True)
class CompareResult:
    ranking: tuple[Standing, ...]
    routes: tuple[Route, ...]
    runs: tuple[str, ...]
    family_size: int
    resamples: int
    confidence: float
    min_calls_per_segment: int
    numbers: dict[str, dict[str, float | None]] = field(default_factory=dict)
    drift: tuple[Drift, ...] = ()

    def route(self, dimension: str, value: str) -> Route:
        for r in self.routes:
            if r.dimension == dimension and r.value == value:
                return r
        raise KeyError((dimension, value))


# ------------------------------------------------------------------------------ testing


@dataclass
class _Test:
    segment: int
    baseline: str
    candidate: str
    name: str
    point: PairEstimate             # values and call counts; the interval is filled per level
    samples: np.ndarray | None      # oriented improvement resamples (better is positive)
    margin: float
    p: float | None
    distance: float                 # tie-break for equal p: standardised distance past margin
    widen: float = 0.0              # drift allowance, in the number's units, each side


def _p_value(imp: np.ndarray, margin: float) -> tuple[float | None, float]:
    """The two-sided bootstrap p-value of "the improvement lies within ±margin" (twice the
    smaller share of resamples on the near side of +margin or -margin), and a tie-break for
    equal p-values (how far past the margin the resamples sit, in standard deviations)."""
    s = imp[~np.isnan(imp)]
    if s.size == 0 or s.size < imp.size / 2:   # as the interval: the number barely exists
        return None, 0.0
    p = min(1.0, 2.0 * min(float(np.mean(s <= margin)), float(np.mean(s >= -margin))))
    sd = float(np.std(s)) or 1e-12
    return p, (abs(float(np.mean(s))) - margin) / sd


def _segment_rubric(rubric: Rubric) -> Rubric:
    n = rubric.min_calls_per_segment
    return rubric.model_copy(update={"min_calls_per_arm": n, "min_missing_record_calls": n})


def _decide(t: _Test, rubric: Rubric, seg_rubric: Rubric, confidence: float) -> NumberRow:
    d = t.point.diff
    if t.samples is not None:
        # Orientation back to candidate - baseline for the interval shown.
        sign = 1.0 if GATE_NUMBERS[t.name] == "higher" else -1.0
        lo, hi = interval_at(sign * t.samples, confidence)
        if lo is not None and hi is not None and t.widen > 0:
            lo, hi = lo - t.widen, hi + t.widen
        d = Estimate(d.value, lo, hi, d.n)
    est = PairEstimate(t.point.baseline, t.point.candidate, d)
    return decide_number(t.name, rubric.numbers.rule(t.name), est, seg_rubric)


def _holm(tests: list[_Test], rubric: Rubric, seg_rubric: Rubric
          ) -> dict[int, tuple[NumberRow, float]]:
    """Decide every test; the tested ones under Holm's step-down over the whole family."""
    alpha = 1.0 - rubric.confidence
    out: dict[int, tuple[NumberRow, float]] = {}
    tested = sorted((i for i, t in enumerate(tests) if t.p is not None),
                    key=lambda i: (tests[i].p, -tests[i].distance, i))
    k = len(tested)
    stopped_at: float | None = None
    for j, i in enumerate(tested):
        level = 1.0 - alpha / (k - j) if stopped_at is None else stopped_at
        row = _decide(tests[i], rubric, seg_rubric, level)
        decided = row.decision in ("win", "loss", "loss_badly")
        if stopped_at is None and not decided:
            stopped_at = level    # Holm stops here: no later test may win or lose
        elif stopped_at is not None and decided:
            row = _not_after_stop(row)
        out[i] = (row, level)
    for i, t in enumerate(tests):
        if i not in out:
            out[i] = (_decide(t, rubric, seg_rubric, rubric.confidence), rubric.confidence)
    return out


def _not_after_stop(row: NumberRow) -> NumberRow:
    # Percentile interpolation can, in principle, put a test with a larger p-value past the
    # margin after Holm has stopped; Holm's rule still holds it undecided.

    return replace(row, decision="inconclusive",
                   reason=row.reason.split(":")[0] + ": a smaller p-value in the family was "
                   "not decided, so Holm's method decides nothing after it")


# ------------------------------------------------------------------------------ ranking


def _standings(names: Sequence[str], comps: Sequence[Comparison],
               runs: Mapping[str, Sequence[CallOutcome]]) -> tuple[Standing, ...]:
    wins = {n: dict.fromkeys(GATE_NUMBERS, 0) for n in names}
    losses = dict.fromkeys(names, 0)
    for c in comps:
        w = c.winner()
        if w is None:
            continue
        other = c.baseline if w == c.candidate else c.candidate
        wins[w][c.name] += 1
        losses[other] += 1
    st = [Standing(n, sum(wins[n].values()), losses[n], len(runs[n]), wins[n],
                   gate_numbers(runs[n])) for n in names]
    st.sort(key=lambda s: (-s.score, s.losses, s.run))
    return tuple(st)


def _route(dimension: str, value: str, names: Sequence[str], comps: Sequence[Comparison],
           runs: Mapping[str, Sequence[CallOutcome]], min_calls: int) -> Route:
    ranking = _standings(names, comps, runs)
    calls = {n: len(runs[n]) for n in names}
    tested = [c for c in comps if c.tested]

    def by_p(cs: Sequence[Comparison]) -> Comparison | None:
        order = list(GATE_NUMBERS)
        return min(cs, key=lambda c: (c.p if c.p is not None else 2.0, order.index(c.name)),
                   default=None)

    def route(winner: str | None, status: str, reason: str,
              decisive: Comparison | None) -> Route:
        return Route(dimension, value, winner, status, reason, decisive, calls, tuple(comps),
                     ranking)

    top = ranking[0]
    if top.score > 0:
        level = [s.run for s in ranking if (s.score, s.losses) == (top.score, top.losses)]
        if len(level) == 1:
            mine = [c for c in comps if c.winner() == top.run]
            won = sorted({SHORT[c.name] for c in mine})
            return route(top.run, "win", f"wins {', '.join(won)}; "
                         f"{_n(top.losses, 'loss', 'losses')}", by_p(mine))
        decided = [c for c in comps if c.winner() is not None]
        return route(None, "level", f"level between {', '.join(level)}: each wins "
                     f"{_n(top.score, 'number')}", by_p(decided))
    if not tested:
        return route(None, "too few", f"no number has {min_calls} calls in every run "
                     f"({', '.join(f'{n} {k}' for n, k in calls.items())})", None)
    open_ = [c for c in tested if c.row.decision == "inconclusive"]
    if open_:
        d = by_p(open_)
        return route(None, "undecided", "an interval straddles its margin; more calls would "
                     "decide it", d)
    return route(None, "tie", "every tested number is within its margin", by_p(tested))


def _n(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else (many or one + 's')}"


# ------------------------------------------------------------------------------ compare


def _segments(runs: Mapping[str, Sequence[CallOutcome]], dimensions: Sequence[str]
              ) -> list[tuple[str, str, dict[str, list[CallOutcome]]]]:
    out = [("all", "all", {n: list(v) for n, v in runs.items()})]
    for d in dimensions:
        values = sorted({getattr(o, d) for outs in runs.values() for o in outs})
        if len(values) == 1:
            continue   # one value everywhere: the segment is "all calls" again
        for v in values:
            out.append((d, v, {n: [o for o in outs if getattr(o, d) == v]
                               for n, outs in runs.items()}))
    return out


def compare(runs: Mapping[str, Sequence[CallOutcome]], rubric: Rubric,
            dimensions: Sequence[str] = DIMENSIONS, *,
            metas: Mapping[str, Mapping[str, Any]] | None = None,
            made_in: Mapping[str, str] | None = None) -> CompareResult:
    """Decide, per segment, which run wins (see the module docstring).

    ``runs`` maps a run's name (its label) to its outcomes; at least two runs. ``metas``
    maps a name to its run's recorded meta (``host``, ``started_at``, ``loop_lag_p99_ms``):
    given, every pair of runs made separately is held to the rubric's drift policy as the
    gate holds two sequential runs (the intervals of latencies and cost widen by the
    allowance, or :class:`GateError` under ``refuse``). ``made_in`` maps a name to the run
    it was recorded in: two arms of one interleaved A/B run need no drift allowance.
    Returns the overall ranking (the "all calls" segment), one :class:`Route` per segment
    (all calls first, then each value of each dimension that has more than one value), and
    the size of the Holm family. Seeded from ``rubric.seed``: same runs, same table. Raises
    :class:`GateError` for fewer than two runs or an unknown dimension.
    """
    if len(runs) < 2:
        raise GateError(f"compare needs at least two runs, got {len(runs)}")
    for d in dimensions:
        if d not in DIMENSIONS:
            raise GateError(f"unknown breakdown '{d}': known are {', '.join(DIMENSIONS)}")
    names = list(runs)
    drift = _drift(names, rubric, metas, made_in)
    widen_of = {(d.baseline, d.candidate): d.widened for d in drift}
    seg_rubric = _segment_rubric(rubric)
    need = rubric.min_calls_per_segment
    segments = _segments(runs, dimensions)

    # Which tests have enough calls decides the family size, and that the resamples needed.
    plan: list[tuple[int, str, str, str]] = []
    enough: dict[tuple[int, str, str, str], bool] = {}
    for si, (_, _, sliced) in enumerate(segments):
        for a, b in combinations(names, 2):
            for name in GATE_NUMBERS:
                key = (si, a, b, name)
                plan.append(key)
                enough[key] = min(metric_calls(sliced[a], name),
                                  metric_calls(sliced[b], name)) >= need
    k = max(1, sum(enough.values()))
    alpha = 1.0 - rubric.confidence
    resamples = min(_MAX_RESAMPLES, max(rubric.bootstrap_resamples,
                                        math.ceil(_TAIL_RESAMPLES * 2 * k / alpha)))

    tests: list[_Test] = []
    for si, (dim, value, sliced) in enumerate(segments):
        for a, b in combinations(names, 2):
            # b is judged as the candidate against a; b's loss is a's win.
            # Only tested numbers are resampled; the others need their point values only.
            wanted = [n for n in GATE_NUMBERS if enough[(si, a, b, n)]]
            _, samples, _ = pair_samples(sliced[a], sliced[b], wanted, resamples=resamples,
                                         seed=(rubric.seed, "compare", dim, value, a, b))
            for name, direction in GATE_NUMBERS.items():
                mb, mc = metric(sliced[a], name), metric(sliced[b], name)
                pb, pc = point(mb), point(mc)
                d_pt = pc - pb if pb is not None and pc is not None else None
                pe = PairEstimate(Estimate(pb, None, None, mb.calls()),
                                  Estimate(pc, None, None, mc.calls()),
                                  Estimate(d_pt, None, None, min(mb.calls(), mc.calls())))
                rule = rubric.numbers.rule(name)
                margin = rule.win_margin * (abs(pb) if rule.relative and pb is not None
                                            else 1.0)
                widen = (widen_of.get((a, b), 0.0) * abs(pb)
                         if drifts(name) and pb is not None else 0.0)
                sign = 1.0 if direction == "higher" else -1.0
                imp = sign * samples[name] if name in samples else None
                # A win or loss must clear the margin with the interval widened, so its
                # p-value is taken against the margin plus the allowance.
                p, dist = (_p_value(imp, margin + widen) if imp is not None and pb is not None
                           else (None, 0.0))
                tests.append(_Test(si, a, b, name, pe, imp, margin, p, dist, widen))
    decided = _holm(tests, rubric, seg_rubric)

    routes: list[Route] = []
    for si, (dim, value, sliced) in enumerate(segments):
        comps = [Comparison(t.baseline, t.candidate, decided[i][0], decided[i][1], t.p)
                 for i, t in enumerate(tests) if t.segment == si]
        routes.append(_route(dim, value, names, comps, sliced, need))
    return CompareResult(
        ranking=routes[0].ranking, routes=tuple(routes), runs=tuple(names),
        family_size=sum(t.p is not None for t in tests), resamples=resamples,
        confidence=rubric.confidence,
        min_calls_per_segment=need, numbers={n: gate_numbers(runs[n]) for n in names},
        drift=drift,
    )


def _drift(names: Sequence[str], rubric: Rubric,
           metas: Mapping[str, Mapping[str, Any]] | None,
           made_in: Mapping[str, str] | None) -> tuple[Drift, ...]:
    """The drift allowance of every pair of runs made separately (none without ``metas``)."""
    if metas is None:
        return ()
    out = []
    for a, b in combinations(names, 2):
        if made_in is not None and a in made_in and made_in.get(a) == made_in.get(b):
            continue   # arms of one interleaved run: the same conditions, by construction
        try:
            widen, lines = drift_allowance(rubric, metas.get(a, {}), metas.get(b, {}))
        except GateError as e:
            raise GateError(f"cannot compare {a} with {b}: "
                            + str(e).removeprefix("cannot judge: ")) from None
        out.append(Drift(a, b, widen, tuple(lines)))
    return tuple(out)


# ------------------------------------------------------------------------------ output


def _fmt_diff(name: str, d: Estimate) -> str:
    """``+11.6 pp [+6.9, +16.5]``: the value with its unit, the interval without."""
    def bare(v: float | None) -> str:
        return fmt_delta(name, v).replace(" pp", "").replace(" ms", "").replace("$", "")

    if d.lo is None or d.hi is None:
        return f"{fmt_delta(name, d.value)} [n/a]"
    return f"{fmt_delta(name, d.value)} [{bare(d.lo)}, {bare(d.hi)}]"


def shown_difference(route: Route) -> Estimate | None:
    """The decisive comparison's difference as read: the winner minus the other run, or
    (no winner) the later-named run minus the earlier. None when nothing was compared."""
    c = route.decisive
    if c is None:
        return None
    d = c.row.difference
    if route.winner is not None and route.winner == c.baseline:
        d = Estimate(None if d.value is None else -d.value,
                     None if d.hi is None else -d.hi, None if d.lo is None else -d.lo, d.n)
    return d


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


#: The ``how`` column: why a line has its winner or none.
HOW = {"win": "wins", "tie": "tie", "level": "level", "undecided": "open", "too few": "few"}


def render_lines(result: CompareResult, *, width: int = 80, verbose: bool = False,
                 run_ids: Mapping[str, str] | None = None) -> list[str]:
    """The routing table as plain lines, none longer than ``width`` (at least 60).

    One line per segment: the segment, the winner's label or ``no winner``, how it was
    decided (``wins``; ``tie``: every tested number within its margin; ``level``: runs win
    different numbers; ``open``: an interval straddles a margin; ``few``: too few calls),
    the decisive number, and its difference with the interval the decision used. With
    ``verbose``, every comparison behind each line follows it, with the gate's reason.
    ``run_ids`` maps a label to the run it names, for the legend.
    """
    width = max(60, width)
    lines: list[str] = []
    pct = f"{100 * result.confidence:g}%"
    head = (f"routing of {len(result.runs)} runs: Holm over {result.family_size} tests, "
            f"{pct} overall; >= {result.min_calls_per_segment} calls behind a number per "
            "segment")
    lines += textwrap.wrap(head, width)
    for name in result.runs:
        rid = f"  {run_ids[name]}" if run_ids and name in run_ids else ""
        lines.append(_cut(f"  {name}: {len_calls(result, name)} calls{rid}", width))
    two = len(result.runs) == 2
    note = ("difference: the winner minus the other run; no winner: " +
            (f"{result.runs[1]} minus {result.runs[0]}" if two else
             "the later run named minus the earlier"))
    lines += textwrap.wrap(note, width)
    lines += _drift_lines(result, width, verbose)
    lines.append("")

    # Segments too thin to test say one thing together: one line per dimension (unless
    # verbose, where every segment shows what it had).
    items: list[Route | list[Route]] = []
    for r in result.routes:
        if not verbose and r.status == "too few" and r.dimension != "all":
            last = items[-1] if items else None
            if isinstance(last, list) and last[0].dimension == r.dimension:
                last.append(r)
                continue
            items.append([r])
        else:
            items.append(r)
    rows: dict[int, tuple[str, str, str, str, str]] = {}
    for i, it in enumerate(items):
        if isinstance(it, list) and len(it) == 1:
            items[i] = it = it[0]
        if isinstance(it, Route):
            r = it
            d = shown_difference(r)
            num = SHORT[r.decisive.name] if r.decisive is not None else ""
            diff = _fmt_diff(r.decisive.name, d) if r.decisive is not None and d else ""
            rows[i] = (r.segment, r.winner if r.winner is not None else "no winner",
                       HOW[r.status], num, diff)
    header = ("segment", "winner", "how", "number", "difference [interval]")
    widths = [max(len(x[i]) for x in [*rows.values(), header]) for i in range(5)]
    room = width - sum(widths[2:]) - 4
    if widths[0] + widths[1] > room:
        # Segment and winner share what is left; a longer one is cut with an ellipsis.
        widths[1] = min(widths[1], max(9, room // 2))
        widths[0] = max(1, room - widths[1])

    def fmt(row: tuple[str, ...]) -> str:
        cells = [_cut(c, w).ljust(w) for c, w in zip(row[:4], widths, strict=False)]
        return _cut(" ".join([*cells, row[4]]).rstrip(), width)

    lines.append(fmt(header))
    for i, it in enumerate(items):
        if i in rows:
            lines.append(fmt(rows[i]))
            if verbose and isinstance(it, Route):
                lines += _verbose(it, width)
        else:
            assert isinstance(it, list)
            most = max(it, key=lambda r: min(r.calls.values()))
            lines.append(_cut(
                f"{it[0].dimension}: {len(it)} segments under {result.min_calls_per_segment} "
                f"calls (most: {most.value}, {min(most.calls.values())})", width))
    return lines


def _drift_lines(result: CompareResult, width: int, verbose: bool) -> list[str]:
    """What separately made runs mean for the table: one line, or (verbose) each pair's
    drift conditions."""
    if not result.drift:
        return []
    widths = sorted({d.widened for d in result.drift})
    if widths[-1] <= 0:
        text = ("separate runs: drift between them is inside the latency and cost "
                "differences (the rubric's drift policy is 'note')")
    else:
        pct = "-".join(f"{100 * w:g}" for w in sorted({widths[0], widths[-1]}))
        text = (f"separate runs: latency and cost intervals widened by ±{pct}% of the "
                "baseline for drift" + ("" if verbose else " (--verbose: why)"))
    out = textwrap.wrap(text, width)
    if verbose:
        for d in result.drift:
            out.append(_cut(f"  {d.candidate} vs {d.baseline}:", width))
            for line in d.lines:
                out += textwrap.wrap(line, width, initial_indent="    - ",
                                     subsequent_indent="      ")
    return out


def len_calls(result: CompareResult, name: str) -> int:
    return result.routes[0].calls.get(name, 0)


def _verbose(r: Route, width: int) -> list[str]:
    out = textwrap.wrap(r.reason, width, initial_indent="    ", subsequent_indent="    ")
    out.append(_cut("    calls: " + ", ".join(f"{n} {k}" for n, k in r.calls.items()), width))
    for c in r.comparisons:
        level = f"at {100 * c.confidence:.3g}%" if c.tested else "not tested"
        text = (f"{SHORT[c.name]}, {c.candidate} vs {c.baseline}: {c.row.decision} "
                f"({level}): {c.row.reason}")
        out += textwrap.wrap(text, width, initial_indent="    - ", subsequent_indent="      ")
    return out


def render_compare(result: CompareResult, *, width: int = 80, verbose: bool = False,
                   run_ids: Mapping[str, str] | None = None) -> str:
    """:func:`render_lines` joined into one string."""
    return "\n".join(render_lines(result, width=width, verbose=verbose, run_ids=run_ids))


def _est(e: Estimate) -> dict[str, Any]:
    return {"value": e.value, "lo": e.lo, "hi": e.hi, "n": e.n}


def _comparison_json(c: Comparison) -> dict[str, Any]:
    return {"number": c.name, "baseline": c.baseline, "candidate": c.candidate,
            "decision": c.row.decision, "reason": c.row.reason, "tested": c.tested,
            "p": c.p, "confidence": c.confidence,
            "baseline_value": _est(c.row.baseline), "candidate_value": _est(c.row.candidate),
            "difference": _est(c.row.difference)}


def compare_to_json(result: CompareResult,
                    run_ids: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A JSON-ready dict: runs, the overall ranking, and every route with its comparisons.

    A comparison's ``difference`` is ``candidate - baseline`` in the number's units, with
    the interval at ``confidence`` (the Holm level the decision used).
    """
    def standing(s: Standing) -> dict[str, Any]:
        return {"run": s.run, "score": s.score, "losses": s.losses, "calls": s.calls,
                "wins_by_number": s.wins_by_number, "numbers": s.numbers}

    return {
        "confidence": result.confidence,
        "family_size": result.family_size,
        "multiple_comparisons": "holm",
        "resamples": result.resamples,
        "min_calls_per_segment": result.min_calls_per_segment,
        "runs": [{"label": n, "run_id": (run_ids or {}).get(n), "calls": len_calls(result, n),
                  "numbers": result.numbers.get(n)} for n in result.runs],
        "ranking": [standing(s) for s in result.ranking],
        "drift": [{"baseline": d.baseline, "candidate": d.candidate, "widened": d.widened,
                   "lines": list(d.lines)} for d in result.drift],
        "routes": [{"segment": r.segment, "dimension": r.dimension, "value": r.value,
                    "winner": r.winner, "status": r.status, "reason": r.reason,
                    "calls": r.calls,
                    "decisive": None if r.decisive is None else _comparison_json(r.decisive),
                    "comparisons": [_comparison_json(c) for c in r.comparisons]}
                   for r in result.routes],
    }
