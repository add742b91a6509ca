"""The gate decision: per-number win / tie / loss on intervals, then the verdict.

Each gate number's *improvement* (candidate minus baseline, sign-flipped for lower-is-better
numbers) has a bootstrap interval [lo, hi]. With ``m`` the win margin and ``L`` the
lose-badly threshold (both absolute after applying ``relative``):

* ``loss_badly``   hi < -L          the whole interval is worse than the threshold
* ``win``          lo > 0, lo >= m  the whole interval is better, by at least the margin
* ``loss``         hi < 0, hi <= -m the whole interval is worse, by at least the margin
* ``tie``          -m <= lo, hi <= m  the whole interval lies within the margin
* ``inconclusive`` otherwise (the interval straddles a margin), or too few calls

Verdict (exit code): PASS (0) when at least ``wins_needed`` (3) numbers win, every other
number's interval rules out losing badly (lo > -L) and no guard is breached; FAIL (1) when a
number loses badly, a guard is breached, or a number loses and the decided numbers leave
fewer than ``wins_needed`` possible wins; INCONCLUSIVE (2) otherwise, with the reasons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from simulator.errors import GateError
from simulator.gate.rubric import GATE_NUMBERS, Direction, NumberRule, Rubric
from simulator.gate.stats import Estimate, PairEstimate, bootstrap_one, bootstrap_pair
from simulator.metrics.numbers import METRICS, REPORTED
from simulator.results import CallOutcome

Decision = Literal["win", "tie", "loss", "loss_badly", "inconclusive"]
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}

#: Numbers shown under the gate table for context; they do not vote.
CONTEXT_NUMBERS: tuple[str, ...] = tuple(n for n in REPORTED if n not in GATE_NUMBERS)


@dataclass(frozen=True)
class NumberRow:
    """One gate number judged: values, intervals, the decision and why."""

    name: str
    direction: Direction
    baseline: Estimate
    candidate: Estimate
    difference: Estimate             # candidate - baseline, in the number's units
    win_margin: float | None         # absolute, in the number's units
    lose_badly: float | None
    decision: Decision
    reason: str
    not_badly: bool | None           # the interval rules out losing badly (None: unknown)


@dataclass(frozen=True)
class GuardRow:
    """A guard metric: the candidate's value against a fixed limit."""

    name: str
    max: float | None
    min: float | None
    baseline: Estimate
    candidate: Estimate
    breached: bool | None            # None: the candidate has no data for it
    reason: str
    applies: bool = True             # False: neither run records the metric (no vote)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided, with everything needed to show and explain it."""

    verdict: Verdict
    exit_code: int
    rows: tuple[NumberRow, ...]
    guards: tuple[GuardRow, ...]
    reasons: tuple[str, ...]
    wins: int
    wins_needed: int
    paired: bool
    confidence: float
    resamples: int
    baseline_calls: int
    candidate_calls: int
    context: dict[str, PairEstimate] = field(default_factory=dict)
    rubric_sha256: str | None = None
    mismatch: tuple[str, ...] = ()
    baseline_meta: dict[str, Any] = field(default_factory=dict)
    candidate_meta: dict[str, Any] = field(default_factory=dict)
    # "interleaved": two arms of one A/B run; "sequential": two runs made separately.
    mode: str = "sequential"
    # Sequential runs: the conditions the gate cannot see, and how far latency intervals
    # were widened for them (a fraction of the baseline's value, each side).
    drift: tuple[str, ...] = ()
    widened: float = 0.0
    arms: tuple[str, str] | None = None    # interleaved: (baseline arm, candidate arm)

    def row(self, name: str) -> NumberRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


# ---------------------------------------------------------------------------- formatting


def unit_of(name: str) -> str:
    """``ms``, ``s``, ``usd``, ``rate`` (0..1, shown in %) or ``""`` (plain) for a metric
    name: a defined metric's own unit; for an ``extra`` guard metric, read off its name."""
    if name in METRICS:
        return METRICS[name].unit
    if name.endswith("_ms"):
        return "ms"
    if name.endswith("_usd"):
        return "usd"
    if name.endswith(("_rate", "_accuracy")):
        return "rate"
    return ""


def fmt_value(name: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    u = unit_of(name)
    if u == "ms":
        return f"{v:.0f} ms"
    if u == "s":
        return f"{v:.2f} s"
    if u == "usd":
        return f"${v:.4f}"
    if u == "rate":
        return f"{100 * v:.1f}%"
    return f"{v:.4g}"


def fmt_delta(name: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    u = unit_of(name)
    if u == "ms":
        return f"{v:+.0f} ms"
    if u == "s":
        return f"{v:+.2f} s"
    if u == "usd":
        return f"{'+' if v >= 0 else '-'}${abs(v):.4f}"
    if u == "rate":
        return f"{100 * v:+.1f} pp"
    return f"{v:+.4g}"


def fmt_interval(name: str, e: Estimate, delta: bool = False) -> str:
    f = fmt_delta if delta else fmt_value
    if e.lo is None or e.hi is None:
        return "[n/a]"
    return f"[{f(name, e.lo)}, {f(name, e.hi)}]"


# ------------------------------------------------------------------------------ decision


_COUNTED = {
    "calls": "calls", "missing_record": "calls on missing records",
    "existing_record": "calls on existing records",
    "tool_args": "calls with expected tool arguments", "timed_turns": "ok calls with timed turns",
}


def min_calls(name: str, rubric: Rubric) -> tuple[int, str]:
    """The rubric minimum a number needs and what it counts, from its definition."""
    d = METRICS.get(name)
    population = d.population if d is not None else "calls"
    if population == "missing_record":
        return rubric.min_missing_record_calls, _COUNTED[population]
    return rubric.min_calls_per_arm, _COUNTED[population]


def decide_number(name: str, rule: NumberRule, est: PairEstimate, rubric: Rubric) -> NumberRow:
    """Judge one gate number from its pair estimate (see the module docstring)."""
    direction = GATE_NUMBERS[name]
    need, what = min_calls(name, rubric)
    b, c, d = est.baseline, est.candidate, est.diff

    def row(decision: Decision, reason: str, m: float | None = None, bad: float | None = None,
            not_badly: bool | None = None) -> NumberRow:
        return NumberRow(name, direction, b, c, d, m, bad, decision, reason, not_badly)

    if b.n < need or c.n < need:
        return row("inconclusive",
                   f"too few {what}: baseline {b.n}, candidate {c.n}, the rubric needs {need}")
    if b.value is None or d.value is None or d.lo is None or d.hi is None:
        return row("inconclusive", "no value on this data")
    scale = abs(b.value) if rule.relative else 1.0
    m, bad = rule.win_margin * scale, rule.lose_badly * scale
    sign = 1.0 if direction == "higher" else -1.0
    lo, hi = sorted((sign * d.lo, sign * d.hi))       # improvement interval
    diff = f"{fmt_delta(name, d.value)} {fmt_interval(name, d, delta=True)}"
    rel = f" ({100 * rule.win_margin:g}% of baseline)" if rule.relative else ""
    rel_bad = f" ({100 * rule.lose_badly:g}% of baseline)" if rule.relative else ""
    not_badly = lo > -bad
    if hi < -bad:
        return row("loss_badly", f"{diff}: worse beyond the lose-badly threshold "
                   f"{fmt_delta(name, bad).lstrip('+')}{rel_bad} over the whole interval",
                   m, bad, not_badly)
    if lo > 0 and lo >= m:
        return row("win", f"{diff}: better by at least the margin "
                   f"{fmt_delta(name, m).lstrip('+')}{rel} over the whole interval",
                   m, bad, not_badly)
    if hi < 0 and hi <= -m:
        return row("loss", f"{diff}: worse by at least the margin "
                   f"{fmt_delta(name, m).lstrip('+')}{rel} over the whole interval",
                   m, bad, not_badly)
    if lo >= -m and hi <= m:
        return row("tie", f"{diff}: within the margin ±{fmt_delta(name, m).lstrip('+')}{rel}",
                   m, bad, not_badly)
    return row("inconclusive", f"{diff}: the interval straddles the margin "
               f"±{fmt_delta(name, m).lstrip('+')}{rel}; more calls would decide it",
               m, bad, not_badly)


def _guard(name: str, rubric: Rubric, b: Estimate, c: Estimate) -> GuardRow:
    g = rubric.guards[name]
    if c.value is None and b.value is None:
        # e.g. time to first audio on two text runs: the guard is about calls these runs
        # did not make, so it neither passes nor holds up the verdict.
        return GuardRow(name, g.max, g.min, b, c, None,
                        "recorded by neither run: does not apply", applies=False)
    if c.value is None:
        return GuardRow(name, g.max, g.min, b, c, None, "no data in the candidate run")
    over = g.max is not None and c.value > g.max
    under = g.min is not None and c.value < g.min
    if over or under:
        limit = f"max {fmt_value(name, g.max)}" if over else f"min {fmt_value(name, g.min)}"
        return GuardRow(name, g.max, g.min, b, c, True,
                        f"candidate {fmt_value(name, c.value)} breaches {limit}")
    return GuardRow(name, g.max, g.min, b, c, False,
                    f"candidate {fmt_value(name, c.value)} within limits")


def _verdict(rows: Sequence[NumberRow], guards: Sequence[GuardRow],
             wins_needed: int) -> tuple[Verdict, list[str]]:
    wins = [r for r in rows if r.decision == "win"]
    losses = [r for r in rows if r.decision in ("loss", "loss_badly")]
    decided_nonwins = [r for r in rows if r.decision in ("tie", "loss", "loss_badly")]
    fail: list[str] = []
    for r in rows:
        if r.decision == "loss_badly":
            fail.append(f"{r.name} loses badly: {r.reason}")
    for gr in guards:
        if gr.breached:
            fail.append(f"guard {gr.name}: {gr.reason}")
    if not fail and losses and len(rows) - len(decided_nonwins) < wins_needed:
        for r in losses:
            fail.append(f"{r.name} loses: {r.reason}")
        fail.append(f"at most {len(rows) - len(decided_nonwins)} of {len(rows)} numbers can "
                    f"still win; {wins_needed} needed")
    if fail:
        # Name every loss, not only the one that triggered the failure.
        named = {x.split(" ", 1)[0] for x in fail}
        fail += [f"{r.name} loses: {r.reason}" for r in losses if r.name not in named]
        return "FAIL", fail
    unsure: list[str] = []
    if len(wins) < wins_needed:
        unsure.append(f"{len(wins)} of {len(rows)} numbers win; {wins_needed} needed, "
                      "and no loss shows the candidate cannot get there")
    for r in rows:
        if r.decision == "inconclusive":
            unsure.append(f"{r.name} inconclusive: {r.reason}")
        elif r.decision != "win" and not r.not_badly:
            unsure.append(f"{r.name}: the interval does not rule out losing badly "
                          f"(threshold {fmt_delta(r.name, r.lose_badly).lstrip('+')})")
    for gr in guards:
        if gr.breached is None and gr.applies:
            unsure.append(f"guard {gr.name}: {gr.reason}")
    if unsure:
        return "INCONCLUSIVE", unsure
    ok = [f"{r.name} wins: {r.reason}" for r in wins]
    ok += [f"{r.name} {r.decision}, not losing badly: {r.reason}" for r in rows
           if r.decision != "win"]
    return "PASS", ok


def drifts(name: str) -> bool:
    """Whether a number moves with the load and time of day, not only with the agent (its
    definition's ``drifts``: latencies, and cost, whose per-minute charges follow call
    length)."""
    d = METRICS.get(name)
    return d is not None and d.drifts


def _widen(est: PairEstimate, by: float) -> PairEstimate:
    """``est`` with its difference interval widened by ``by`` x |baseline| on each side."""
    d, b = est.diff, est.baseline
    if by <= 0 or d.lo is None or d.hi is None or b.value is None:
        return est
    w = by * abs(b.value)
    return replace(est, diff=replace(d, lo=d.lo - w, hi=d.hi + w))


def evaluate(baseline: Sequence[CallOutcome], candidate: Sequence[CallOutcome],
             rubric: Rubric, *, paired: bool | None = None,
             seed_parts: Sequence[object] = (), widen: float = 0.0) -> GateResult:
    """Judge ``candidate`` against ``baseline`` without checking run metadata.

    ``paired=None`` pairs by script id when both runs replayed the same scripts. The
    bootstrap is seeded from ``rubric.seed`` (and ``seed_parts``), so the same runs and
    rubric give the same result. ``widen`` widens the difference interval of each number
    that drifts (:func:`drifts`: latencies and cost) by that fraction of the baseline's value
    on each side (drift the runs cannot show). Raises :class:`GateError` for a guard naming
    a metric neither run carries.
    """
    names = list(GATE_NUMBERS) + [n for n in CONTEXT_NUMBERS]
    seed = (rubric.seed, *seed_parts)
    est, is_paired = bootstrap_pair(baseline, candidate, names,
                                    resamples=rubric.bootstrap_resamples,
                                    confidence=rubric.confidence, seed=seed, paired=paired)
    if widen > 0:
        est = {k: _widen(v, widen) if drifts(k) else v for k, v in est.items()}
    rows = tuple(decide_number(n, rubric.numbers.rule(n), est[n], rubric) for n in GATE_NUMBERS)
    guards = []
    for g in rubric.guards:
        if g in est:
            b, c = est[g].baseline, est[g].candidate
        else:
            c = _one(candidate, g, rubric, seed, required=False)
            b = _one(baseline, g, rubric, seed, required=False)
            # A metric neither run carries is a rubric mistake, unless a run has no ok call.
            has_ok = any(o.ok for o in baseline) and any(o.ok for o in candidate)
            if c.value is None and b.value is None and has_ok:
                _one(candidate, g, rubric, seed, required=True)
        guards.append(_guard(g, rubric, b, c))
    verdict, reasons = _verdict(rows, guards, rubric.wins_needed)
    return GateResult(
        verdict=verdict, exit_code=EXIT_CODES[verdict], rows=rows, guards=tuple(guards),
        reasons=tuple(reasons), wins=sum(r.decision == "win" for r in rows),
        wins_needed=rubric.wins_needed, paired=is_paired, confidence=rubric.confidence,
        resamples=rubric.bootstrap_resamples, baseline_calls=len(baseline),
        candidate_calls=len(candidate), context={n: est[n] for n in CONTEXT_NUMBERS},
        rubric_sha256=rubric.sha256, widened=widen,
    )


def _one(outcomes: Sequence[CallOutcome], name: str, rubric: Rubric, seed: Sequence[object],
         *, required: bool) -> Estimate:
    """A guard metric on one run; a metric the run does not carry is ``n/a`` unless required."""
    try:
        return bootstrap_one(outcomes, [name], resamples=rubric.bootstrap_resamples,
                             confidence=rubric.confidence, seed=(*seed, name))[name]
    except GateError:
        if required:
            raise
        return Estimate(None, None, None, 0)


def scenario_set_id(script_ids: Iterable[str]) -> str:
    """The ``scenario_set`` a run records: sha256 of its distinct script ids, sorted, one a line."""
    return hashlib.sha256("\n".join(sorted(set(script_ids))).encode("utf-8")).hexdigest()


def check_meta(rubric_sha256: str | None, baseline_meta: Mapping[str, Any],
               candidate_meta: Mapping[str, Any]) -> list[str]:
    """Why these two runs cannot be judged together under this rubric (empty: they can)."""
    problems: list[str] = []
    for side, meta in (("baseline", baseline_meta), ("candidate", candidate_meta)):
        recorded = meta.get("rubric_sha256")
        if not recorded:
            problems.append(f"the {side} run recorded no rubric sha256")
        elif rubric_sha256 is None:
            problems.append("the rubric's sha256 is unknown (load it with load_rubric)")
        elif recorded != rubric_sha256:
            problems.append(f"the {side} run was recorded under rubric {str(recorded)[:12]}, "
                            f"not the given rubric {rubric_sha256[:12]}")
    for key, label in (("profile", "profile"), ("scenario_set", "scenario set")):
        b, c = baseline_meta.get(key), candidate_meta.get(key)
        if b != c:
            problems.append(f"{label} differs: baseline {b!r}, candidate {c!r}")
    return list(dict.fromkeys(problems))


def drift_conditions(rubric: Rubric, baseline_meta: Mapping[str, Any],
                     candidate_meta: Mapping[str, Any]) -> tuple[list[str], int]:
    """What two separately made runs cannot show the gate, as lines; and how many of them
    are named conditions (different hosts, loop-lag verdicts that differ or are both not
    trustworthy, starts hours apart)."""
    b, c = baseline_meta, candidate_meta
    lines: list[str] = []
    named = 0
    t_b, t_c = b.get("started_at"), c.get("started_at")
    if isinstance(t_b, int | float) and isinstance(t_c, int | float):
        gap_h = abs(float(t_c) - float(t_b)) / 3600.0
        when = f"started {_ago(gap_h)} apart"
        if gap_h > rubric.drift.max_hours_apart:
            named += 1
            lines.append(f"the runs {when}, more than the rubric's "
                         f"{rubric.drift.max_hours_apart:g} h (drift.max_hours_apart)")
    else:
        when = "start times not recorded"
    lines.insert(0, f"separate runs ({when}): drift between them (provider load, warm "
                    "caches, a busy machine) is inside the difference and not measured; an "
                    "interleaved A/B run (callsim run --arm) removes it")
    h_b, h_c = b.get("host"), c.get("host")
    if h_b is None or h_c is None:
        named += 1
        lines.append("a run does not record its host, so a change of machine cannot be ruled "
                     "out")
    elif h_b != h_c:
        named += 1
        lines.append(f"different hosts: baseline on {h_b}, candidate on {h_c}")
    (k_b, v_b), (k_c, v_c) = _lag_class(b), _lag_class(c)
    if k_b != k_c:
        named += 1
        lines.append(f"different loop-lag verdicts: baseline {v_b}, candidate {v_c} (the "
                     "client's own timing was not equally trustworthy in both runs)")
    elif k_b == "not trustworthy":
        # Alike, but alike in being late: the client's own delays (a saturated machine) are
        # inside both runs' latencies, and nothing says they were the same size.
        named += 1
        lines.append("neither run's own timing was trustworthy: loop lag p99 "
                     f"{b['loop_lag_p99_ms']:.0f} ms (baseline) and "
                     f"{c['loop_lag_p99_ms']:.0f} ms (candidate)")
    return lines, named


def drift_allowance(rubric: Rubric, baseline_meta: Mapping[str, Any],
                    candidate_meta: Mapping[str, Any]) -> tuple[float, list[str]]:
    """The rubric's drift policy applied to two separately made runs: the fraction of the
    baseline's value by which the intervals of numbers that drift widen on each side (0
    under ``note``), and the lines that say why. Raises :class:`GateError` under ``refuse``
    when a named condition holds."""
    notes, named = drift_conditions(rubric, baseline_meta, candidate_meta)
    policy = rubric.drift.policy
    if policy == "refuse" and named:
        raise GateError("cannot judge: the rubric's drift policy is 'refuse' and "
                        + "; ".join(notes[1:]) + " (an interleaved A/B run avoids this)")
    if policy == "note":
        return 0.0, notes
    widen = rubric.drift.widen * (1 + named)
    notes.append(f"drift policy '{policy}': latency and cost intervals widened by "
                 f"±{100 * widen:g}% of the baseline")
    return widen, notes


def _lag_class(meta: Mapping[str, Any]) -> tuple[str, str]:
    """A run's loop-lag verdict as a class (trustworthy, not trustworthy, not measured)
    and as shown."""
    from simulator.driver.looplag import DEFAULT_THRESHOLD_MS

    p99 = meta.get("loop_lag_p99_ms")
    if not isinstance(p99, int | float) or p99 != p99:
        return "not measured", "not measured"
    verdict = "trustworthy" if p99 <= DEFAULT_THRESHOLD_MS else "not trustworthy"
    return verdict, f"{verdict} (p99 {p99:.0f} ms)"


def _ago(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h"


def pair_arms(baseline: Sequence[CallOutcome], candidate: Sequence[CallOutcome]
              ) -> tuple[list[CallOutcome], list[CallOutcome], int]:
    """Keep the scripts both arms replayed (an interrupted A/B run can leave a script in one
    arm only); returns both sides and how many scripts were dropped."""
    b_ids = {o.script_id for o in baseline}
    c_ids = {o.script_id for o in candidate}
    both = b_ids & c_ids
    return ([o for o in baseline if o.script_id in both],
            [o for o in candidate if o.script_id in both], len(b_ids ^ c_ids))


def judge(baseline: Sequence[CallOutcome], candidate: Sequence[CallOutcome], rubric: Rubric,
          baseline_meta: Mapping[str, Any], candidate_meta: Mapping[str, Any],
          allow_mismatch: bool = False, *, rubric_sha256: str | None = None,
          interleaved: bool = False) -> GateResult:
    """The gate: is ``candidate`` better than ``baseline`` under ``rubric``?

    ``*_meta`` hold ``rubric_sha256``, ``profile`` and ``scenario_set`` as the runs recorded
    them (and ``host``, ``started_at``, ``loop_lag_verdict`` for the drift conditions);
    ``rubric_sha256`` defaults to the sha set by :func:`load_rubric`. ``interleaved``: the
    two are arms of one A/B run, paired by script, with no drift policy to apply; otherwise
    the rubric's ``drift`` policy applies (see :class:`~simulator.gate.rubric.Drift`).
    Raises :class:`GateError` (exit 2) when the runs were recorded under another rubric or
    their profile or scenario set differ, unless ``allow_mismatch`` (then the result lists
    the problems in ``mismatch``), and when the drift policy refuses. Returns a
    :class:`GateResult`; its ``exit_code`` is 0 pass, 1 fail, 2 cannot judge.
    """
    sha = rubric_sha256 or rubric.sha256
    problems = check_meta(sha, baseline_meta, candidate_meta)
    if problems and not allow_mismatch:
        raise GateError("cannot judge: " + "; ".join(problems)
                        + " (pass --allow-mismatch to judge anyway)")
    notes: list[str] = []
    widen = 0.0
    if interleaved:
        baseline, candidate, dropped = pair_arms(baseline, candidate)
        if dropped:
            notes.append(f"{dropped} scripts were replayed by one arm only (an interrupted "
                         "run) and are left out")
    else:
        widen, notes = drift_allowance(rubric, baseline_meta, candidate_meta)
    result = evaluate(baseline, candidate, rubric, widen=widen)
    return replace(result, rubric_sha256=sha, mismatch=tuple(problems),
                   baseline_meta=dict(baseline_meta), candidate_meta=dict(candidate_meta),
                   mode="interleaved" if interleaved else "sequential", drift=tuple(notes))
