"""What a report shows, gathered from one run store into plain JSON-ready data.

:func:`collect` reads a run directory (complete, partial or killed midway) and returns the
numbers, distributions and per-call rows the HTML report draws; :func:`report_json` is the
same data for machines. Everything here is computed from the store alone, so a report can be
made long after the run, on another machine.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from simulator.metrics.numbers import REPORTED, gate_numbers, metric_calls
from simulator.metrics.summary import summarize
from simulator.results import CallOutcome
from simulator.storage.store import RunStore

#: Injected-WER buckets (lower bound inclusive, upper exclusive) for accuracy by noise level.
WER_BUCKETS: tuple[tuple[float, float], ...] = (
    (0.0, 0.05), (0.05, 0.10), (0.10, 0.15), (0.15, 0.20), (0.20, 0.30), (0.30, 0.50),
    (0.50, float("inf")),
)
#: Event kinds the driver writes itself; every other kind is a degradation perturbation.
_DRIVER_EVENTS = frozenset({"tool_fault", "pause", "barge_in"})
_MAX_TIME_BUCKETS = 30
_META_KEYS = ("target", "transport", "model", "profile", "seed", "status", "total_calls",
              "started_at", "finished_at", "rubric_sha256", "scenario_set", "interrupted",
              "versions", "label")


def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 90, 95, 99)
                ) -> dict[str, float | None]:
    """``{"p50": .., "p95": .., "max": .., "n": ..}`` (inverted CDF, as the gate uses)."""
    qs = tuple(qs)
    out: dict[str, float | None] = {f"p{q:g}": None for q in qs}
    out["max"] = None
    out["n"] = len(values)
    if values:
        a = np.asarray(values, dtype=np.float64)
        for q, v in zip(qs, np.percentile(a, qs, method="inverted_cdf"), strict=True):
            out[f"p{q:g}"] = float(v)
        out["max"] = float(a.max())
    return out


def wer_bucket_label(lo: float, hi: float) -> str:
    return f"≥{100 * lo:g}%" if hi == float("inf") else f"{100 * lo:g}–{100 * hi:g}%"


def _group_latency(samples: list[tuple[float, str]]) -> list[dict[str, Any]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for v, key in samples:
        groups[key].append(v)
    return [{"name": k, **percentiles(v)} for k, v in sorted(groups.items())]


def _over_time(samples: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """p50/p95 of first-token latency per bucket of send time (seconds since run start)."""
    if not samples:
        return []
    ts = np.asarray([t for t, _ in samples])
    vs = np.asarray([v for _, v in samples])
    t0, t1 = float(ts.min()), float(ts.max())
    n = int(min(_MAX_TIME_BUCKETS, max(1, len(samples) // 8)))
    width = (t1 - t0) / n if t1 > t0 else 1.0
    idx = np.minimum(((ts - t0) / width).astype(int), n - 1)
    out = []
    for b in range(n):
        sel = vs[idx == b]
        if sel.size == 0:
            continue
        p50, p95 = np.percentile(sel, [50, 95], method="inverted_cdf")
        out.append({"t0": t0 + b * width, "t1": t0 + (b + 1) * width, "n": int(sel.size),
                    "p50": float(p50), "p95": float(p95)})
    return out


def _accuracy_by_wer(outcomes: Sequence[CallOutcome]) -> dict[str, Any]:
    rows = []
    for lo, hi in WER_BUCKETS:
        sel = [o for o in outcomes if o.injected_wer is not None and lo <= o.injected_wer < hi]
        total = sum(o.arg_total for o in sel)
        rows.append({
            "label": wer_bucket_label(lo, hi), "lo": lo, "hi": None if hi == float("inf") else hi,
            "calls": len(sel), "arg_total": total,
            "arg_correct": sum(o.arg_correct for o in sel),
            "accuracy": (sum(o.arg_correct for o in sel) / total) if total else None,
            "strict_rate": (sum(o.strict_pass for o in sel) / len(sel)) if sel else None,
        })
    unknown = [o for o in outcomes if o.injected_wer is None]
    total = sum(o.arg_total for o in unknown)
    return {
        "buckets": rows,
        "no_wer": {"calls": len(unknown), "arg_total": total,
                   "accuracy": (sum(o.arg_correct for o in unknown) / total) if total else None,
                   "strict_rate": (sum(o.strict_pass for o in unknown) / len(unknown))
                   if unknown else None},
    }


def _cost(outcomes: Sequence[CallOutcome]) -> dict[str, Any]:
    values = [o.cost_usd for o in outcomes]
    return {
        "values": values,
        "mean": float(np.mean(values)) if values else None,
        **{k: v for k, v in percentiles(values, (50, 95)).items() if k != "n"},
        "n": len(values),
        "estimated_share": (sum(o.cost_estimated for o in outcomes) / len(outcomes))
        if outcomes else None,
    }


def _faults(calls: list[dict[str, Any]], events: list[tuple[int, str, dict[str, Any]]]
            ) -> dict[str, Any]:
    """Tool faults injected and what happened next: retried, call ok, call strict-passed."""
    by_call = {c["idx"]: c for c in calls}
    seen: dict[tuple[int, int], dict[str, Any]] = {}
    for idx, kind, data in events:
        if kind == "tool_fault":
            seen[(idx, int(data.get("k", -1)))] = {"tool": data.get("tool"), **data}
    for c in calls:
        for tc in c["transcript"].get("tool_calls") or []:
            if tc.get("fault"):
                seen.setdefault((c["idx"], int(tc.get("k", -1))),
                                {"tool": tc.get("name"), **tc["fault"]})
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    calls_by_kind: dict[str, set[int]] = defaultdict(set)
    for (idx, k), f in sorted(seen.items()):
        kind = str(f.get("kind") or f.get("effect") or "fault")
        call = by_call.get(idx)
        kinds[kind]["count"] += 1
        calls_by_kind[kind].add(idx)
        if call is None:
            continue
        later = [tc for tc in call["transcript"].get("tool_calls") or []
                 if int(tc.get("k", -1)) > k and tc.get("name") == f.get("tool")]
        if any(not tc.get("fault") for tc in later):
            kinds[kind]["retried_ok"] += 1
        elif later:
            kinds[kind]["retried_failed"] += 1
        if f.get("effect") == "timeout":
            kinds[kind]["timed_out"] += 1
    rows = []
    for kind in sorted(kinds):
        ids = calls_by_kind[kind]
        cs = [by_call[i] for i in ids if i in by_call]
        rows.append({
            "kind": kind, "count": kinds[kind]["count"], "calls": len(ids),
            "retried_ok": kinds[kind]["retried_ok"],
            "retried_failed": kinds[kind]["retried_failed"],
            "timed_out": kinds[kind]["timed_out"],
            "calls_ok": sum(bool(c["ok"]) for c in cs),
            "calls_strict_pass": sum(bool(c["outcome"].get("strict_pass")) for c in cs),
        })
    affected = {i for i, _ in seen}
    clean = [c for c in calls if c["idx"] not in affected]
    return {
        "kinds": rows, "total": len(seen), "calls_with_faults": len(affected),
        "strict_pass_with_faults": (
            sum(bool(by_call[i]["outcome"].get("strict_pass")) for i in affected if i in by_call)
            / len(affected)) if affected else None,
        "strict_pass_without_faults": (
            sum(bool(c["outcome"].get("strict_pass")) for c in clean) / len(clean))
        if clean else None,
    }


def _call_row(c: dict[str, Any], faults: int) -> dict[str, Any]:
    o = c["outcome"]
    g = c["transcript"].get("grading") or {}
    problems = []
    if not c["ok"]:
        problems.append(f"error: {c['error'] or 'error'}")
    if o.get("fabricated"):
        problems.append("fabricated")
    if o.get("arg_total") and o.get("arg_correct") != o.get("arg_total"):
        problems.append("arg mismatch")
    if not o.get("record_exists") and not o.get("refused"):
        problems.append("no refusal")
    if o.get("record_exists") and o.get("refused"):
        problems.append("over-refusal")
    ttft = [float(x) for x in o.get("ttft_ms") or []]
    return {
        "idx": c["idx"], "call_id": c["call_id"], "script_id": c["script_id"],
        "pack": c["pack"], "intent": c["intent"], "profile": c["profile"],
        "ok": bool(c["ok"]), "error": c["error"], "warmup": bool(c["warmup"]),
        "started_s": c["started_s"], "finished_s": c["finished_s"],
        "ttft_max_ms": max(ttft) if ttft else None,
        "ttft_ms": ttft,
        "arg_total": o.get("arg_total", 0), "arg_correct": o.get("arg_correct", 0),
        "strict_pass": bool(o.get("strict_pass")), "record_exists": bool(o.get("record_exists")),
        "refused": bool(o.get("refused")), "fabricated": bool(o.get("fabricated")),
        "cost_usd": o.get("cost_usd"), "cost_estimated": bool(o.get("cost_estimated")),
        "injected_wer": o.get("injected_wer"), "faults": faults,
        "mismatches": len(g.get("mismatches") or []), "problems": problems,
    }


def collect(run_dir: str | Path, *, transcripts: bool = True) -> dict[str, Any]:
    """Everything a report shows about one run, JSON-ready.

    Works on partial runs: missing turns, failed calls and absent meta keys are shown as
    such. With ``transcripts``, ``calls_detail`` maps each call index (as a string) to its
    transcript and timed exchanges for the drill-down. Raises
    :class:`simulator.errors.StoreError` when ``run_dir`` is not a run.
    """
    store = RunStore(run_dir)
    try:
        meta = store.meta()
        summary = summarize(store)
        outcomes = store.outcomes()
        calls = list(store.calls())
        turns = list(store.turns())
        events = list(store.events())
    finally:
        store.close()
    measured = {c["idx"]: c for c in calls if not c["warmup"]}
    ttft: list[float] = []
    sched: list[float] = []
    over_time: list[tuple[float, float]] = []
    by_pack: list[tuple[float, str]] = []
    by_profile: list[tuple[float, str]] = []
    by_intent: list[tuple[float, str]] = []
    turns_by_call: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in turns:
        turns_by_call[t["call_idx"]].append(t)
        c = measured.get(t["call_idx"])
        if c is None or t["phase"] != "caller" or t["ttft_ms"] is None:
            continue
        v = float(t["ttft_ms"])
        ttft.append(v)
        if t["ttft_from_schedule_ms"] is not None:
            sched.append(float(t["ttft_from_schedule_ms"]))
        if t["sent_s"] is not None:
            over_time.append((float(t["sent_s"]), v))
        by_pack.append((v, str(c["pack"])))
        by_profile.append((v, str(c["profile"])))
        by_intent.append((v, str(c["intent"])))
    fault_count: Counter[int] = Counter(i for i, k, _ in events if k == "tool_fault")
    degradations: Counter[str] = Counter(k for _, k, _ in events if k not in _DRIVER_EVENTS)
    driver_events: Counter[str] = Counter(k for _, k, _ in events if k in _DRIVER_EVENTS)
    numbers = gate_numbers(outcomes)
    data: dict[str, Any] = {
        "run_id": Path(run_dir).name,
        "meta": {k: meta.get(k) for k in _META_KEYS},
        "summary": summary,
        "numbers": numbers,
        "numbers_calls": {k: metric_calls(outcomes, k) for k in REPORTED},
        "latency": {
            "ttft_ms": sorted(ttft),
            "ttft_pcts": percentiles(ttft),
            "ttft_from_schedule_pcts": percentiles(sched),
            "over_time": _over_time(over_time),
            "by_pack": _group_latency(by_pack),
            "by_profile": _group_latency(by_profile),
            "by_intent": _group_latency(by_intent),
        },
        "accuracy_by_wer": _accuracy_by_wer(outcomes),
        "cost": _cost(outcomes),
        "faults": _faults(calls, events),
        "degradations": dict(sorted(degradations.items())),
        "driver_events": dict(sorted(driver_events.items())),
        "calls": [_call_row(c, fault_count[c["idx"]]) for c in calls],
    }
    if transcripts:
        data["calls_detail"] = {
            str(c["idx"]): {
                "transcript": c["transcript"],
                "exchanges": [{k: v for k, v in t.items() if k not in ("call_idx", "warmup")}
                              for t in turns_by_call.get(c["idx"], [])],
                "outcome": c["outcome"],
            }
            for c in calls
        }
    return data


def outcomes_of(run_dir: str | Path) -> list[CallOutcome]:
    """The measured call outcomes of a run (what the gate judges)."""
    store = RunStore(run_dir)
    try:
        return store.outcomes()
    finally:
        store.close()


def report_json(run_dir: str | Path, *, transcripts: bool = False) -> dict[str, Any]:
    """The report's data for machines (``callsim report --json``): JSON-serialisable.

    Per-call transcripts are left out unless ``transcripts`` (they dominate the size).
    """
    data = collect(run_dir, transcripts=transcripts)
    # Round-trip so callers get exactly what json.dumps would write (tuples become lists).
    out: dict[str, Any] = json.loads(json.dumps(data, default=_default))
    return out


def _default(o: Any) -> Any:
    if isinstance(o, CallOutcome):
        return asdict(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
