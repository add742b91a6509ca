"""Issue 5: when the agent is slower than the arrival rate, the run shows dispatch delay and
latency-from-schedule separately — queueing is visible, not hidden by starting the clock
at dispatch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.metrics.summary import render_summary
from simulator.personas import generate_calls, load_packs


def test_slow_agent_shows_dispatch_delay_and_latency_from_schedule(tmp_path: Path) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 40, 17)
    cfg = RunConfig(target="", arrival=ArrivalSpec(kind="constant", rate=20.0), count=40,
                    seed=17, max_active=4, honour_pauses=False)
    with agent_process("--ttft-ms", "150") as url:
        cfg = RunConfig(**{**cfg.__dict__, "target": url})
        s = asyncio.run(run_load(calls, packs, cfg, tmp_path / "run"))
    ttft, sched, dispatch = s["ttft_ms"], s["ttft_from_schedule_ms"], s["dispatch_delay_ms"]
    # Each call's own turns still start ~150 ms before their first token...
    assert 140 <= ttft["p50"] <= 400
    # ...but calls waited for a free slot: 40 calls in 2 s into 4 slots of ~1 s calls.
    assert dispatch["p95"] > 1000
    assert sched["p95"] > ttft["p95"] + 1000
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_summary(s))
    text = console.export_text()
    assert "dispatch delay" in text and "ttft from schedule" in text
