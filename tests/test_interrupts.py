"""Issue 8 crash safety: SIGTERM and Ctrl-C (SIGINT) in the middle of a run stop arrivals,
let active calls finish, write the summary, say how to resume; --resume then completes it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.agent.process import agent_process
from tests.conftest import TIME_FACTOR

CALLSIM = [sys.executable, "-m", "simulator"]


def _completed(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            return int(con.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_signal_stops_cleanly_and_resume_completes(sig: signal.Signals, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with agent_process("--ttft-ms", "40", "--token-ms", "4") as url:
        proc = subprocess.Popen(
            [*CALLSIM, "run", "--target", url, "--count", "80", "--concurrency", "4",
             "--seed", "9", "--runs-dir", str(runs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60 * TIME_FACTOR
        db = None
        while time.monotonic() < deadline:
            found = list(runs.glob("*/store.sqlite"))
            if found and _completed(found[0]) >= 10:
                db = found[0]
                break
            time.sleep(0.05)
        assert db is not None
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60 * TIME_FACTOR)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "--resume" in err  # the user is told how to finish the run
        summary = json.loads((db.parent / "summary.json").read_text())
        assert summary["status"] == "partial"
        done = summary["calls"]["completed"]
        assert 10 <= done < 80 and done == _completed(db)
        res = subprocess.run([*CALLSIM, "run", "--target", url, "--resume", str(db.parent),
                              "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["calls"]["completed"] == 80
