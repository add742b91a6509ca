"""How often `callsim compare` finds a 10-point accuracy gap in one pack, and how often it
names a winner where there is none, at a 300-call run over four packs.

Seeded synthetic runs (simulator.gate.synthetic): per seed, an accurate agent against the
same agent with 10 points more argument errors on one pack only (power: is that pack routed
to the accurate run?), and an A/A pair (false winners: is any segment given a winner?).
Prints one line per minimum. The numbers behind docs/gate.md's choice of
``min_calls_per_segment: 50``.

    .venv/bin/python scripts/compare_power.py --seeds 10 --minimums 30,50,75
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from simulator.gate.compare import compare
from simulator.gate.rubric import rubric_from_dict
from simulator.gate.synthetic import AgentModel, synthetic_run

RUBRIC = {
    "confidence": 0.95, "bootstrap_resamples": 2000, "seed": 7, "min_calls_per_arm": 200,
    "min_missing_record_calls": 40,
    "numbers": {
        "p95_ttft_ms": {"relative": True, "win_margin": 0.05, "lose_badly": 0.20},
        "tool_arg_accuracy": {"win_margin": 0.01, "lose_badly": 0.05},
        "refusal_rate": {"win_margin": 0.03, "lose_badly": 0.10},
        "cost_per_session_usd": {"relative": True, "win_margin": 0.05, "lose_badly": 0.25},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--minimums", default="30,50,75")
    ap.add_argument("--pack", default="clinic")
    args = ap.parse_args()
    accurate = AgentModel(arg_error_rate=0.0)
    sloppy = replace(accurate, arg_error_rate=0.10)
    print(f"{args.calls} calls per run, 4 packs, 10-point accuracy gap on '{args.pack}', "
          f"{args.seeds} seeds")
    for minimum in (int(x) for x in args.minimums.split(",")):
        rubric = rubric_from_dict({**RUBRIC, "min_calls_per_segment": minimum})
        found = tested = false_winners = 0
        t0 = time.perf_counter()
        for s in range(args.seeds):
            a = synthetic_run(args.calls, accurate, seed=(s, "a"), scripts_seed=s)
            b_bad = synthetic_run(args.calls, sloppy, seed=(s, "b"), scripts_seed=s)
            b_ok = synthetic_run(args.calls, accurate, seed=(s, "b"), scripts_seed=s)
            b = [x if x.pack == args.pack else y for x, y in zip(b_bad, b_ok, strict=True)]
            route = compare({"accurate": a, "sloppy": b}, rubric).route("pack", args.pack)
            tested += route.status != "too few"
            found += route.winner == "accurate"
            aa = compare({"A": a, "A again": b_ok}, rubric)
            false_winners += any(r.winner for r in aa.routes)
        dt = time.perf_counter() - t0
        print(f"min_calls_per_segment {minimum:3d}: gap pack tested in {tested}/{args.seeds}, "
              f"routed to the accurate run in {found}/{args.seeds}; A/A pairs with any "
              f"winner: {false_winners}/{args.seeds} ({dt:.0f} s)")


if __name__ == "__main__":
    main()
