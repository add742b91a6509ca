"""Benchmark the gate's bootstrap: 2,000 resamples over N calls per arm (default 2,000).

    .venv/bin/python scripts/bench_gate.py [--calls 2000] [--resamples 2000]

Prints the wall time of the paired and the unpaired judgement (all four numbers, four
context numbers, two guards).
"""

from __future__ import annotations

import argparse
import time

from simulator.gate.decide import evaluate
from simulator.gate.rubric import load_rubric
from simulator.gate.synthetic import AgentModel, synthetic_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    rubric, _ = load_rubric("examples/rubric.yaml")
    rubric = rubric.model_copy(update={"bootstrap_resamples": args.resamples})
    t = time.perf_counter()
    base = synthetic_run(args.calls, AgentModel(), seed=1)
    cand = synthetic_run(args.calls, AgentModel(ttft_shift_ms=50), seed=2)
    turns = sum(len(o.ttft_ms) for o in base)
    print(f"generated 2 x {args.calls} calls ({turns} turns/arm) in "
          f"{time.perf_counter() - t:.2f} s")
    for paired in (True, False):
        t = time.perf_counter()
        res = evaluate(base, cand, rubric, paired=paired)
        print(f"{'paired' if paired else 'unpaired'}: {args.resamples} resamples "
              f"-> {res.verdict} in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
