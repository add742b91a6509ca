"""What grading one call costs: the refusal and invented-detail detectors over the stored
transcripts of a run against the reference agent (they run in the load driver's event loop
when a call ends, so their time is time the loop is not reading bytes).

    python scripts/bench_grading.py [--calls 120] [--seed 3] [--fabricate-rate 0.3]

Makes the run in a temporary directory (reference agent in its own process, typical_call
noise), then grades every stored call once in this process, caches cold, and prints the
milliseconds per call (mean, p50, p95) and how many calls were read as refusing and as
inventing a detail.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.agent.process import agent_process  # noqa: E402
from simulator.degradation import degrade_calls, get_profile  # noqa: E402
from simulator.driver.arrivals import ArrivalSpec  # noqa: E402
from simulator.driver.runner import RunConfig, run_load  # noqa: E402
from simulator.metrics import details  # noqa: E402
from simulator.metrics.details import fabricated_details  # noqa: E402
from simulator.metrics.grading import detail_sources  # noqa: E402
from simulator.metrics.refusal import says_not_found  # noqa: E402
from simulator.personas import generate_calls, load_packs  # noqa: E402
from simulator.storage.store import RunStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=120)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--fabricate-rate", default="0.3")
    args = ap.parse_args()
    packs = load_packs()
    calls = list(degrade_calls(generate_calls(packs, "all", args.calls, args.seed),
                               get_profile("typical_call"), args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        with agent_process("--fabricate-rate", args.fabricate_rate) as url:
            cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=20),
                            seed=args.seed, honour_pauses=False)
            asyncio.run(run_load(calls, packs, cfg, Path(tmp) / "run"))
        store = RunStore(Path(tmp) / "run")
        transcripts = [c["transcript"] for c in store.calls()]
        store.close()
    # The run graded its calls in this process: start again from cold caches, as a run does.
    for cached in (details._extract, details._source_facts, says_not_found):
        cached.cache_clear()
    times: list[float] = []
    refused = invented = 0
    for tr in transcripts:
        agent = [t for t in tr.get("agent", []) if t]
        t0 = time.perf_counter()
        fab = fabricated_details(agent, detail_sources(tr))
        ref = any(says_not_found(t) for t in agent)
        times.append((time.perf_counter() - t0) * 1000)
        refused += ref
        invented += bool(fab)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"grading {len(times)} calls: mean {statistics.fmean(times):.1f} ms, "
          f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms per call; "
          f"{refused} refusing, {invented} inventing a detail")


if __name__ == "__main__":
    main()
