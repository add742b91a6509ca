"""The whole path: generated calls replayed by the driver against the reference agent,
running as its own process on 127.0.0.1, graded into the four gate numbers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from tests.conftest import TIME_FACTOR

CALLSIM = [sys.executable, "-m", "simulator"]


def _run(url: str, tmp_path: Path, count: int, seed: int, concurrency: int = 20) -> dict:
    packs = load_packs()
    calls = generate_calls(packs, "all", count, seed)
    cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=concurrency),
                    seed=seed)
    return asyncio.run(run_load(calls, packs, cfg, tmp_path / "run"))


def test_reference_agent_default_knobs_scores_high(tmp_path: Path) -> None:
    with agent_process() as url:
        s = _run(url, tmp_path, 240, seed=11)
    assert s["calls"]["completed"] == 240 and s["calls"]["failed"] == 0
    assert s["gate"]["tool_arg_accuracy"] >= 0.95
    assert s["gate"]["refusal_rate"] >= 0.95
    assert s["gate"]["cost_per_session_usd"] > 0
    assert s["numbers"]["fabrication_rate"] == 0


def test_fabricating_agent_refuses_less(tmp_path: Path) -> None:
    with agent_process("--fabricate-rate", "0.5") as url:
        s = _run(url, tmp_path, 300, seed=12)
    rate = s["gate"]["refusal_rate"]
    assert 0.25 <= rate <= 0.75, rate
    assert s["numbers"]["fabrication_rate"] >= 0.25


@pytest.mark.timing
def test_configured_think_time_is_measured_within_a_few_ms(tmp_path: Path) -> None:
    with agent_process("--ttft-ms", "300") as url:
        s = _run(url, tmp_path, 60, seed=13, concurrency=10)
    p50 = s["ttft_ms"]["p50"]
    assert abs(p50 - 300) <= 5 * TIME_FACTOR, p50


def test_malformed_call_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "calls.jsonl"
    bad.write_text('{"schema_version": 1, "call_id": "x"}\n')
    p = subprocess.run([*CALLSIM, "run", "--target", "http://127.0.0.1:9/v1", "--calls", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:1" in lines[0] and "field" in lines[0]


def _completed(db: Path) -> dict[int, float]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT idx, finished_s FROM calls"))
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def test_sigkill_midway_keeps_completed_calls_and_resume_finishes_the_rest(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    with agent_process("--ttft-ms", "40", "--token-ms", "4") as url:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [*CALLSIM, "run", "--target", url, "--count", "80", "--concurrency", "4",
             "--seed", "5", "--runs-dir", str(runs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        deadline = time.monotonic() + 60 * TIME_FACTOR
        db = None
        while time.monotonic() < deadline:
            found = list(runs.glob("*/store.sqlite"))
            if found and len(_completed(found[0])) >= 15:
                db = found[0]
                break
            time.sleep(0.05)
        assert db is not None, "run made no progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        before = _completed(db)
        assert 15 <= len(before) < 80
        run_dir = db.parent
        rep = subprocess.run([*CALLSIM, "report", str(run_dir), "--json"], capture_output=True,
                             text=True, timeout=60)
        assert rep.returncode == 0, rep.stderr
        assert json.loads(rep.stdout)["calls"]["completed"] == len(before)
        res = subprocess.run([*CALLSIM, "run", "--target", url, "--resume", str(run_dir),
                              "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    after = _completed(db)
    assert sorted(after) == list(range(80))
    # Calls finished before the kill were kept as they were, not re-run.
    assert all(after[i] == before[i] for i in before)
    assert json.loads(res.stdout)["status"] == "complete"


@pytest.mark.slow
def test_demo_command_prints_the_four_numbers(tmp_path: Path) -> None:
    p = subprocess.run([*CALLSIM, "demo", "--count", "60", "--concurrency", "20", "--runs-dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "120"})
    assert p.returncode == 0, p.stderr
    for label in ("p95 first-token latency", "tool-call argument accuracy",
                  "refusal-on-missing-record rate", "per-session cost"):
        assert label in p.stdout
