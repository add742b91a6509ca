"""Where finished calls are graded (``--grading``): in a grading process the grades are the
ones the run's loop would give, and a grading process that dies does not lose a call."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path

from simulator.agent.process import agent_process
from simulator.agent_profile import Prices
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.grader import Grader
from simulator.driver.runner import RunConfig, run_load
from simulator.metrics.grading import grade_call
from simulator.personas import generate_calls, load_packs

GRADED = ("ok", "arg_total", "arg_correct", "strict_pass", "refused", "fabricated")


def _graded_rows(run_dir: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(run_dir / "store.sqlite")
    rows = db.execute("SELECT idx, outcome, json_extract(transcript, '$.grading') FROM calls "
                      "ORDER BY idx").fetchall()
    db.close()
    return [(i, tuple(json.loads(o)[k] for k in GRADED), g)
            for i, o, g in rows]


def test_grades_from_the_grading_process_are_the_loops(tmp_path: Path) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 60, 21)
    out = {}
    with agent_process() as url:
        for mode in ("loop", "process"):
            cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=10),
                            seed=21, pacing="none", grading=mode)
            s = asyncio.run(run_load(calls, packs, cfg, tmp_path / mode))
            assert s["calls"]["completed"] == 60 and s["calls"]["failed"] == 0
            out[mode] = (_graded_rows(tmp_path / mode), s["gate"])
    loop_rows, loop_gate = out["loop"]
    proc_rows, proc_gate = out["process"]
    assert proc_rows == loop_rows
    # The calls hold what grading reads: tool arguments and refusals.
    assert sum(r[1][1] for r in loop_rows) >= 30
    assert any(r[1][4] for r in loop_rows)
    for k in ("tool_arg_accuracy", "refusal_rate"):  # cost and latency are the run's timing
        assert proc_gate[k] == loop_gate[k]


def test_a_grading_process_that_dies_is_replaced_by_the_loop_and_the_grade_is_the_same(
) -> None:
    script = next(c for c in generate_calls(load_packs(), "all", 20, 4) if not c.record_exists)
    transcript = {"agent": ["I couldn't find a record matching that phone number."],
                  "tool_calls": [], "usage": {"prompt_tokens": 120, "completion_tokens": 30},
                  "duration_s": 42.0}
    kw = dict(call_id="000001", profile="none", ok=True, error=None, ttft_ms=(210.0,),
              prices=Prices(), write_tools=set())

    async def go() -> tuple[object, object, object]:
        g = Grader("process", 1)
        await g.start()
        try:
            pid = g.pid()
            assert pid is not None and pid != os.getpid()
            first = await g.grade(script, transcript, **kw)
            os.kill(pid, signal.SIGKILL)
            second = await g.grade(script, transcript, **kw)
            return first, second, g.where
        finally:
            await g.close()

    first, second, where = asyncio.run(go())
    inline = grade_call(script, transcript, **kw)
    assert first == inline and second == inline
    assert inline[0].refused and not inline[0].fabricated
    assert where == "loop"


def test_auto_grades_in_a_process_only_for_many_calls_in_flight() -> None:
    assert Grader("auto", 1000).in_process and not Grader("auto", 10).in_process
    assert Grader("process", 1).in_process and not Grader("loop", 1000).in_process


def test_the_grading_process_only_takes_cpu_time_the_loop_leaves() -> None:
    # SCHED_IDLE: the run's loop, waking for its next frame, takes the core from the
    # grader at once (a nice-19 grader may first finish its time slice).
    async def go() -> int:
        g = Grader("process", 1)
        await g.start()
        try:
            pid = g.pid()
            assert pid is not None
            for _ in range(100):  # the child sets its policy as it starts
                if os.sched_getscheduler(pid) == os.SCHED_IDLE:
                    break
                await asyncio.sleep(0.05)
            return os.sched_getscheduler(pid)
        finally:
            await g.close()

    assert asyncio.run(go()) == os.SCHED_IDLE
