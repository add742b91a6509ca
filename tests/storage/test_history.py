"""The runs history index: listing, gate status, last passed, rebuilt when deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reports._fixture import build_run  # tests/ is on sys.path (pytest rootdir import)
from rich.console import Console

from simulator.errors import StoreError
from simulator.metrics.summary import summarize
from simulator.storage.history import (
    index_path,
    index_run,
    last_passed,
    list_runs,
    mark_gate,
    render_runs,
)
from simulator.storage.store import RunStore


def _finish(run_dir: Path, runs: Path, started: float) -> None:
    """What the runner does at the end of a run: summary.json, then index it."""
    store = RunStore(run_dir)
    store.set_meta(started_at=started)
    summary = summarize(store)
    meta = store.meta()
    store.close()
    (run_dir / "summary.json").write_text(json.dumps(summary))
    index_run(runs, run_dir, summary, meta)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for i, name in enumerate(("run-a", "run-b", "run-c")):
        build_run(runs / name, calls=8, seed=i)
        _finish(runs / name, runs, 1_790_000_000.0 + 60 * i)
    return runs


def test_lists_runs_with_the_four_numbers(runs: Path) -> None:
    rows = list_runs(runs)
    assert [r["run_id"] for r in rows] == ["run-a", "run-b", "run-c"]
    r = rows[0]
    assert r["date"] == "2026-09-21 14:13" and r["calls"] == 8 and r["profile"] == "typical_call"
    assert r["p95_ttft_ms"] > 0 and 0 <= r["tool_arg_accuracy"] <= 1
    assert r["cost_per_session_usd"] > 0 and r["gate"] is None
    text = Console(width=200, record=True, force_terminal=False)
    text.print(render_runs(rows))
    out = text.export_text()
    assert "run-b" in out and "typical_call" in out and "ms" in out


def test_last_passed_is_the_most_recent_pass(runs: Path) -> None:
    assert last_passed(runs) is None
    mark_gate(runs, "run-a", True)
    mark_gate(runs, "run-c", False)
    assert last_passed(runs) == (runs / "run-a").resolve()
    mark_gate(runs, "run-b", True)
    assert last_passed(runs) == (runs / "run-b").resolve()
    assert {r["run_id"]: r["gate"] for r in list_runs(runs)} == {
        "run-a": "passed", "run-b": "passed", "run-c": "failed"}


def test_reindexing_a_run_keeps_its_gate_status(runs: Path) -> None:
    mark_gate(runs, "run-a", True)
    _finish(runs / "run-a", runs, 1_790_000_000.0)
    assert last_passed(runs) == (runs / "run-a").resolve()


def test_index_is_rebuilt_from_the_run_directories(runs: Path) -> None:
    mark_gate(runs, "run-b", True)
    index_path(runs).unlink()
    (runs / "run-c" / "summary.json").unlink()   # a killed run: summarised from its store
    rows = list_runs(runs)
    assert [r["run_id"] for r in rows] == ["run-a", "run-b", "run-c"]
    assert rows[2]["calls"] == 8
    assert last_passed(runs) == (runs / "run-b").resolve()


def test_corrupt_index_is_rebuilt(runs: Path) -> None:
    index_path(runs).write_bytes(b"not a database at all" * 100)
    assert len(list_runs(runs)) == 3


def test_deleted_run_disappears_and_unknown_run_is_an_error(runs: Path) -> None:
    import shutil

    shutil.rmtree(runs / "run-a")
    assert [r["run_id"] for r in list_runs(runs)] == ["run-b", "run-c"]
    with pytest.raises(StoreError, match="run-zz"):
        mark_gate(runs, "run-zz", True)
    assert list_runs(runs / "nowhere") == []


def test_runs_show_their_label(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    build_run(runs / "run-x", calls=8, seed=1)
    store = RunStore(runs / "run-x")
    store.set_meta(label="gpt-4o, prompt v2")
    store.close()
    _finish(runs / "run-x", runs, 1_790_000_000.0)
    build_run(runs / "run-y", calls=8, seed=2)
    _finish(runs / "run-y", runs, 1_790_000_060.0)
    rows = list_runs(runs)
    assert [r["label"] for r in rows] == ["gpt-4o, prompt v2", None]
    text = Console(width=200, record=True, force_terminal=False)
    text.print(render_runs(rows))
    assert "gpt-4o, prompt v2" in text.export_text()


def test_an_index_from_before_labels_gains_them(runs: Path) -> None:
    import sqlite3

    store = RunStore(runs / "run-b")
    store.set_meta(label="candidate")
    store.close()
    db = sqlite3.connect(index_path(runs))
    db.execute("ALTER TABLE runs DROP COLUMN label")    # the index as older versions wrote it
    db.commit()
    db.close()
    assert [r["label"] for r in list_runs(runs)] == [None, "candidate", None]
