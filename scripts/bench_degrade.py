"""Generation + text degradation throughput on one core (issue 3 target: >= 2,000 calls/s).

Measures the real path: ``generate_calls(load_packs(), "all", N, seed)`` (the persona
generator), then ``degrade_calls(calls, get_profile(p), seed)`` for each profile, with the
process pinned to one CPU. Prints, per profile, generation alone, degradation alone and
the two together (N / (t_gen + t_deg)) in calls/s. One-off per-process costs (phonetic
index, per-profile WER calibration, Faker start-up) are paid in a warm-up and printed
apart. Each figure is the best of ``--repeat`` runs, by wall clock and by process CPU time
(CPU time is less disturbed when other processes share the core).

    python scripts/bench_degrade.py [--calls 4000] [--profile all|NAME] [--repeat 3]
                                    [--cpu 0] [--check]

Exit 0, or with ``--check`` 1 when a profile's combined CPU-time figure is below 2,000.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from simulator.callscript import CallScript
from simulator.degradation import NoiseProfile, degrade_calls, get_profile
from simulator.degradation.asr_noise import calibrated_p_word
from simulator.degradation.phonetics import get_index
from simulator.personas import generate_calls, load_packs

PROFILES = ("clean", "quiet_phone", "typical_call", "noisy", "hostile", "car", "cafe")
TARGET = 2000.0
T = TypeVar("T")


def _timed(fn: Callable[[], T], repeat: int) -> tuple[T, float, float]:
    """(result of the last run, best wall seconds, best CPU seconds) over ``repeat`` runs."""
    best_wall = best_cpu = float("inf")
    out: T
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return out, best_wall, best_cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--profile", default="all", help="a profile name, or 'all' (default)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 if combined CPU-time throughput < {TARGET:,.0f} calls/s")
    args = ap.parse_args()

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    pinned = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    profiles = PROFILES if args.profile == "all" else (args.profile,)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"python {sys.version.split()[0]}; pinned to CPU {pinned}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{args.calls} calls, best of {args.repeat}")

    t0 = time.perf_counter()
    packs = load_packs()
    generate_calls(packs, "all", 50, args.seed + 1)  # Faker providers, renderer caches
    t_warm_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    get_index()
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = {name: get_profile(name) for name in profiles}
    for p in loaded.values():
        calibrated_p_word(p.asr)
    t_cal = time.perf_counter() - t0
    print(f"once per process: packs + generator warm-up {t_warm_gen * 1000:.0f} ms, "
          f"phonetic index {t_index * 1000:.0f} ms, "
          f"WER calibration {t_cal * 1000:.0f} ms for {len(profiles)} profile(s)")

    calls, g_wall, g_cpu = _timed(
        lambda: generate_calls(packs, "all", args.calls, args.seed), args.repeat)
    n = len(calls)
    print(f"generation alone: {n / g_wall:,.0f} calls/s wall, {n / g_cpu:,.0f} calls/s CPU")
    print(f"{'profile':>13} | {'degrade wall':>12} {'degrade CPU':>12} | "
          f"{'gen+deg wall':>12} {'gen+deg CPU':>12}")
    worst = float("inf")
    for name, profile in loaded.items():
        degrade_calls(calls[:50], profile, args.seed)  # first-use caches of this profile
        def run(p: NoiseProfile = profile) -> list[CallScript]:
            return degrade_calls(calls, p, args.seed)

        _, d_wall, d_cpu = _timed(run, args.repeat)
        both_cpu = n / (g_cpu + d_cpu)
        worst = min(worst, both_cpu)
        print(f"{name:>13} | {n / d_wall:>12,.0f} {n / d_cpu:>12,.0f} | "
              f"{n / (g_wall + d_wall):>12,.0f} {both_cpu:>12,.0f}")
    ok = worst >= TARGET
    print(f"slowest profile, generation+degradation: {worst:,.0f} calls/s CPU "
          f"({'meets' if ok else 'BELOW'} the {TARGET:,.0f} calls/s target)")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
