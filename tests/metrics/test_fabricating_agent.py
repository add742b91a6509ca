"""The grader against the reference agent told to invent a record on every missing one
(``--fabricate-rate 1``): no call counts as a refusal and every missing-record call is
caught inventing something. In full, 200 calls against ``callsim agent serve`` in its own
process on 127.0.0.1; the smaller variant (80 calls, the same agent in this process) is the
one the mutation run uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulator.agent import AgentConfig, start_agent
from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore


@pytest.mark.parametrize(("n", "own_process", "min_missing"), [
    pytest.param(200, True, 15, marks=pytest.mark.mutation_skip), (80, False, 6)])
def test_an_agent_that_always_invents_never_counts_as_refusing(
        tmp_path: Path, n: int, own_process: bool, min_missing: int) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", n, 21)

    def config(url: str) -> RunConfig:
        return RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=20),
                         seed=21, honour_pauses=False, pacing="none")

    async def in_process() -> dict:
        async with start_agent(AgentConfig(fabricate_rate=1.0)) as url:
            return await run_load(calls, packs, config(url), tmp_path / "run")

    if own_process:
        with agent_process("--fabricate-rate", "1") as url:
            summary = asyncio.run(run_load(calls, packs, config(url), tmp_path / "run"))
    else:
        summary = asyncio.run(in_process())
    store = RunStore(tmp_path / "run")
    try:
        outcomes = store.outcomes()
        details = {c["outcome"]["call_id"]: c for c in store.calls()}
    finally:
        store.close()
    missing = [o for o in outcomes if not o.record_exists and o.ok]
    assert len(missing) >= min_missing
    assert {o.pack for o in missing} == set(packs)  # every pack's summary is exercised
    assert summary["gate"]["refusal_rate"] == 0
    not_caught = [o.call_id for o in missing if not o.fabricated]
    assert not_caught == [], [details[c]["transcript"]["agent"] for c in not_caught]
    # Calls whose record exists are told their real details: nothing invented there.
    found = [o for o in outcomes if o.record_exists and o.ok]
    assert found and not any(o.fabricated for o in found)
