"""Issue 8: every way an agent can fail, in one run of 200 calls. Each call lands in its
error category, no traceback is printed, the run finishes, and healthy calls' latencies are
those of a run without faults."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.storage.store import RunStore
from tests.conftest import TIME_FACTOR
from tests.hostile.server import FAULTS, fault_for

CALLSIM = [sys.executable, "-m", "simulator"]


@contextlib.contextmanager
def hostile(*args: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.server", *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def _run(url: str, runs: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    p = subprocess.run(
        [*CALLSIM, "run", "--target", url, "--count", "200", "--rate", "25/s",
         "--arrival", "constant",
         "--seed", "3", "--runs-dir", str(runs), "--first-byte-timeout", "1.5",
         "--stall-timeout", "1.5", "--call-timeout", "20", "--max-reply-mb", "1", "--json"],
        capture_output=True, text=True, timeout=300 * TIME_FACTOR,
    )
    run_dir = next(runs.glob("*/store.sqlite")).parent
    return p, run_dir


def _healthy_p95(run_dir: Path) -> float:
    import numpy as np

    store = RunStore(run_dir)
    vals = [t for o in store.outcomes() if fault_for(o.call_id) == "healthy" for t in o.ttft_ms]
    store.close()
    return float(np.percentile(vals, 95))


@pytest.mark.timing
def test_every_fault_lands_in_its_category(tmp_path: Path) -> None:
    with hostile() as url:
        p, run_dir = _run(url, tmp_path / "faulty")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    summary = json.loads(p.stdout)
    assert summary["status"] == "complete" and summary["calls"]["completed"] == 200
    store = RunStore(run_dir)
    outcomes = store.outcomes()
    store.close()
    wrong = []
    for o in outcomes:
        fault = fault_for(o.call_id)
        if o.error != FAULTS[fault]:
            wrong.append((o.call_id, fault, o.error))
    assert not wrong, wrong[:10]

    with hostile("--all-healthy") as url:
        p2, clean_dir = _run(url, tmp_path / "clean")
    assert p2.returncode == 0, p2.stderr
    faulty_p95, clean_p95 = _healthy_p95(run_dir), _healthy_p95(clean_dir)
    assert abs(faulty_p95 - clean_p95) <= 2.0 * TIME_FACTOR, (faulty_p95, clean_p95)
