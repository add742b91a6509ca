"""Text degradation throughput on one core: calls per second for the corpus generator,
the degradation layer alone, and both together (target: >= 2,000 calls/s together).

    python scripts/bench_degrade.py [--calls 4000] [--profile typical_call]
"""

from __future__ import annotations

import argparse
import time

from simulator.degradation import degrade_calls, get_profile
from simulator.degradation.asr import calibrated_p_word
from simulator.degradation.corpus import sample_calls
from simulator.degradation.phonetics import get_index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--profile", default="typical_call")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    t0 = time.perf_counter()
    get_index()
    t_index = time.perf_counter() - t0
    profiles = [args.profile] if args.profile != "all" else [
        "clean", "quiet_phone", "typical_call", "noisy", "hostile"]
    t0 = time.perf_counter()
    for name in profiles:
        calibrated_p_word(get_profile(name).asr)
    t_cal = time.perf_counter() - t0
    print(f"phonetic index build: {t_index * 1000:.0f} ms (once per process)")
    print(f"WER calibration: {t_cal * 1000:.0f} ms for {len(profiles)} profile(s) (cached)")

    t0 = time.perf_counter()
    scripts = sample_calls(args.calls, args.seed)
    t_gen = time.perf_counter() - t0
    print(f"corpus generation: {args.calls / t_gen:,.0f} calls/s (built-in corpus, "
          "not the persona generator)")
    for name in profiles:
        profile = get_profile(name)
        t0 = time.perf_counter()
        out = degrade_calls(scripts, profile, args.seed)
        t_deg = time.perf_counter() - t0
        t0 = time.perf_counter()
        nbytes = sum(len(c.to_json()) for c in out)
        t_json = time.perf_counter() - t0
        both = args.calls / (t_gen + t_deg)
        print(f"{name:>13}: degradation {args.calls / t_deg:,.0f} calls/s; "
              f"generation+degradation {both:,.0f} calls/s; "
              f"to_json {args.calls / t_json:,.0f} calls/s ({nbytes / args.calls:,.0f} B/call)")


if __name__ == "__main__":
    main()
