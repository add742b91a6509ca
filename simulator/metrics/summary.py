"""Run summary: the four gate numbers and the timing truth of a (possibly partial) run.

Reads only the run store, so it works on a run that was killed midway. Latency percentiles
come from the stored per-turn rows; the loop-lag verdict says whether they can be trusted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from simulator.histogram import LatencyHistogram
from simulator.metrics.numbers import GATE_METRICS, METRICS, gate_numbers, tools_not_observed
from simulator.storage.store import RunStore

GATE_KEYS = GATE_METRICS

#: Per-turn audio timings summarised beside first-token latency (empty on text runs).
AUDIO_TIMINGS = ("ttfa_ms", "first_voiced_ms", "barge_in_reaction_ms", "agent_speech_s")


#: Numbers that need the agent's tool calls (unknown when it keeps its own backend).
_TOOL_NUMBERS = ("tool_arg_accuracy", "strict_pass_rate")


def _caller_voice(meta: dict[str, Any]) -> str | None:
    """Which voice spoke for the callers (audio runs with TTS callers; None otherwise)."""
    config = meta.get("config") or {}
    if meta.get("carries") != "audio":
        return None
    if config.get("caller_audio") != "tts":
        return "synthetic tones"
    from simulator.audio.caller_audio import describe_caller_voice

    return describe_caller_voice(str(config.get("caller_voice") or "espeak"))


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    a = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99], method="inverted_cdf")
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()),
            "n": int(a.size)}


def _load(caller_turns: int, spans: list[tuple[float, float]], meta: dict[str, Any]
          ) -> dict[str, Any]:
    """What load the run put on the agent: caller turns per second over the measured calls'
    span, and the calls in flight on average over it (total call time / span), with the
    pacing that set the turn rate (``speech``: callers paced like people; ``none``: back to
    back, several times the turn rate of as many real calls)."""
    pacing = (meta.get("config") or {}).get("pacing")
    if meta.get("carries") == "audio":
        pacing = "audio"  # the line itself paces: turns take as long as they are spoken
    span = (max(f for _, f in spans) - min(s for s, _ in spans)) if spans else 0.0
    if span <= 0:
        return {"turns_per_s": None, "concurrent_calls_mean": None, "pacing": pacing,
                "caller_turns": caller_turns, "span_s": span}
    busy = sum(f - s for s, f in spans)
    return {"turns_per_s": caller_turns / span, "concurrent_calls_mean": busy / span,
            "pacing": pacing, "caller_turns": caller_turns, "span_s": span}


def summarize(store: RunStore) -> dict[str, Any]:
    """Everything ``callsim run`` prints and ``summary.json`` holds."""
    meta = store.meta()
    outcomes = store.outcomes()
    numbers = gate_numbers(outcomes)
    ttft, sched, conn, lags, dispatch = [], [], [], [], []
    audio: dict[str, list[float]] = {k: [] for k in AUDIO_TIMINGS}
    stalls = 0
    caller_turns = 0
    for t in store.turns():
        if t["warmup"]:
            continue
        stalls += t["stalls"] or 0
        if t["phase"] == "caller":
            caller_turns += 1
            for k in AUDIO_TIMINGS:
                if t[k] is not None:
                    audio[k].append(t[k])
        if t["phase"] == "caller" and t["ttft_ms"] is not None:
            ttft.append(t["ttft_ms"])
            lags.append(t["loop_lag_ms"] or 0.0)
            if t["ttft_from_schedule_ms"] is not None:
                sched.append(t["ttft_from_schedule_ms"])
        if t["conn_setup_ms"]:
            conn.append(t["conn_setup_ms"])
    errors: Counter[str] = Counter()
    spans: list[tuple[float, float]] = []
    jitter = LatencyHistogram()
    for c in store.calls():
        counts = ((c.get("transcript") or {}).get("audio") or {}).get("send_jitter_us_counts")
        if counts and not c["warmup"]:
            jitter.record_value_counts(counts)
        if not c["warmup"] and c["dispatch_delay_ms"] is not None:
            dispatch.append(max(0.0, c["dispatch_delay_ms"]))
        if not c["warmup"] and c["started_s"] is not None and c["finished_s"] is not None:
            spans.append((c["started_s"], c["finished_s"]))
        if not c["ok"]:
            errors[c["error"] or "error"] += 1
    wers = [o.injected_wer for o in outcomes if o.injected_wer is not None]
    every = store.outcomes(include_flagged=True)
    flagged = sum(1 for o in every if o.caller_invented)
    caller_cost = sum(o.caller_cost_usd for o in every)
    caller_tokens = sum(o.caller_prompt_tokens + o.caller_completion_tokens for o in every)
    total = meta.get("total_calls")
    completed = len(store.completed_indices())
    return {
        "run_id": store.run_id,
        "status": meta.get("status"),
        "target": meta.get("target"),
        "profile": meta.get("profile"),
        "calls": {"total": total, "completed": completed, "measured": len(outcomes),
                  "ok": sum(o.ok for o in outcomes),
                  "failed": sum(not o.ok for o in outcomes),
                  "caller_invented": flagged},
        "caller_llm": ({"cost_usd": caller_cost, "tokens": int(caller_tokens)}
                       if caller_tokens or flagged else None),
        "gate": {k: numbers.get(k) for k in GATE_KEYS},
        "numbers": numbers,
        "ttft_ms": _pcts(ttft),
        "ttft_from_schedule_ms": _pcts(sched),
        "audio": {k: _pcts(v) for k, v in audio.items()},
        "dispatch_delay_ms": _pcts(dispatch),
        # Audio runs: every caller frame's send time minus its 20 ms deadline.
        "send_jitter_ms": ({"frames": jitter.count, "p50": jitter.percentile_ms(50),
                            "p99": jitter.percentile_ms(99), "max": jitter.max_ms()}
                           if jitter.count else None),
        "connection_setup_ms": _pcts(conn),
        "stalls": stalls,
        "load": _load(caller_turns, spans, meta),
        "errors": dict(errors),
        "injected_wer": float(np.mean(wers)) if wers else None,
        "loop_lag": {"p99_ms": meta.get("loop_lag_p99_ms"),
                     "verdict": meta.get("loop_lag_verdict"),
                     "at_samples_p99_ms": _pcts(lags)["p99"]},
        "caller_voice": _caller_voice(meta),
        # How the tool backend matched lookups ("exact" for runs stored before the option).
        "lookup_match": meta.get("lookup_match") or "exact",
        # The run's time zero (every *_s offset counts from it) on this machine's monotonic
        # clock, in ns: lines its timings up with another process's log on the same machine
        # (None for runs on Ray workers, whose clocks are their own).
        "t0_monotonic_ns": meta.get("t0_monotonic_ns"),
        # The agent called tools over the relay on no call: its tool accuracy is unknown.
        "tools_not_observed": tools_not_observed(outcomes),
        "cost_estimated_share": (sum(o.cost_estimated for o in outcomes) / len(outcomes)
                                 if outcomes else None),
        # Per call: what refusal / fabrication were graded from ("text" the protocol carried,
        # "audio" the listener heard, "mixed", "none"), and how the cost was found.
        "graded_from": dict(Counter(o.graded_from for o in outcomes)),
        "cost_basis": dict(Counter(o.cost_basis for o in outcomes)),
        "turn_taking": {"talk_overs": sum(o.talk_overs for o in outcomes),
                        "clears": sum(o.clears for o in outcomes),
                        "reprompts": sum(o.reprompts for o in outcomes)},
        # An interleaved A/B run: the four numbers of each arm (the rest pools every arm).
        "arms": {a: {"calls": len(arm_out),
                     "gate": {k: gate_numbers(arm_out).get(k) for k in GATE_KEYS}}
                 for a in meta.get("arms") or ()
                 for arm_out in [store.outcomes(arm=a)]},
    }


def render_summary(summary: dict[str, Any]) -> Any:
    """A rich renderable of the summary: the four numbers first, then timing truth."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def f(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    t = Table(title=f"callsim run {summary['run_id']} ({summary['status']})", show_lines=False)
    t.add_column("number")
    t.add_column("value", justify="right")
    n = summary["numbers"]
    shapes = {"ms": (".1f", "", " ms"), "usd": (".5f", "$", ""), "rate": (".3f", "", "")}
    for name in ("p95_ttft_ms", "tool_arg_accuracy", "refusal_rate", "cost_per_session_usd",
                 "strict_pass_rate", "fabrication_rate", "over_refusal_rate"):
        d = METRICS[name]
        fmt, pre, post = shapes.get(d.unit, (".3f", "", ""))
        v = n.get(name)
        shown = "—" if v is None else f"{pre}{v:{fmt}}{post}"
        if v is None and name in _TOOL_NUMBERS and summary.get("tools_not_observed"):
            shown = "not observed"
        t.add_row(d.label, shown, style=None if d.gate else "dim")
    tt, ds, ts = summary["ttft_ms"], summary["dispatch_delay_ms"], summary["ttft_from_schedule_ms"]
    t.add_row("ttft p50 / p99", f"{f(tt['p50'], '.1f')} / {f(tt['p99'], '.1f')} ms", style="dim")
    if ds["n"]:
        t.add_row("dispatch delay p50 / p99", f"{f(ds['p50'], '.1f')} / {f(ds['p99'], '.1f')} ms",
                  style="dim")
        t.add_row("ttft from schedule p95", f(ts["p95"], ".1f") + " ms", style="dim")
    for k, p in summary.get("audio", {}).items():
        if p["n"]:
            unit = " s" if k.endswith("_s") else " ms"
            t.add_row(f"{METRICS['p95_' + k].label[4:]} p50 / p95",
                      f"{f(p['p50'], '.1f')} / {f(p['p95'], '.1f')}{unit}", style="dim")
    sj = summary.get("send_jitter_ms")
    if sj:
        t.add_row("caller frame send jitter p50 / p99 / max",
                  f"{sj['p50']:.2f} / {sj['p99']:.2f} / {sj['max']:.1f} ms", style="dim")
    if summary.get("injected_wer") is not None:
        t.add_row("injected WER (mean)", f(summary["injected_wer"], ".3f"), style="dim")
    ld = summary.get("load") or {}
    if ld.get("turns_per_s") is not None:
        t.add_row("caller turns/s at calls in flight (mean)",
                  f"{ld['turns_per_s']:.1f} at {ld['concurrent_calls_mean']:.1f}"
                  + (f" (pacing {ld['pacing']})" if ld.get("pacing") else ""), style="dim")
    if summary.get("caller_voice"):
        t.add_row("caller voice", summary["caller_voice"], style="dim")
    if summary.get("lookup_match") == "sounds-like":
        t.add_row("tool lookups match names and streets", "by sound", style="dim")
    c = summary["calls"]
    t.add_row("calls ok / failed", f"{c['ok']} / {c['failed']}", style="dim")
    graded = summary.get("graded_from") or {}
    if set(graded) - {"text"}:
        t.add_row("agent words graded from", ", ".join(f"{k} {v}" for k, v in
                                                        sorted(graded.items())), style="dim")
    basis = summary.get("cost_basis") or {}
    if basis.get("per_minute"):
        t.add_row("cost estimated per minute (no usage reported)",
                  f"{basis['per_minute']} calls", style="dim")
    tt_ = summary.get("turn_taking") or {}
    if any(tt_.values()):
        t.add_row("talk-overs / clears / re-prompts",
                  f"{tt_['talk_overs']} / {tt_['clears']} / {tt_['reprompts']}", style="dim")
    lines: list[Any] = [t]
    if summary.get("arms"):
        at = Table(title="per arm (judge with: callsim gate RUN --arms A,B)")
        for col in ("arm", "calls", "p95 ttft", "tool args", "refusal", "cost"):
            at.add_column(col, justify="left" if col == "arm" else "right")
        for name, a in summary["arms"].items():
            ag = a["gate"]
            at.add_row(name, str(a["calls"]), f(ag["p95_ttft_ms"], ".1f") + " ms",
                       f(ag["tool_arg_accuracy"], ".3f"), f(ag["refusal_rate"], ".3f"),
                       "$" + f(ag["cost_per_session_usd"], ".5f"))
        lines.append(at)
    if summary["errors"]:
        lines.append(Text("errors: " + ", ".join(f"{k}={v}" for k, v in summary["errors"].items()),
                          style="yellow"))
    verdict = summary["loop_lag"].get("verdict")
    if verdict:
        lines.append(Text(verdict, style="green" if "trust" in verdict and "not" not in verdict
                          else "red"))
    return Group(*lines)
