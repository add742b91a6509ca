"""The grader against the reference agent told to invent a record on every missing one
(`callsim agent serve --fabricate-rate 1`, its own process on 127.0.0.1): no call counts
as a refusal and every missing-record call is caught inventing something."""

from __future__ import annotations

import asyncio
from pathlib import Path

from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore


def test_an_agent_that_always_invents_never_counts_as_refusing(tmp_path: Path) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 200, 21)
    with agent_process("--fabricate-rate", "1") as url:
        cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=20),
                        seed=21, honour_pauses=False)
        summary = asyncio.run(run_load(calls, packs, cfg, tmp_path / "run"))
    store = RunStore(tmp_path / "run")
    try:
        outcomes = store.outcomes()
        details = {c["outcome"]["call_id"]: c for c in store.calls()}
    finally:
        store.close()
    missing = [o for o in outcomes if not o.record_exists and o.ok]
    assert len(missing) >= 15
    assert {o.pack for o in missing} == set(packs)  # every pack's summary is exercised
    assert summary["gate"]["refusal_rate"] == 0
    not_caught = [o.call_id for o in missing if not o.fabricated]
    assert not_caught == [], [details[c]["transcript"]["agent"] for c in not_caught]
    # Calls whose record exists are told their real details: nothing invented there.
    found = [o for o in outcomes if o.record_exists and o.ok]
    assert found and not any(o.fabricated for o in found)
