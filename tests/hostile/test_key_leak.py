"""Issue 8: an API key given through the environment never reaches the run store, the
reports, the logs or error messages, even when a hostile agent echoes it back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.hostile.test_fault_matrix import hostile

CALLSIM = [sys.executable, "-m", "simulator"]
KEY = "sk-callsim-test-7f3a9c1e5b2d4f60a8e1"


def test_api_key_appears_in_no_artifact(tmp_path: Path) -> None:
    env = {**os.environ, "CALLSIM_TEST_KEY": KEY}
    runs = tmp_path / "runs"
    with hostile("--all-healthy", "--echo-auth") as url:
        run = subprocess.run(
            [*CALLSIM, "run", "--target", url, "--api-key-env", "CALLSIM_TEST_KEY",
             "--count", "12", "--concurrency", "4", "--runs-dir", str(runs), "--pacing", "none"],
            capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    run_dir = next(runs.glob("*/store.sqlite")).parent
    outputs = [run.stdout, run.stderr]
    for args in (["report", str(run_dir), "-o", str(tmp_path / "report.html")],
                 ["report", str(run_dir), "--full-json"],
                 ["export", str(run_dir), "--format", "csv"],
                 ["export", str(run_dir)],
                 ["runs", "--runs-dir", str(runs)]):
        p = subprocess.run([*CALLSIM, *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        outputs += [p.stdout, p.stderr]
    # The agent did echo it: the redaction is what kept it out.
    assert "Your key is Bearer ***" in "".join(outputs)
    for text in outputs:
        assert KEY not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "store.sqlite" for p in files)
    for f in files:
        assert KEY.encode() not in f.read_bytes(), f
