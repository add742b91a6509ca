"""Graded per-call results: what metrics, the gate and reports read.

A ``CallOutcome`` is one replayed call after grading: its timings, the tool-call argument
score, whether it refused / fabricated, and its cost. Everything downstream of the run store
(the four gate numbers, bootstrap intervals, breakdowns) is computed from a list of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallOutcome:
    call_id: str            # unique within a run
    script_id: str          # the call script's call_id: pairs calls across runs
    pack: str               # vertical
    profile: str            # noise profile ("none": scripts replayed as written)
    intent: str             # scenario kind
    ok: bool                # finished without a transport error
    error: str | None       # error category when not ok
    ttft_ms: tuple[float, ...]   # per turn: end of caller input -> first content (ms)
    arg_total: int          # expected tool-call arguments
    arg_correct: int        # of those, matched after normalisation
    strict_pass: bool       # every expected call made with all arguments right, no extra writes
    record_exists: bool
    refused: bool           # agent said it could not find the record
    fabricated: bool        # agent asserted a record detail found in no tool result / caller turn
    cost_usd: float
    cost_estimated: bool = False          # usage absent from the agent's responses
    injected_wer: float | None = None
    extra: dict[str, float] = field(default_factory=dict)   # guard metrics (error rate, ttfa...)
    arm: str = ""           # the arm of an interleaved A/B run ("" in a one-arm run)
