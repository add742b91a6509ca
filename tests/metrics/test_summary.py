"""The run summary read from a store: counts, gate numbers, latency percentiles, errors."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from simulator.metrics.summary import render_summary, summarize
from simulator.results import CallOutcome, CallRecord, TurnRecord
from simulator.storage.store import RunStore

BASE = CallOutcome("x", "s", "clinic", "clean", "book", True, None, (100.0,), 2, 2, True, True,
                   False, False, 0.01)


def _call(store: RunStore, idx: int, outcome: CallOutcome, *, warmup: bool = False,
          turns: list[TurnRecord] | None = None, dispatch: float | None = 2.0) -> None:
    store.record_call(CallRecord(idx=idx, outcome=replace(outcome, call_id=f"{idx:06d}"),
                                 warmup=warmup, scheduled_s=0.0, started_s=0.0, finished_s=1.0,
                                 dispatch_delay_ms=dispatch, turns=turns or [], events=[],
                                 transcript={}))


def _turn(seq: int, ttft: float | None, *, phase: str = "caller", sched: float | None = None,
          conn: float | None = None, lag: float | None = None, stalls: int | None = None
          ) -> TurnRecord:
    return TurnRecord(seq=seq, caller_turn=seq, phase=phase, scheduled_s=None, sent_s=None,
                      conn_setup_ms=conn, ttft_ms=ttft, ttft_from_schedule_ms=sched,
                      last_byte_ms=None, loop_lag_ms=lag, stalls=stalls or 0, max_gap_ms=0.0,
                      prompt_tokens=None, completion_tokens=None, interrupted=False, error=None)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "run-x", create=True)
    s.set_meta(status="partial", target="http://agent", profile="clean", total_calls=10,
               loop_lag_p99_ms=3.5, loop_lag_verdict="loop lag ok: latencies can be trusted")
    # A warmup call: stored, never measured.
    _call(s, 0, replace(BASE, ttft_ms=(9999.0,)), warmup=True,
          turns=[_turn(0, 9999.0, sched=9999.0, conn=999.0, stalls=50)], dispatch=999.0)
    _call(s, 1, replace(BASE, injected_wer=0.10, cost_estimated=True),
          turns=[_turn(0, 100.0, sched=110.0, conn=12.0, lag=1.0, stalls=1),
                 _turn(1, 300.0, sched=None, lag=None),
                 _turn(2, 50.0, phase="tool")])
    _call(s, 2, replace(BASE, record_exists=False, refused=True, injected_wer=0.30),
          turns=[_turn(0, 200.0, sched=260.0, lag=2.0, stalls=2), _turn(1, None)],
          dispatch=-3.0)
    _call(s, 3, replace(BASE, ok=False, error="timeout", arg_correct=1, strict_pass=False),
          turns=[_turn(0, 400.0, sched=400.0, lag=0.5)], dispatch=None)
    _call(s, 4, replace(BASE, ok=False, error=None, cost_usd=0.03))
    return s


def test_summary_counts_and_numbers(store: RunStore) -> None:
    s = summarize(store)
    assert (s["run_id"], s["status"], s["target"], s["profile"]) == (
        "run-x", "partial", "http://agent", "clean")
    assert s["calls"] == {"total": 10, "completed": 5, "measured": 4, "ok": 2, "failed": 2,
                          "caller_invented": 0}
    assert s["errors"] == {"timeout": 1, "error": 1}
    assert s["gate"]["tool_arg_accuracy"] == pytest.approx(7 / 8)
    assert s["gate"]["refusal_rate"] == 1.0
    assert s["gate"]["cost_per_session_usd"] == pytest.approx(0.06 / 4)
    assert s["numbers"]["error_rate"] == 0.5
    assert set(s["gate"]) == {"p95_ttft_ms", "tool_arg_accuracy", "refusal_rate",
                              "cost_per_session_usd"}
    assert s["injected_wer"] == pytest.approx(0.2)
    assert s["cost_estimated_share"] == 0.25


def test_summary_latency_from_caller_turns_of_measured_calls(store: RunStore) -> None:
    s = summarize(store)
    # Caller turns with a ttft: 100, 300, 200, 400 (the tool turn and the warmup left out).
    assert s["ttft_ms"] == {"p50": 200.0, "p95": 400.0, "p99": 400.0, "max": 400.0, "n": 4}
    assert s["ttft_from_schedule_ms"]["n"] == 3 and s["ttft_from_schedule_ms"]["max"] == 400.0
    assert s["connection_setup_ms"] == {"p50": 12.0, "p95": 12.0, "p99": 12.0, "max": 12.0,
                                        "n": 1}
    # Negative dispatch delays (a call started early) count as 0; missing ones are skipped.
    assert s["dispatch_delay_ms"]["n"] == 3 and s["dispatch_delay_ms"]["p50"] == 2.0
    assert min(s["dispatch_delay_ms"][k] for k in ("p50", "p95", "p99", "max")) >= 0
    assert s["dispatch_delay_ms"]["max"] == 2.0
    assert s["stalls"] == 3
    assert s["loop_lag"] == {"p99_ms": 3.5, "verdict": "loop lag ok: latencies can be trusted",
                             "at_samples_p99_ms": 2.0}


def test_empty_run_summary(tmp_path: Path) -> None:
    s = summarize(RunStore(tmp_path / "empty", create=True))
    assert s["calls"] == {"total": None, "completed": 0, "measured": 0, "ok": 0, "failed": 0,
                          "caller_invented": 0}
    assert s["ttft_ms"] == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    assert s["injected_wer"] is None and s["cost_estimated_share"] is None
    assert s["gate"]["p95_ttft_ms"] is None and s["errors"] == {} and s["stalls"] == 0


def _text(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(render_summary(summary))
    return out.getvalue()


def test_rendered_summary_shows_the_four_numbers_and_timing(store: RunStore) -> None:
    s = summarize(store)
    text = _text(s)
    assert "callsim run run-x (partial)" in text
    for label, value in (("p95 first-token latency", "100.0 ms"),   # of the outcomes' ttft
                         ("tool-call argument accuracy", "0.875"),
                         ("refusal-on-missing-record rate", "1.000"),
                         ("per-session cost", "$0.01500"),
                         ("strict pass rate", "0.750"),
                         ("fabrication rate (missing records)", "0.000"),
                         ("over-refusal rate (existing records)", "0.000"),
                         ("ttft p50 / p99", "200.0 / 400.0 ms"),
                         ("dispatch delay p50 / p99", "2.0 / 2.0 ms"),
                         ("ttft from schedule p95", "400.0 ms"),
                         ("injected WER (mean)", "0.200"),
                         ("calls ok / failed", "2 / 2")):
        line = next(ln for ln in text.splitlines() if label in ln)
        assert value in line, (label, line)
    assert "errors: timeout=1, error=1" in text
    assert "loop lag ok: latencies can be trusted" in text


def test_rendered_empty_summary_shows_dashes_and_leaves_out_what_is_missing(
    tmp_path: Path,
) -> None:
    text = _text(summarize(RunStore(tmp_path / "empty", create=True)))
    assert "p95 first-token latency" in text and "— ms" in text
    assert "dispatch delay" not in text and "injected WER" not in text
    assert "errors:" not in text


def test_a_bot_with_its_own_backend_shows_tool_numbers_as_not_observed(tmp_path: Path) -> None:
    s = RunStore(tmp_path / "run-own", create=True)
    s.set_meta(status="complete", target="ws://bot", profile="none", total_calls=2,
               carries="audio", config={"caller_audio": "tts", "caller_voice": "piper"})
    _call(s, 0, replace(BASE, arg_correct=0, strict_pass=False, tools_observed=False))
    _call(s, 1, replace(BASE, record_exists=False, refused=True, arg_total=0, arg_correct=0,
                        tools_observed=False))
    summary = summarize(s)
    assert summary["tools_not_observed"] and summary["gate"]["tool_arg_accuracy"] is None
    assert summary["gate"]["refusal_rate"] == 1.0  # still graded
    text = _text(summary)
    assert "tool-call argument accuracy" in text and "not observed" in text
    assert "caller voice" in text and "piper" in text


def _row(text: str, label: str) -> str:
    """The value cell of the row whose label cell is exactly ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells[0] == label:
            return cells[1]
    raise AssertionError(f"no row labelled {label!r} in:\n{text}")


def _full(store: RunStore) -> dict[str, Any]:
    """The fixture's summary with what audio and interleaved A/B runs add."""
    s = summarize(store)
    s["audio"]["ttfa_ms"] = {"p50": 412.25, "p95": 980.75, "p99": 990.0, "max": 1000.0, "n": 3}
    s["send_jitter_ms"] = {"frames": 500, "p50": 0.123, "p99": 1.987, "max": 4.56}
    s["graded_from"] = {"audio": 3, "text": 1}
    s["arms"] = {"A": {"calls": 4, "gate": {"p95_ttft_ms": 101.26, "tool_arg_accuracy": 0.875,
                                            "refusal_rate": 1.0, "cost_per_session_usd": 0.015}},
                 "B": {"calls": 3, "gate": {"p95_ttft_ms": None, "tool_arg_accuracy": None,
                                            "refusal_rate": None,
                                            "cost_per_session_usd": None}}}
    return s


def test_each_row_reads_label_then_value(store: RunStore) -> None:
    text = _text(_full(store))
    assert _row(text, "calls ok / failed") == "2 / 2"
    assert _row(text, "ttft p50 / p99") == "200.0 / 400.0 ms"
    assert _row(text, "ttft from schedule p95") == "400.0 ms"
    assert _row(text, "injected WER (mean)") == "0.200"
    assert _row(text, "time to first audio p50 / p95") == "412.2 / 980.8 ms"
    assert _row(text, "caller frame send jitter p50 / p99 / max") == "0.12 / 1.99 / 4.6 ms"
    assert _row(text, "agent words graded from") == "audio 3, text 1"


def test_the_per_arm_table_shows_each_arms_numbers(store: RunStore) -> None:
    text = _text(_full(store))
    header = next(ln for ln in text.splitlines() if "p95 ttft" in ln)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "arm", "calls", "p95 ttft", "tool args", "refusal", "cost"]
    rows = {cells[0]: cells[1:] for ln in text.splitlines()
            for cells in [[c.strip() for c in ln.strip("│ ").split("│")]]
            if cells[0] in ("A", "B") and len(cells) == 6}
    assert rows["A"] == ["4", "101.3 ms", "0.875", "1.000", "$0.01500"]
    assert rows["B"] == ["3", "— ms", "—", "—", "$—"]


def _ansi(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system="standard", force_terminal=True).print(
        render_summary(summary))
    return out.getvalue()


def _line(text: str, part: str) -> str:
    return next(ln for ln in text.splitlines() if part in ln)


DIM, GREEN, RED = "\x1b[2m", "\x1b[32m", "\x1b[31m"


def test_on_a_terminal_the_gate_numbers_stand_out_and_timing_detail_is_dim(
        store: RunStore) -> None:
    text = _ansi(_full(store))
    assert DIM not in _line(text, "p95 first-token latency")
    for part in ("ttft p50 / p99", "ttft from schedule p95", "send jitter", "calls ok / failed",
                 "injected WER"):
        assert DIM in _line(text, part), part


def test_the_loop_lag_verdict_is_green_when_trusted_and_red_when_not(
        store: RunStore) -> None:
    from simulator.driver.looplag import lag_verdict

    s = summarize(store)
    s["loop_lag"]["verdict"] = lag_verdict(1.2)
    assert GREEN in _line(_ansi(s), "latencies trustworthy")
    s["loop_lag"]["verdict"] = lag_verdict(80.0)
    assert RED in _line(_ansi(s), "exceeds")


def test_summary_json_of_an_audio_run_with_a_model_played_caller(tmp_path: Path) -> None:
    """What ``summary.json`` says about an audio run: the caller frames' send jitter (the
    measured calls' frames only), the load paced by the line itself, and what the model
    playing the caller cost."""
    s = RunStore(tmp_path / "run-a", create=True)
    s.set_meta(status="complete", total_calls=3, carries="audio", config={"pacing": "none"})
    audio = {"send_jitter_us_counts": {"250": 98, "4000": 2}}
    caller = replace(BASE, caller_cost_usd=0.002, caller_prompt_tokens=300,
                     caller_completion_tokens=20)
    for idx, warmup, counts in ((0, True, {"send_jitter_us_counts": {"90000": 5}}),
                                (1, False, audio), (2, False, {})):
        s.record_call(CallRecord(
            idx=idx, outcome=replace(caller, call_id=f"{idx:06d}"), warmup=warmup,
            scheduled_s=0.0, started_s=10.0 + idx, finished_s=12.0 + idx, dispatch_delay_ms=1.0,
            turns=[_turn(0, 100.0), _turn(1, 120.0)], events=[],
            transcript={"audio": counts} if counts else {}))
    out = summarize(s)
    jitter = out["send_jitter_ms"]
    assert set(jitter) == {"frames", "p50", "p99", "max"}
    assert jitter["frames"] == 100
    assert jitter["p50"] == pytest.approx(0.25, rel=0.01)
    assert jitter["max"] == pytest.approx(4.0, rel=0.01) and jitter["p99"] <= jitter["max"]
    # Two measured calls, 11-13 s and 12-14 s: four caller turns over 3 s, 4 s of calls.
    assert out["load"] == {"turns_per_s": pytest.approx(4 / 3), "pacing": "audio",
                           "concurrent_calls_mean": pytest.approx(4 / 3),
                           "caller_turns": 4, "span_s": pytest.approx(3.0)}
    # The model's cost over the measured calls (the warmup left out, as everywhere).
    assert out["caller_llm"] == {"cost_usd": pytest.approx(0.004), "tokens": 640}
    s.close()


def test_a_run_whose_calls_all_start_and_end_together_has_no_turn_rate(tmp_path: Path) -> None:
    s = RunStore(tmp_path / "run-b", create=True)
    s.set_meta(status="complete", total_calls=1, config={"pacing": "speech"})
    _call(s, 0, BASE, turns=[_turn(0, 100.0)])
    s.db.execute("UPDATE calls SET finished_s = started_s")
    assert summarize(s)["load"] == {"turns_per_s": None, "concurrent_calls_mean": None,
                                    "pacing": "speech", "caller_turns": 1, "span_s": 0.0}
    s.close()
