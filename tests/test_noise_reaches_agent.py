"""Issue 3 acceptance: the noise reaches the agent's understanding. The same generated
calls, degraded by each named profile, replayed by the real driver against the reference
agent in its own process: tool-call argument accuracy falls strictly from ``clean`` to
``hostile`` while the injected WER the summary reports rises."""

from __future__ import annotations

import asyncio
from pathlib import Path

from simulator.agent.process import agent_process
from simulator.degradation import degrade_calls
from simulator.degradation.profile import get_profile
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.transports.base import Deadlines

PROFILES = ("clean", "quiet_phone", "typical_call", "noisy", "hostile")
SEED = 4


def test_accuracy_falls_as_injected_wer_rises(tmp_path: Path) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 150, SEED)
    acc: dict[str, float] = {}
    wer: dict[str, float] = {}
    with agent_process() as url:
        for name in PROFILES:
            degraded = degrade_calls(calls, get_profile(name), SEED)
            cfg = RunConfig(
                target=url, arrival=ArrivalSpec(kind="closed", concurrency=30), seed=SEED,
                profile=name, honour_pauses=False, deadlines=Deadlines(tool_s=0.5),
            )
            s = asyncio.run(run_load(degraded, packs, cfg, tmp_path / name))
            assert s["calls"]["failed"] == 0, (name, s["errors"])
            acc[name] = s["gate"]["tool_arg_accuracy"]
            wer[name] = s["injected_wer"]
    accs = [acc[p] for p in PROFILES]
    wers = [wer[p] for p in PROFILES]
    assert all(a > b for a, b in zip(accs, accs[1:], strict=False)), acc
    assert all(a < b for a, b in zip(wers, wers[1:], strict=False)), wer
    # Graceful, not a cliff: near-clean audio keeps the agent nearly right.
    assert acc["clean"] >= 0.95, acc
    assert acc["quiet_phone"] >= 0.8, acc
