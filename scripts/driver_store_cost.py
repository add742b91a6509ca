"""How long the runner blocks its event loop per finished call in ``RunStore.record_call``.

The runner commits each call synchronously on the loop (one SQLite WAL transaction): every
millisecond here is loop lag for every other call in flight. This writes ``n`` realistic
calls (6 caller turns, transcript, outcome) into a fresh store and reports the duration of
each commit (p50/p99/max). Used by ``scripts/bench_driver.py store``; not a benchmark itself.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.results import CallOutcome, CallRecord, turn_from_row  # noqa: E402
from simulator.storage.store import RunStore  # noqa: E402


def _call(i: int) -> tuple[CallOutcome, list[dict[str, Any]], dict[str, Any]]:
    turns = [{
        "seq": k, "caller_turn": k, "phase": "caller", "scheduled_s": None, "sent_s": i + k * 2.5,
        "conn_setup_ms": 0.0, "ttft_ms": 251.3, "ttft_from_schedule_ms": None,
        "last_byte_ms": 652.0, "loop_lag_ms": 0.4, "stalls": 0, "max_gap_ms": 21.0,
        "prompt_tokens": 120 + 40 * k, "completion_tokens": 20, "interrupted": False,
        "error": None, "text": "Sure, let me look that up for you. " * 3,
    } for k in range(6)]
    transcript = {
        "caller": [{"index": k, "kind": "answer", "text": "My order number is 4 4 1 9 2.",
                    "clean_text": "My order number is 44192."} for k in range(6)],
        "agent": ["Sure, let me look that up for you. " * 3] * 6,
        "tool_calls": [], "usage": {"prompt_tokens": 1500, "completion_tokens": 120},
        "usage_estimated": False, "duration_s": 15.2, "grading": {"notes": []},
    }
    outcome = CallOutcome(
        call_id=f"{i:06d}", script_id=f"s{i}", pack="retail", profile="clean", intent="status",
        ok=True, error=None, ttft_ms=(251.3,) * 6, arg_total=2, arg_correct=2,
        strict_pass=True, record_exists=True, refused=False, fabricated=False, cost_usd=0.001,
    )
    return outcome, turns, transcript


def measure(n: int = 2000) -> dict[str, float]:
    """Commit ``n`` calls; return per-commit p50/p99/max in ms and the total seconds."""
    durs: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "run", create=True)
        t_all = time.perf_counter()
        for i in range(n):
            outcome, turns, transcript = _call(i)
            t0 = time.perf_counter_ns()
            store.record_call(CallRecord(
                idx=i, outcome=outcome, warmup=False, scheduled_s=None, started_s=float(i),
                finished_s=i + 15.0, dispatch_delay_ms=None,
                turns=[turn_from_row(t) for t in turns], events=[], transcript=transcript))
            durs.append(time.perf_counter_ns() - t0)
        total = time.perf_counter() - t_all
        store.close()
    durs.sort()
    return {"calls": n, "p50_ms": durs[len(durs) // 2] / 1e6,
            "p99_ms": durs[int(len(durs) * 0.99)] / 1e6, "max_ms": durs[-1] / 1e6,
            "total_s": total}


if __name__ == "__main__":
    print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
