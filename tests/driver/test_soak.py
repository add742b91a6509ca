"""Soak mode keeps long calls up across many turns, counts disconnects per call-hour, and
samples memory and file descriptors."""

from __future__ import annotations

import asyncio

from simulator.agent.process import agent_process
from simulator.driver.soak import soak
from simulator.personas import generate_calls, load_packs
from simulator.transports.base import Deadlines
from tests.hostile.test_fault_matrix import hostile


def test_long_calls_stay_up_and_breaks_are_counted() -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 40, 3)
    with agent_process() as url:
        ok = asyncio.run(soak(calls, packs, target=url, lines=3, duration_s=6, gap_s=0.1,
                              sample_every_s=1))
    d = ok.to_dict()
    assert d["disconnects"] == 0 and d["errors"] == {}
    assert d["longest_call_s"] >= 5.5          # one call chained many callers' turns
    assert d["turns"] > 3 * 10
    assert len(d["samples"]) >= 5 and d["memory_kb"]["end"] > 0 and d["fds"]["end"] > 0
    with hostile() as url:                      # half the calls break in various ways
        bad = asyncio.run(soak(calls, packs, target=url, lines=4, duration_s=6, gap_s=0.1,
                               sample_every_s=2, deadlines=Deadlines(
                                   first_byte_s=1, stall_s=1, call_s=30,
                                   max_reply_bytes=1 << 20)))
    b = bad.to_dict()
    assert b["disconnects"] >= 1 and "reset" in b["errors"]
    assert b["disconnects_per_call_hour"] > 0
