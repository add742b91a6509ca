"""The run store: what a call commits is there for another reader at once, survives the
writer's SIGKILL, and reads back as written (with secrets redacted)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulator.agent.process import agent_process
from simulator.errors import StoreError
from simulator.results import CallOutcome, CallRecord, TurnRecord, turn_from_row
from simulator.storage.store import RunStore, new_run_id, resolve_run
from tests.conftest import TIME_FACTOR

ROOT = Path(__file__).resolve().parents[2]
CALLSIM = [sys.executable, "-m", "simulator"]
OUTCOME = CallOutcome("000000", "clinic-1-000000", "clinic", "clean", "book", True, None,
                      (120.0, 95.5), 3, 2, False, True, False, False, 0.0123)


def _turn(s: int) -> TurnRecord:
    return TurnRecord(seq=s, caller_turn=s, phase="caller", scheduled_s=1.0 + s, sent_s=1.5 + s,
                      conn_setup_ms=3.0, ttft_ms=100.0 + s, ttft_from_schedule_ms=120.0 + s,
                      last_byte_ms=400.0 + s, loop_lag_ms=0.5, stalls=s, max_gap_ms=80.0,
                      prompt_tokens=10 * s, completion_tokens=7, interrupted=s == 1,
                      error="stall" if s else None)


def _record(store: RunStore, idx: int, *, warmup: bool = False, turns: int = 2,
            text: str = "hello", outcome: CallOutcome | None = None) -> None:
    o = outcome or replace(OUTCOME, call_id=f"{idx:06d}")
    store.record_call(CallRecord(
        idx=idx, outcome=o, warmup=warmup, scheduled_s=idx * 0.5, started_s=idx * 0.5 + 0.01,
        finished_s=idx * 0.5 + 2.0, dispatch_delay_ms=1.5,
        turns=[_turn(s) for s in range(turns)],
        events=[("perturbation", {"turn": 0, "text": text})],
        transcript={"agent": [text], "caller": [{"text": "hi"}]},
    ))


def _other_reader(db: Path, sql: str) -> list[Any]:
    """Rows as a second connection (another process) sees them."""
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_recorded_call_is_visible_to_another_reader_at_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    db = tmp_path / "run" / "store.sqlite"
    for i in range(25):
        _record(store, i)
        # Committed, not held in an open transaction: another connection sees it now.
        assert _other_reader(db, "SELECT count(*) FROM calls") == [(i + 1,)]
        assert _other_reader(db, f"SELECT count(*) FROM turns WHERE call_idx={i}") == [(2,)]
        assert _other_reader(db, f"SELECT count(*) FROM events WHERE call_idx={i}") == [(1,)]
    store.set_meta(status="partial")
    assert _other_reader(db, "SELECT value FROM meta WHERE key='status'") == [('"partial"',)]
    store.put_histogram("ttft_ms", "HISTFAAAA")
    assert _other_reader(db, "SELECT encoded FROM histograms") == [("HISTFAAAA",)]
    assert _other_reader(db, "PRAGMA journal_mode") == [("wal",)]
    store.close()


def test_calls_read_back_as_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    _record(store, 2)
    _record(store, 0, warmup=True)
    _record(store, 1, turns=3)
    assert store.completed_indices() == {0, 1, 2}
    assert [o.call_id for o in store.outcomes()] == ["000001", "000002"]
    assert [o.call_id for o in store.outcomes(include_warmup=True)] == ["000000", "000001",
                                                                          "000002"]
    assert store.outcomes()[0] == replace(OUTCOME, call_id="000001")
    calls = list(store.calls())
    assert [c["idx"] for c in calls] == [0, 1, 2]
    assert calls[0]["warmup"] == 1 and calls[1]["warmup"] == 0
    assert calls[1]["outcome"]["ttft_ms"] == [120.0, 95.5]
    assert calls[1]["transcript"] == {"agent": ["hello"], "caller": [{"text": "hi"}]}
    assert (calls[2]["scheduled_s"], calls[2]["started_s"], calls[2]["finished_s"],
            calls[2]["dispatch_delay_ms"]) == (1.0, 1.01, 3.0, 1.5)
    turns = list(store.turns())
    assert [(t["call_idx"], t["seq"]) for t in turns] == [(0, 0), (0, 1), (1, 0), (1, 1),
                                                          (1, 2), (2, 0), (2, 1)]
    assert [t["warmup"] for t in turns[:2]] == [1, 1]
    assert turns[1]["interrupted"] == 1 and turns[0]["interrupted"] == 0
    assert turns[2]["ttft_ms"] == 100.0 and turns[4]["prompt_tokens"] == 20
    assert turn_from_row(turns[3]) == _turn(1)
    assert (turns[3]["call_idx"], turns[3]["warmup"]) == (1, 0)
    assert list(store.events()) == [(i, "perturbation", {"turn": 0, "text": "hello"})
                                    for i in range(3)]
    store.set_meta(seed=5, target="http://x")
    store.set_meta(seed=6)
    assert store.meta() == {"seed": 6, "target": "http://x"}
    store.put_histogram("a", "1")
    store.put_histogram("a", "2")
    assert store.histograms() == {"a": "2"}
    store.close()
    # Reopened (as report and --resume do): the same calls.
    again = RunStore(tmp_path / "run")
    assert again.completed_indices() == {0, 1, 2} and again.run_id == "run"
    again.close()


def test_written_from_the_writer_thread_and_reopened_for_more(tmp_path: Path) -> None:
    # The runner opens the store on the event loop's thread and commits on a writer thread;
    # --resume opens the same directory with create=True again.
    from concurrent.futures import ThreadPoolExecutor

    store = RunStore(tmp_path / "runs" / "run", create=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_record, store, 0).result()
        pool.submit(_record, store, 1).result()
    assert store.completed_indices() == {0, 1}
    store.close()
    again = RunStore(tmp_path / "runs" / "run", create=True)
    _record(again, 2)
    assert again.completed_indices() == {0, 1, 2}
    again.close()


def test_text_is_stored_readable_not_escaped(tmp_path: Path) -> None:
    # Anyone can read store.sqlite with sqlite3: non-ASCII text is kept as it is.
    store = RunStore(tmp_path / "run", create=True)
    _record(store, 0, text="café at 9 – ok")
    store.close()
    (raw,) = _other_reader(tmp_path / "run" / "store.sqlite", "SELECT transcript FROM calls")
    assert "café at 9 – ok" in raw[0]


def test_a_call_recorded_again_replaces_its_turns_and_events(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    _record(store, 0, turns=3, text="first")
    _record(store, 0, turns=1, text="second")
    assert [(t["call_idx"], t["seq"]) for t in store.turns()] == [(0, 0)]
    assert list(store.events()) == [(0, "perturbation", {"turn": 0, "text": "second"})]
    assert len(list(store.calls())) == 1
    store.close()


def test_secrets_are_redacted_from_everything_written(tmp_path: Path) -> None:
    key = "sk-secret-123"
    store = RunStore(tmp_path / "run", create=True, redact=(key, ""))
    echoed = replace(OUTCOME, error=f"agent said {key}")
    _record(store, 0, text=f"your key is {key}", outcome=echoed)
    store.close()
    raw = (tmp_path / "run" / "store.sqlite").read_bytes()
    wal = tmp_path / "run" / "store.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert key.encode() not in raw
    again = RunStore(tmp_path / "run")
    (call,) = list(again.calls())
    assert call["transcript"]["agent"] == ["your key is ***"]
    assert call["outcome"]["error"] == "agent said ***"
    assert list(again.events())[0][2]["text"] == "your key is ***"
    again.close()


def test_opening_what_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"not a callsim run \(no store.sqlite\)") as exc:
        RunStore(tmp_path / "nothing")
    assert str(tmp_path / "nothing") in str(exc.value)
    assert not (tmp_path / "nothing").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "store.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open run store") as exc:
        RunStore(bad)
    assert "\n" not in str(exc.value) and "store.sqlite" in str(exc.value)


def test_a_write_that_fails_names_the_run_and_the_call(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    store.db.execute("DROP TABLE turns")
    with pytest.raises(StoreError, match=r"run: cannot write call 7: no such table: turns"):
        _record(store, 7)
    assert store.completed_indices() == set()   # the call's transaction was rolled back
    store.close()


def test_resolve_run_by_path_id_and_last(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("run-a", "run-b"):
        RunStore(runs / name, create=True).close()
    now = time.time()
    os.utime(runs / "run-a" / "store.sqlite", (now, now))
    os.utime(runs / "run-b" / "store.sqlite", (now - 100, now - 100))
    assert resolve_run(str(runs / "run-b")) == runs / "run-b"
    assert resolve_run("run-b", runs) == runs / "run-b"
    assert resolve_run("last", runs) == runs / "run-a"
    with pytest.raises(StoreError, match="run-c: no such run"):
        resolve_run("run-c", runs)
    with pytest.raises(StoreError, match="no runs stored yet"):
        resolve_run("last", tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no runs stored yet"):
        resolve_run("last", tmp_path / "empty")


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    one = new_run_id("ab")
    assert one.startswith("ab-") and len(one) == len("ab-20261125-160102-ab12")
    assert one[3:11] == time.strftime("%Y%m%d", time.gmtime())


# ------------------------------------------------------------------------ SIGKILL mid-run

# The runner in a child process; after each call is committed (run_load's on_call), the
# call's id goes to a progress file, line-buffered, so it is on disk before the next call.
_RUNNER = """
import asyncio, sys
from pathlib import Path
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
url, run_dir, progress = sys.argv[1:4]
packs = load_packs()
calls = generate_calls(packs, "all", 40, 5)
cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=4), seed=5,
                pacing="none")
with open(progress, "a", buffering=1) as log:
    asyncio.run(run_load(calls, packs, cfg, Path(run_dir),
                         on_call=lambda o: log.write(o.call_id + "\\n")))
"""


def _stored(db: Path) -> dict[str, float]:
    return dict(_other_reader(db, "SELECT call_id, finished_s FROM calls"))


# Only child processes touch the store here: mutmut could never select it for a mutant.
@pytest.mark.mutation_skip
def test_every_call_finished_before_sigkill_is_in_the_store(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run-kill"
    progress = tmp_path / "progress.txt"
    with agent_process("--ttft-ms", "40", "--token-ms", "4") as url:
        proc = subprocess.Popen([sys.executable, "-c", _RUNNER, url, str(run_dir), str(progress)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90 * TIME_FACTOR
            while time.monotonic() < deadline and proc.poll() is None:
                if progress.exists() and len(progress.read_text().split()) >= 12:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        finished = progress.read_text().split()
        assert 12 <= len(finished) < 40, "the kill must land mid-run"
        db = run_dir / "store.sqlite"
        before = _stored(db)
        # Counted from the progress file, not from the store: every one of them is stored.
        assert set(finished) <= set(before), sorted(set(finished) - set(before))
        assert len(before) < 40
        res = subprocess.run([*CALLSIM, "run", "--target", url, "--resume", str(run_dir),
                              "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "complete"
    after = _stored(db)
    assert sorted(after) == [f"{i:06d}" for i in range(40)]
    assert all(after[c] == before[c] for c in before)   # kept as they were, not re-run


def test_run_ids_are_stamped_in_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")     # UTC+05:45: no hour or day lines up
    time.tzset()
    try:
        before = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        stamp = new_run_id("r")[2:17]
        after = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        assert stamp in (before, after)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
