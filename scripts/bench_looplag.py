"""Benchmark: how many concurrent streaming-call tasks one core carries with loop-lag p99 < 5 ms.

Each task stands in for one streaming call's bookkeeping: it wakes about 20 times a second
on its own absolute deadline grid (like receiving a delta), stamps ``perf_counter_ns()``,
tracks the gap since its last event and counts stalls. ``LoopLagMonitor`` measures the loop
meanwhile. Concurrency doubles until p99 passes the threshold, then is bisected.

    .venv/bin/python scripts/bench_looplag.py [--uvloop] [--seconds 3] [--cpu 0]

This is timer-driven load, not socket-driven: it bounds what the driver's own bookkeeping
costs, not what parsing real network bytes costs (benchmark 2 in issue 5 does that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.driver.looplag import LoopLagMonitor  # noqa: E402
from simulator.histogram import LatencyHistogram  # noqa: E402


@dataclass
class Level:
    tasks: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_pct: float


class FakeCall:
    """The per-event bookkeeping of a streaming call, without the socket."""

    __slots__ = ("events", "last_ns", "max_gap_ns", "stalls")

    def __init__(self) -> None:
        self.events = 0
        self.last_ns = 0
        self.max_gap_ns = 0
        self.stalls = 0

    def on_delta(self, now_ns: int) -> None:
        if self.last_ns:
            gap = now_ns - self.last_ns
            if gap > self.max_gap_ns:
                self.max_gap_ns = gap
            if gap > 2_000_000_000:
                self.stalls += 1
        self.last_ns = now_ns
        self.events += 1


async def _call(fc: FakeCall, period_ns: int, phase_ns: int, stop: asyncio.Event) -> None:
    deadline = time.perf_counter_ns() + phase_ns
    while not stop.is_set():
        await asyncio.sleep(max(deadline - time.perf_counter_ns(), 0) / 1e9)
        fc.on_delta(time.perf_counter_ns())
        deadline += period_ns


async def run_level(n: int, seconds: float, rate_hz: float, warmup_s: float) -> Level:
    period_ns = round(1e9 / rate_hz)
    rnd = random.Random(n)
    stop = asyncio.Event()
    calls = [FakeCall() for _ in range(n)]
    tasks = [
        asyncio.create_task(_call(fc, period_ns, rnd.randrange(period_ns), stop)) for fc in calls
    ]
    mon = LoopLagMonitor(interval_s=0.01)
    mon.start()
    await asyncio.sleep(warmup_s)
    mon.histogram = LatencyHistogram()  # measure the steady state only
    events0 = sum(c.events for c in calls)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    events1 = sum(c.events for c in calls)
    await mon.stop()
    stop.set()
    await asyncio.gather(*tasks)
    wall = wall1 - wall0
    return Level(
        tasks=n,
        events_per_s=(events1 - events0) / wall,
        p50_ms=mon.histogram.percentile_ms(50),
        p99_ms=mon.histogram.percentile_ms(99),
        max_ms=mon.histogram.max_ms(),
        cpu_pct=100.0 * (cpu1 - cpu0) / wall,
    )


def measure(n: int, args: argparse.Namespace) -> Level:
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    level = runner(run_level(n, args.seconds, args.rate, args.warmup))
    ok = "ok" if level.p99_ms < args.threshold else "OVER"
    print(
        f"{level.tasks:>7} tasks  {level.events_per_s:>9.0f} ev/s  lag p50 {level.p50_ms:6.2f}"
        f"  p99 {level.p99_ms:7.2f}  max {level.max_ms:7.2f} ms  cpu {level.cpu_pct:5.1f}%  {ok}",
        flush=True,
    )
    return level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measured time per level")
    ap.add_argument("--warmup", type=float, default=0.5, help="unmeasured time per level")
    ap.add_argument("--rate", type=float, default=20.0, help="events per second per task")
    ap.add_argument("--threshold", type=float, default=5.0, help="loop-lag p99 limit (ms)")
    ap.add_argument("--start", type=int, default=250)
    ap.add_argument("--max", type=int, default=64_000)
    ap.add_argument("--bisect", type=int, default=4, help="bisection steps after doubling")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(
        f"# {loop_name}, {args.rate:g} events/s per task, p99 limit {args.threshold:g} ms, "
        f"{args.seconds:g} s per level, python {sys.version.split()[0]}"
    )
    good, bad = 0, None
    n = args.start
    while n <= args.max:
        if measure(n, args).p99_ms < args.threshold:
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is not None:
        for _ in range(args.bisect):
            mid = (good + bad) // 2
            if mid in (good, bad):
                break
            if measure(mid, args).p99_ms < args.threshold:
                good = mid
            else:
                bad = mid
    cap = f"{good}" if bad is not None else f">= {good} (hit --max)"
    print(
        f"# capacity ({loop_name}): {cap} concurrent tasks at {args.rate:g} events/s each "
        f"with loop-lag p99 < {args.threshold:g} ms"
    )


if __name__ == "__main__":
    main()
