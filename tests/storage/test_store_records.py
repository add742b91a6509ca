"""The store's turn columns come from ``TurnRecord``: every field written (audio ones too)
comes back in ``callsim export``, and a store written before the audio fields existed still
opens, summarises and exports."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import asdict, fields
from pathlib import Path

from simulator.metrics.summary import summarize
from simulator.results import TURN_COLUMNS, CallOutcome, CallRecord, TurnRecord
from simulator.storage.store import RunStore, export_run


def _outcome(i: int) -> CallOutcome:
    return CallOutcome(
        call_id=f"{i:06d}", script_id=f"s{i}", pack="clinic", profile="none", intent="book",
        ok=True, error=None, ttft_ms=(480.0,), arg_total=2, arg_correct=2, strict_pass=True,
        record_exists=True, refused=False, fabricated=False, cost_usd=0.001,
        ttfa_ms=(480.0,), agent_speech_s=(1.25,))


def _turn(seq: int, phase: str) -> TurnRecord:
    return TurnRecord(
        seq=seq, caller_turn=0, phase=phase, scheduled_s=None, sent_s=1.0 + seq,
        conn_setup_ms=2.0, ttft_ms=480.0, ttft_from_schedule_ms=None, last_byte_ms=1900.0,
        loop_lag_ms=0.3, stalls=0, max_gap_ms=20.0, prompt_tokens=100, completion_tokens=12,
        interrupted=False, error=None, text="Sure.", ttfa_ms=480.0 + seq,
        first_voiced_ms=500.0, first_text_ms=None, agent_speech_s=1.25,
        barge_in_reaction_ms=None if seq else 210.0)


def test_every_turn_field_comes_back_in_the_export(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    turns = [_turn(0, "caller"), _turn(1, "tool")]
    store.record_call(CallRecord(idx=0, outcome=_outcome(0), warmup=False, scheduled_s=None,
                                 started_s=0.0, finished_s=3.0, dispatch_delay_ms=None,
                                 turns=turns, events=[], transcript={"agent": ["Sure."]}))
    out = io.StringIO()
    export_run(store, "jsonl", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["record"] for r in rows] == ["call", "turn", "turn"]
    for row, turn in zip(rows[1:], turns, strict=True):
        assert {k: row[k] for k in TURN_COLUMNS} == {k: v for k, v in asdict(turn).items()
                                                      if k in TURN_COLUMNS}
    assert rows[0]["outcome"]["ttfa_ms"] == [480.0]
    assert store.outcomes()[0] == _outcome(0)   # tuples survive the JSON round trip
    csv_out = io.StringIO()
    export_run(store, "turns-csv", csv_out)
    header, *lines = csv_out.getvalue().splitlines()
    assert "ttfa_ms" in header.split(",") and len(lines) == 2
    store.close()


def test_a_store_from_before_the_audio_fields_still_reads(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    old = [f.name for f in fields(TurnRecord)][:16]   # the columns stores had then
    db = sqlite3.connect(run / "store.sqlite")
    db.executescript(f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE calls (idx INTEGER PRIMARY KEY, call_id TEXT NOT NULL,
            script_id TEXT NOT NULL, pack TEXT, intent TEXT, profile TEXT, ok INTEGER NOT NULL,
            error TEXT, warmup INTEGER NOT NULL DEFAULT 0, scheduled_s REAL, started_s REAL,
            finished_s REAL, dispatch_delay_ms REAL, outcome TEXT NOT NULL,
            transcript TEXT NOT NULL);
        CREATE TABLE turns (call_idx INTEGER NOT NULL, {", ".join(old)},
            PRIMARY KEY (call_idx, seq));
    """)
    outcome = {k: v for k, v in asdict(_outcome(0)).items()
               if k not in ("ttfa_ms", "first_voiced_ms", "barge_in_reaction_ms",
                            "agent_speech_s")}
    db.execute("INSERT INTO calls VALUES (0,'000000','s0','clinic','book','none',1,NULL,0,"
               "NULL,0,3,NULL,?,'{}')", (json.dumps(outcome),))
    db.execute(f"INSERT INTO turns (call_idx, {', '.join(old)}) VALUES "
               f"(0, {', '.join('?' * len(old))})",
               (0, 0, "caller", None, 1.0, 2.0, 480.0, None, 1900.0, 0.3, 0, 20.0, 100, 12,
                0, None))
    db.commit()
    db.close()
    store = RunStore(run)
    summary = summarize(store)
    assert summary["ttft_ms"]["p50"] == 480.0 and summary["audio"]["ttfa_ms"]["n"] == 0
    assert store.outcomes()[0].ttfa_ms == ()
    out = io.StringIO()
    export_run(store, "jsonl", out)
    turn = json.loads(out.getvalue().splitlines()[1])
    assert turn["ttft_ms"] == 480.0 and turn["ttfa_ms"] is None


def test_the_arm_is_a_column_selected_on_and_exported(tmp_path: Path) -> None:
    from dataclasses import replace

    store = RunStore(tmp_path / "ab", create=True)
    for i, arm in enumerate(["base", "cand", "cand", "base"]):
        store.record_call(CallRecord(
            idx=i, outcome=replace(_outcome(i), arm=arm), warmup=False, scheduled_s=None,
            started_s=0.0, finished_s=3.0, dispatch_delay_ms=None, turns=[_turn(0, "caller")],
            events=[], transcript={}))
    assert [o.call_id for o in store.outcomes(arm="cand")] == ["000001", "000002"]
    assert [o.arm for o in store.outcomes()] == ["base", "cand", "cand", "base"]
    assert store.outcomes(arm="other") == []
    out = io.StringIO()
    export_run(store, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["arm"] for r in rows] == ["base", "cand", "cand", "base"]
    out = io.StringIO()
    export_run(store, "turns-csv", out)
    assert [r["arm"] for r in csv.DictReader(io.StringIO(out.getvalue()))] == \
        ["base", "cand", "cand", "base"]
    out = io.StringIO()
    export_run(store, "jsonl", out)
    calls = [json.loads(s) for s in out.getvalue().splitlines()
             if json.loads(s)["record"] == "call"]
    assert [c["arm"] for c in calls] == ["base", "cand", "cand", "base"]
    store.close()


def test_a_store_from_before_the_arm_column_gets_it_from_the_outcomes(tmp_path: Path) -> None:
    from dataclasses import replace

    run = tmp_path / "old-ab"
    run.mkdir()
    db = sqlite3.connect(run / "store.sqlite")
    db.executescript("""
        CREATE TABLE calls (idx INTEGER PRIMARY KEY, call_id TEXT NOT NULL,
            script_id TEXT NOT NULL, pack TEXT, intent TEXT, profile TEXT, ok INTEGER NOT NULL,
            error TEXT, warmup INTEGER NOT NULL DEFAULT 0, scheduled_s REAL, started_s REAL,
            finished_s REAL, dispatch_delay_ms REAL, outcome TEXT NOT NULL,
            transcript TEXT NOT NULL);
    """)
    for i, arm in enumerate(["a", "b"]):
        db.execute("INSERT INTO calls VALUES (?,?,'s0','clinic','book','none',1,NULL,0,"
                   "NULL,0,3,NULL,?,'{}')",
                   (i, f"{i:06d}", json.dumps(asdict(replace(_outcome(i), arm=arm)))))
    db.commit()
    db.close()
    store = RunStore(run)
    assert [o.call_id for o in store.outcomes(arm="b")] == ["000001"]
    # A call written after the column was added lands in it, not in a shifted position.
    store.record_call(CallRecord(idx=2, outcome=replace(_outcome(2), arm="b"), warmup=False,
                                 scheduled_s=None, started_s=0.0, finished_s=3.0,
                                 dispatch_delay_ms=None, turns=[], events=[], transcript={}))
    assert [o.call_id for o in store.outcomes(arm="b")] == ["000001", "000002"]
    assert next(c for c in store.calls() if c["idx"] == 2)["finished_s"] == 3.0
    store.close()


def test_the_call_csv_has_each_calls_first_timings_and_counts_its_turns(
        tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    for idx, turns in ((0, [_turn(0, "caller"), _turn(1, "tool")]), (1, [])):
        store.record_call(CallRecord(
            idx=idx, outcome=_outcome(idx), warmup=False, scheduled_s=None, started_s=0.0,
            finished_s=3.0, dispatch_delay_ms=None, turns=turns, events=[], transcript={}))
    out = io.StringIO()
    export_run(store, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["turns"] for r in rows] == ["2", "0"]     # a call without turns exports too
    assert [r["ttft_ms_first"] for r in rows] == ["480.0", "480.0"]
    assert rows[0]["agent_speech_s_first"] == "1.25"
    out = io.StringIO()
    export_run(store, "jsonl", out)
    assert [json.loads(s)["record"] for s in out.getvalue().splitlines()] == [
        "call", "turn", "turn", "call"]
    store.close()


def test_calls_whose_model_caller_invented_a_value_are_left_out_unless_asked_for(
        tmp_path: Path) -> None:
    from dataclasses import replace

    store = RunStore(tmp_path / "run", create=True)
    for i, invented in ((0, 0), (1, 2), (2, 0)):
        store.record_call(CallRecord(
            idx=i, outcome=replace(_outcome(i), caller_invented=invented), warmup=False,
            scheduled_s=None, started_s=0.0, finished_s=1.0, dispatch_delay_ms=None,
            turns=[], events=[], transcript={}))
    assert [o.call_id for o in store.outcomes()] == ["000000", "000002"]
    assert [o.call_id for o in store.outcomes(include_flagged=True)] == [
        "000000", "000001", "000002"]
    # The summary counts the flagged call but measures without it.
    calls = summarize(store)["calls"]
    assert (calls["measured"], calls["caller_invented"]) == (2, 1)
    store.close()
