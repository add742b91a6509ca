"""The run store: one SQLite database (WAL) per run, written as each call completes.

A run directory ``runs/<run_id>/`` holds ``store.sqlite`` (config, every call, turn,
perturbation and fault, latency histograms), ``calls.jsonl`` (the exact scripts replayed, so
``--resume`` can finish the calls that had not completed) and ``summary.json``. Each call is
committed in one transaction, so ``kill -9`` loses no completed call.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator.errors import StoreError
from simulator.results import CallOutcome

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    idx INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    script_id TEXT NOT NULL,
    pack TEXT, intent TEXT, profile TEXT,
    ok INTEGER NOT NULL,
    error TEXT,
    warmup INTEGER NOT NULL DEFAULT 0,
    scheduled_s REAL, started_s REAL, finished_s REAL,
    dispatch_delay_ms REAL,
    outcome TEXT NOT NULL,
    transcript TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    call_idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    caller_turn INTEGER,
    phase TEXT NOT NULL,
    scheduled_s REAL, sent_s REAL,
    conn_setup_ms REAL,
    ttft_ms REAL, ttft_from_schedule_ms REAL, last_byte_ms REAL,
    loop_lag_ms REAL,
    stalls INTEGER, max_gap_ms REAL,
    prompt_tokens INTEGER, completion_tokens INTEGER,
    interrupted INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (call_idx, seq)
);
CREATE TABLE IF NOT EXISTS events (
    call_idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS histograms (name TEXT PRIMARY KEY, encoded TEXT NOT NULL);
"""


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique run id: ``run-20261125-160102-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{prefix}-{stamp}-{os.urandom(2).hex()}"


class RunStore:
    """Writer and reader of one run's database. Not shared across threads."""

    def __init__(self, run_dir: str | Path, *, create: bool = False,
                 redact: tuple[str, ...] = ()) -> None:
        """Open (or with ``create``, make) the store of ``run_dir``. Every string in
        ``redact`` (API keys) is replaced by ``***`` in whatever is written, so a hostile
        agent that echoes a key back cannot get it into the store or the reports."""
        self.dir = Path(run_dir)
        self._redact = tuple(s for s in redact if s)
        db = self.dir / "store.sqlite"
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        elif not db.exists():
            raise StoreError(f"{self.dir}: not a callsim run (no store.sqlite)")
        try:
            self.db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL: a committed transaction survives a killed process.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{db}: cannot open run store: {exc}") from None

    @property
    def run_id(self) -> str:
        return self.dir.name

    # -- meta ---------------------------------------------------------------------------
    def set_meta(self, **items: Any) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for k, v in items.items():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, json.dumps(v))
                )

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # -- calls --------------------------------------------------------------------------
    def record_call(
        self,
        idx: int,
        outcome: CallOutcome,
        *,
        warmup: bool,
        scheduled_s: float | None,
        started_s: float,
        finished_s: float,
        dispatch_delay_ms: float | None,
        turns: list[dict[str, Any]],
        events: list[tuple[str, dict[str, Any]]],
        transcript: dict[str, Any],
    ) -> None:
        """Commit one finished call, its turns and its events in a single transaction."""
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM turns WHERE call_idx=?", (idx,))
                self.db.execute("DELETE FROM events WHERE call_idx=?", (idx,))
                self.db.execute(
                    "INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        idx, outcome.call_id, outcome.script_id, outcome.pack, outcome.intent,
                        outcome.profile, int(outcome.ok), outcome.error, int(warmup),
                        scheduled_s, started_s, finished_s, dispatch_delay_ms,
                        self._clean(json.dumps(asdict(outcome), separators=(",", ":"))),
                        self._clean(json.dumps(transcript, separators=(",", ":"),
                                               ensure_ascii=False)),
                    ),
                )
                self.db.executemany(
                    "INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            idx, t["seq"], t.get("caller_turn"), t["phase"], t.get("scheduled_s"),
                            t.get("sent_s"), t.get("conn_setup_ms"), t.get("ttft_ms"),
                            t.get("ttft_from_schedule_ms"), t.get("last_byte_ms"),
                            t.get("loop_lag_ms"), t.get("stalls"), t.get("max_gap_ms"),
                            t.get("prompt_tokens"), t.get("completion_tokens"),
                            int(bool(t.get("interrupted"))), t.get("error"),
                        )
                        for t in turns
                    ],
                )
                self.db.executemany(
                    "INSERT INTO events VALUES (?,?,?)",
                    [(idx, kind, self._clean(json.dumps(data, separators=(",", ":"))))
                     for kind, data in events],
                )
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.dir}: cannot write call {idx}: {exc}") from None

    def _clean(self, text: str) -> str:
        for secret in self._redact:
            text = text.replace(secret, "***")
        return text

    def completed_indices(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT idx FROM calls")}

    def outcomes(self, *, include_warmup: bool = False,
                 include_flagged: bool = False) -> list[CallOutcome]:
        """The graded calls. Calls whose LLM caller invented a value (``extra``
        ``caller_invented``) are left out unless ``include_flagged``."""
        q = "SELECT outcome FROM calls" + ("" if include_warmup else " WHERE warmup=0")
        out = []
        for (raw,) in self.db.execute(q + " ORDER BY idx"):
            d = json.loads(raw)
            d["ttft_ms"] = tuple(d["ttft_ms"])
            if not include_flagged and (d.get("extra") or {}).get("caller_invented"):
                continue
            out.append(CallOutcome(**d))
        return out

    def turns(self) -> Iterator[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT t.*, c.warmup FROM turns t JOIN calls c ON c.idx = t.call_idx"
            " ORDER BY t.call_idx, t.seq"
        )
        cols = [d[0] for d in cur.description]
        for row in cur:
            yield dict(zip(cols, row, strict=True))

    def calls(self) -> Iterator[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM calls ORDER BY idx")
        cols = [d[0] for d in cur.description]
        for row in cur:
            d = dict(zip(cols, row, strict=True))
            d["outcome"] = json.loads(d["outcome"])
            d["transcript"] = json.loads(d["transcript"])
            yield d

    def events(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for idx, kind, data in self.db.execute("SELECT * FROM events ORDER BY call_idx"):
            yield idx, kind, json.loads(data)

    # -- histograms ---------------------------------------------------------------------
    def put_histogram(self, name: str, encoded: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO histograms(name, encoded) VALUES (?, ?)", (name, encoded)
            )

    def histograms(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, encoded FROM histograms"))

    def close(self) -> None:
        self.db.close()


def resolve_run(ref: str, runs_dir: str | Path = "runs") -> Path:
    """A run directory from a path or a run id under ``runs_dir`` (``last`` = newest)."""
    p = Path(ref)
    if (p / "store.sqlite").exists():
        return p
    base = Path(runs_dir)
    if ref == "last":
        cands = sorted(d for d in base.glob("*/store.sqlite")) if base.exists() else []
        if not cands:
            raise StoreError(f"{base}: no runs stored yet")
        return max(cands, key=lambda d: d.stat().st_mtime).parent
    if (base / ref / "store.sqlite").exists():
        return base / ref
    raise StoreError(f"{ref}: no such run (looked for {p}/store.sqlite and {base / ref})")
