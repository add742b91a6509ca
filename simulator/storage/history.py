"""The runs history: a SQLite index (``runs/index.sqlite``) of the runs stored under a directory.

One row per run: when, against what, under which profile, how many calls, the four gate
numbers and the gate status. The index is a cache: the truth stays in each run directory
(``summary.json`` and the store's meta, where :func:`mark_gate` also records the verdict),
so a missing or corrupt index is rebuilt by scanning ``runs/*/store.sqlite``.
``callsim runs`` lists it; ``callsim gate --baseline last-passed`` uses :func:`last_passed`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from simulator.errors import StoreError
from simulator.gate.labels import run_label
from simulator.metrics.numbers import GATE_METRICS
from simulator.storage.store import RunStore

INDEX_NAME = "index.sqlite"
NUMBERS = GATE_METRICS
_COLUMNS = ("run_id", "run_dir", "started_at", "finished_at", "status", "target", "profile",
            "model", "calls", "failed", *NUMBERS, "rubric_sha256", "passed", "gated_at",
            "label")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_dir TEXT NOT NULL,
    started_at REAL, finished_at REAL,
    status TEXT, target TEXT, profile TEXT, model TEXT,
    calls INTEGER, failed INTEGER,
    {", ".join(f"{n} REAL" for n in NUMBERS)},
    rubric_sha256 TEXT,
    passed INTEGER,
    gated_at REAL,
    label TEXT
);
"""


def index_path(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / INDEX_NAME


@contextlib.contextmanager
def _connect(runs_dir: str | Path, *, rebuild_if_missing: bool = True
             ) -> Iterator[sqlite3.Connection]:
    path = index_path(runs_dir)
    fresh = not path.exists()
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        db.executescript(_SCHEMA)
    except sqlite3.DatabaseError:
        # The index is only a cache of the run directories: start it again.
        path.unlink(missing_ok=True)
        fresh = True
        db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        db.executescript(_SCHEMA)
    if "label" not in {r[1] for r in db.execute("PRAGMA table_info(runs)")}:
        # An index written before runs had labels: add the column, fill it from the runs.
        db.execute("ALTER TABLE runs ADD COLUMN label TEXT")
        fresh = True
    try:
        if fresh and rebuild_if_missing:
            _rebuild(db, Path(runs_dir))
        yield db
    finally:
        db.close()


def _row(run_dir: Path, summary: Mapping[str, Any], meta: Mapping[str, Any],
         passed: bool | None) -> dict[str, Any]:
    gate = summary.get("gate") or summary.get("numbers") or {}
    calls = summary.get("calls") or {}
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir.resolve()),
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at"),
        "status": meta.get("status") or summary.get("status"),
        "target": meta.get("target") or summary.get("target"),
        "profile": meta.get("profile") or summary.get("profile"),
        "model": meta.get("model"),
        "calls": calls.get("measured", calls.get("completed")),
        "failed": calls.get("failed"),
        **{k: gate.get(k) for k in NUMBERS},
        "rubric_sha256": meta.get("rubric_sha256"),
        "passed": None if passed is None else int(passed),
        "gated_at": (meta.get("gate_at") or time.time()) if passed is not None else None,
        "label": run_label(meta),
    }


def _upsert(db: sqlite3.Connection, row: Mapping[str, Any], keep_gate: bool) -> None:
    cols = ", ".join(_COLUMNS)
    marks = ", ".join("?" for _ in _COLUMNS)
    update = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS
                       if c != "run_id" and not (keep_gate and c in ("passed", "gated_at")))
    db.execute(f"INSERT INTO runs ({cols}) VALUES ({marks}) "
               f"ON CONFLICT(run_id) DO UPDATE SET {update}",
               [row.get(c) for c in _COLUMNS])


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary, meta) of a stored run; the summary is recomputed when summary.json is absent."""
    store = RunStore(run_dir)
    try:
        meta = store.meta()
        summary_file = run_dir / "summary.json"
        summary: dict[str, Any] | None = None
        if summary_file.exists():
            with contextlib.suppress(ValueError, OSError):
                summary = json.loads(summary_file.read_text())
        if summary is None:  # killed before the end: summarise what was stored
            from simulator.metrics.summary import summarize

            summary = summarize(store)
        return summary, meta
    finally:
        store.close()


def _rebuild(db: sqlite3.Connection, runs_dir: Path) -> int:
    n = 0
    for db_file in sorted(runs_dir.glob("*/store.sqlite")):
        try:
            summary, meta = _read_run(db_file.parent)
        except (StoreError, sqlite3.DatabaseError):
            continue  # not a readable run: leave it out of the index
        passed = meta.get("gate_passed")
        _upsert(db, _row(db_file.parent, summary, meta,
                         None if passed is None else bool(passed)), keep_gate=False)
        n += 1
    return n


def rebuild_index(runs_dir: str | Path) -> int:
    """Rebuild the index from the run directories; returns the number of runs indexed."""
    index_path(runs_dir).unlink(missing_ok=True)
    with _connect(runs_dir, rebuild_if_missing=False) as db:
        return _rebuild(db, Path(runs_dir))


def index_run(runs_dir: str | Path, run_dir: str | Path, summary: Mapping[str, Any],
              meta: Mapping[str, Any], passed: bool | None = None) -> None:
    """Add or update one run in the index (call when a run finishes).

    ``summary`` is :func:`simulator.metrics.summary.summarize`'s dict, ``meta`` the store's
    meta. ``passed=None`` keeps any gate status already recorded for the run.
    """
    with _connect(runs_dir) as db:
        _upsert(db, _row(Path(run_dir), summary, meta, passed), keep_gate=passed is None)
    if passed is not None:
        mark_gate(runs_dir, Path(run_dir).name, passed)


def mark_gate(runs_dir: str | Path, run_id: str, passed: bool) -> None:
    """Record that ``run_id`` (as candidate) passed or failed a gate.

    Written to the run's own store meta too (``gate_passed``, ``gate_at``), so a rebuilt
    index keeps it. Raises :class:`StoreError` when the run is neither indexed nor under
    ``runs_dir``.
    """
    now = time.time()
    with _connect(runs_dir) as db:
        found = db.execute("SELECT run_dir FROM runs WHERE run_id=?", (run_id,)).fetchone()
        run_dir = Path(found[0]) if found else Path(runs_dir) / run_id
        if not (run_dir / "store.sqlite").exists():
            raise StoreError(f"{run_id}: no such run under {runs_dir}")
        store = RunStore(run_dir)
        try:
            store.set_meta(gate_passed=passed, gate_at=now)
        finally:
            store.close()
        if not found:
            summary, meta = _read_run(run_dir)
            _upsert(db, _row(run_dir, summary, meta, passed), keep_gate=False)
        db.execute("UPDATE runs SET passed=?, gated_at=? WHERE run_id=?",
                   (int(passed), now, run_id))


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every indexed run whose directory still exists, oldest first.

    Each dict holds ``date`` (UTC, from the start time), ``run_id``, ``run_dir``,
    ``label`` (``callsim run --label``; None when none was given), ``target``, ``profile``,
    ``model``, ``status``, ``calls``, ``failed``, the four numbers,
    ``rubric_sha256`` and ``gate`` (``"passed"``, ``"failed"`` or ``None``).
    """
    if not Path(runs_dir).exists():
        return []
    with _connect(runs_dir) as db:
        cur = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs "
                         "ORDER BY COALESCE(started_at, 0), run_id")
        rows = [dict(zip(_COLUMNS, r, strict=True)) for r in cur]
        gone = [r["run_id"] for r in rows if not (Path(r["run_dir"]) / "store.sqlite").exists()]
        if gone:
            db.executemany("DELETE FROM runs WHERE run_id=?", [(g,) for g in gone])
    out = []
    for r in rows:
        if r["run_id"] in gone:
            continue
        r["date"] = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["started_at"]))
                     if r["started_at"] else None)
        p = r.pop("passed")
        r["gate"] = None if p is None else ("passed" if p else "failed")
        out.append(r)
    return out


def last_passed(runs_dir: str | Path) -> Path | None:
    """The directory of the run that most recently passed a gate as candidate, if any."""
    with _connect(runs_dir) as db:
        for (run_dir,) in db.execute(
            "SELECT run_dir FROM runs WHERE passed=1 "
            "ORDER BY gated_at DESC, started_at DESC, run_id DESC"
        ):
            if (Path(run_dir) / "store.sqlite").exists():
                return Path(run_dir)
    return None


def render_runs(rows: list[dict[str, Any]]) -> Any:
    """A rich Table of :func:`list_runs` rows for ``callsim runs``."""
    from rich.table import Table
    from rich.text import Text

    def f(v: Any, fmt: str, scale: float = 1.0) -> str:
        return "—" if v is None else format(v * scale, fmt)

    t = Table(title=f"callsim runs ({len(rows)})")
    for name, justify in (("date (UTC)", "left"), ("run", "left"), ("label", "left"),
                          ("target", "left"),
                          ("profile", "left"), ("calls", "right"), ("p95 ttft", "right"),
                          ("arg acc.", "right"), ("refusal", "right"), ("cost/session", "right"),
                          ("gate", "left")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        gate = r["gate"]
        calls = f"{r['calls'] if r['calls'] is not None else '—'}"
        if r.get("failed"):
            calls += f" ({r['failed']} failed)"
        status = r.get("status")
        run = Text(r["run_id"])
        if status and status != "complete":
            run.append(f" {status}", style="yellow")
        t.add_row(
            r["date"] or "—", run, r.get("label") or "—", r["target"] or "—",
            r["profile"] or "—", calls,
            f(r["p95_ttft_ms"], ".0f") + (" ms" if r["p95_ttft_ms"] is not None else ""),
            f(r["tool_arg_accuracy"], ".1f", 100) + ("%" if r["tool_arg_accuracy"] is not None
                                                    else ""),
            f(r["refusal_rate"], ".1f", 100) + ("%" if r["refusal_rate"] is not None else ""),
            ("$" + f(r["cost_per_session_usd"], ".5f")) if r["cost_per_session_usd"] is not None
            else "—",
            Text(gate or "—", style={"passed": "bold green", "failed": "bold red"}.get(
                gate or "", "dim")),
        )
    return t
