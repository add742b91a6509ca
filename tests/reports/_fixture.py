"""A small, realistic run store built directly (no agent, no network) for report tests.

Includes hostile agent text (a ``<script>`` tag, an attribute injection, a ``javascript:``
URL) and a hostile vertical name, so the report's escaping is exercised everywhere a string
from a run ends up: table cells, SVG labels, the drill-down and the embedded JSON.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from simulator.results import CallOutcome, CallRecord, turn_from_row
from simulator.storage.store import RunStore

SCRIPT_PAYLOAD = "<script>window.__pwned=1</script>"
ATTR_PAYLOAD = '" onmouseover="alert(1)'
ATTR_PAYLOAD2 = "' onmouseover='window.__pwned=3"
JS_URL_PAYLOAD = '<a href="javascript:window.__pwned=4">open</a> javascript:window.__pwned=5'
HOSTILE_PACK = 'salon" onmouseover="window.__pwned=2'
HOSTILE_CALL_IDX = 3


def _turns(rnd: random.Random, start: float, n: int, *, missing: bool) -> list[dict[str, Any]]:
    out = []
    t = start
    for seq in range(n):
        phase = "tool" if seq == 1 else "caller"
        ttft = None if (missing and seq == n - 1) else rnd.lognormvariate(5.4, 0.35)
        out.append({
            "seq": seq, "caller_turn": min(seq, n - 2), "phase": phase, "scheduled_s": None,
            "sent_s": t, "conn_setup_ms": 0.0, "ttft_ms": ttft, "ttft_from_schedule_ms":
            None if ttft is None else ttft + rnd.uniform(0, 20),
            "last_byte_ms": None if ttft is None else ttft + 40, "loop_lag_ms": rnd.uniform(0, 3),
            "stalls": 0, "max_gap_ms": 12.0, "prompt_tokens": 800 + 20 * seq,
            "completion_tokens": 14, "interrupted": False, "error": None,
        })
        t += 0.4 + rnd.random() * 0.3
    return out


def build_run(run_dir: Path, *, calls: int = 24, partial: bool = False, seed: int = 3,
              ttft_scale: float = 1.0, rubric_sha: str | None = "a" * 64,
              profile: str = "typical_call") -> Path:
    """Write a run store with ``calls`` graded calls; ``partial`` mimics a killed run."""
    rnd = random.Random(seed)
    store = RunStore(run_dir, create=True)
    total = calls + 6 if partial else calls
    store.set_meta(target="http://127.0.0.1:9/v1", transport="openai-chat", model="ref",
                   profile=profile, seed=seed, total_calls=total, started_at=1_790_000_000.0,
                   rubric_sha256=rubric_sha, scenario_set="s" * 64,
                   status="running" if partial else "complete")
    for i in range(calls):
        pack = HOSTILE_PACK if i % 3 == 2 else "healthcare"
        exists = i % 4 != 1
        failed = partial and i % 5 == 4
        wer = round(0.02 + 0.45 * (i / max(calls - 1, 1)), 3)
        fault = {"kind": "timeout", "effect": "timeout", "delay_s": 10.0} if i % 6 == 0 else (
            {"kind": "server_error", "status": 503, "delay_s": 0.1} if i % 7 == 5 else None)
        agent = ["Can I have your full name, please?",
                 "Thanks. I found your appointment on June 3rd at 10:30 AM." if exists
                 else "I'm sorry, I couldn't find a record with that name.",
                 "Goodbye!"]
        if i == HOSTILE_CALL_IDX:
            agent[1] = f"Sure {SCRIPT_PAYLOAD} {ATTR_PAYLOAD} {ATTR_PAYLOAD2} see {JS_URL_PAYLOAD}"
        tool_calls = [{"name": "find_patient", "arguments": {"name": "Ann Lee"},
                       "raw": '{"name": "Ann Lee"}',
                       "result": json.dumps({"error": "timeout"}) if fault else
                       json.dumps({"found": exists, "date": "06-03", "time": "10:30"}),
                       "fault": fault, "k": 0}]
        if fault:
            tool_calls.append({"name": "find_patient", "arguments": {"name": "Ann Lee"},
                               "raw": '{"name": "Ann Lee"}', "result": '{"found": true}',
                               "fault": None, "k": 1})
        fabricated = (not exists) and i % 8 == 1
        transcript = {
            "caller": [
                {"index": 0, "kind": "opening", "text": "uh hi I'd like to check my apointment",
                 "clean_text": "Hi, I'd like to check my appointment."},
                {"index": 1, "kind": "answer", "text": "Ann Lee.", "clean_text": None},
                {"index": 2, "kind": "closing", "text": "Thanks, bye.", "clean_text": None},
            ],
            "agent": agent,
            "tool_calls": tool_calls,
            "usage": {"prompt_tokens": 2400, "completion_tokens": 60},
            "usage_estimated": False,
            "duration_s": 2.5,
            "grading": {
                "mismatches": [] if i % 3 else [
                    {"call": "find_patient", "argument": "name", "problem": "wrong value",
                     "expected": "Ann Lee", "got": f"Anne {SCRIPT_PAYLOAD}"}],
                "fabricated": [{"kind": "date", "value": "06-03", "text": "June 3rd"}]
                if fabricated else [],
            },
            "backend_outcome": None,
            "error_detail": "agent stopped answering" if failed else "",
        }
        n_turns = 0 if (partial and i % 5 == 4) else 4
        start = i * 0.25
        ttfts = _turns(rnd, start, n_turns, missing=partial and i % 2 == 0)
        ttfts = [{**t, "ttft_ms": None if t["ttft_ms"] is None else t["ttft_ms"] * ttft_scale}
                 for t in ttfts]
        outcome = CallOutcome(
            call_id=f"{i:06d}", script_id=f"script-{i:03d}", pack=pack, profile=profile,
            intent="check_appointment" if i % 2 else "book_appointment", ok=not failed,
            error="first_byte_timeout" if failed else None,
            ttft_ms=tuple(t["ttft_ms"] for t in ttfts if t["phase"] == "caller"
                          and t["ttft_ms"] is not None),
            arg_total=2, arg_correct=1 if i % 3 == 0 else 2, strict_pass=i % 3 != 0 and not failed,
            record_exists=exists, refused=not exists and not fabricated, fabricated=fabricated,
            cost_usd=0.0008 + 0.0004 * rnd.random(), injected_wer=wer,
        )
        events: list[tuple[str, dict[str, Any]]] = [("asr_noise", {"turn": 0, "wer": wer})]
        if fault:
            events.append(("tool_fault", {"k": 0, "tool": "find_patient", **fault}))
        store.record_call(CallRecord(
            idx=i, outcome=outcome, warmup=False, scheduled_s=None, started_s=start,
            finished_s=start + 2.5, dispatch_delay_ms=None,
            turns=[turn_from_row(t) for t in ttfts], events=events, transcript=transcript))
    if not partial:
        store.set_meta(status="complete", finished_at=1_790_000_030.0, loop_lag_p99_ms=1.2,
                       loop_lag_verdict="loop lag p99 1.2 ms: latencies trustworthy")
    store.close()
    return run_dir
