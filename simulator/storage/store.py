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
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from simulator.errors import StoreError
from simulator.results import TURN_COLUMNS, CallOutcome, CallRecord, TurnRecord


def _sql_type(annotation: Any) -> str:
    text = str(annotation)
    if text.startswith(("int", "bool")):
        return "INTEGER"
    if text.startswith("float"):
        return "REAL"
    return "TEXT"


_TURN_TYPES = {f.name: _sql_type(f.type) for f in fields(TurnRecord)}
_TURN_DDL = ",\n    ".join(f"{c} {_TURN_TYPES[c]}" for c in TURN_COLUMNS if c != "seq")

#: What a call row holds beside the outcome and transcript (JSON): the outcome's identity
#: and status, then the call's own scalar fields.
_OUTCOME_COLUMNS = ("call_id", "script_id", "pack", "intent", "profile", "arm", "ok", "error")
_RECORD_COLUMNS = ("warmup", "scheduled_s", "started_s", "finished_s", "dispatch_delay_ms")
CALL_COLUMNS = ("idx", *_OUTCOME_COLUMNS, *_RECORD_COLUMNS, "outcome", "transcript")
_TUPLE_FIELDS = tuple(f.name for f in fields(CallOutcome) if str(f.type).startswith("tuple"))

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    idx INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    script_id TEXT NOT NULL,
    pack TEXT, intent TEXT, profile TEXT,
    arm TEXT NOT NULL DEFAULT '',
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
    {_TURN_DDL},
    PRIMARY KEY (call_idx, seq)
);
CREATE TABLE IF NOT EXISTS events (
    call_idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS histograms (name TEXT PRIMARY KEY, encoded TEXT NOT NULL);
"""
_INSERT_CALL = (f"INSERT OR REPLACE INTO calls ({', '.join(CALL_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(CALL_COLUMNS))})")
_INSERT_TURN = (f"INSERT INTO turns (call_idx, {', '.join(TURN_COLUMNS)}) "
                f"VALUES ({','.join('?' * (len(TURN_COLUMNS) + 1))})")


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
            self._add_missing_columns()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{db}: cannot open run store: {exc}") from None

    def _add_missing_columns(self) -> None:
        """A store written before a per-turn field (or the call's arm) existed gets the
        column (empty for its turns; a call's arm read from its stored outcome), so old
        runs still read, export and summarise."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(turns)")}
        for col in TURN_COLUMNS:
            if col not in have:
                self.db.execute(f"ALTER TABLE turns ADD COLUMN {col} {_TURN_TYPES[col]}")
        if "arm" not in {row[1] for row in self.db.execute("PRAGMA table_info(calls)")}:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("ALTER TABLE calls ADD COLUMN arm TEXT NOT NULL DEFAULT ''")
                self.db.execute("UPDATE calls SET arm = COALESCE(json_extract(outcome, '$.arm'),"
                                " '')")

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
    def record_call(self, rec: CallRecord) -> None:
        """Commit one finished call, its turns and its events in a single transaction."""
        o, idx = rec.outcome, rec.idx
        # Every text written is redacted, the outcome's error column too.
        row = (idx, *(self._clean(v) if isinstance(v, str) else v
                      for v in (getattr(o, c) for c in _OUTCOME_COLUMNS)),
               *(getattr(rec, c) for c in _RECORD_COLUMNS),
               self._clean(json.dumps(asdict(o), separators=(",", ":"))),
               self._clean(json.dumps(rec.transcript, separators=(",", ":"),
                                      ensure_ascii=False)))
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM turns WHERE call_idx=?", (idx,))
                self.db.execute("DELETE FROM events WHERE call_idx=?", (idx,))
                self.db.execute(_INSERT_CALL, row)
                self.db.executemany(
                    _INSERT_TURN,
                    [(idx, *(getattr(t, c) for c in TURN_COLUMNS)) for t in rec.turns],
                )
                self.db.executemany(
                    "INSERT INTO events VALUES (?,?,?)",
                    [(idx, kind, self._clean(json.dumps(data, separators=(",", ":"))))
                     for kind, data in rec.events],
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
                 arm: str | None = None, include_flagged: bool = False
                 ) -> list[CallOutcome]:
        """Graded calls in call order; ``arm``: only that arm's calls of an A/B run. Calls
        whose LLM caller invented a value (``caller_invented``) are left out unless
        ``include_flagged``."""
        where = ([] if include_warmup else ["warmup=0"]) + ([] if arm is None else ["arm=?"])
        q = "SELECT outcome FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
        out = []
        for (raw,) in self.db.execute(q + " ORDER BY idx", () if arm is None else (arm,)):
            d = json.loads(raw)
            for k in _TUPLE_FIELDS:
                if k in d:
                    d[k] = tuple(d[k])
            o = CallOutcome(**d)
            if o.caller_invented and not include_flagged:
                continue
            out.append(o)
        return out

    def turns(self) -> Iterator[dict[str, Any]]:
        """Every stored turn as a row: ``call_idx``, the :data:`TURN_COLUMNS` and the call's
        ``warmup`` and ``arm``, in call and turn order."""
        cur = self.db.execute(
            f"SELECT t.call_idx, {', '.join('t.' + c for c in TURN_COLUMNS)}, c.warmup, c.arm"
            " FROM turns t JOIN calls c ON c.idx = t.call_idx ORDER BY t.call_idx, t.seq"
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


#: ``callsim export`` formats: every call and turn as JSON lines, one CSV row per call, or
#: one CSV row per turn.
EXPORT_FORMATS = ("jsonl", "csv", "turns-csv")
_CALL_CSV = ("idx", *_OUTCOME_COLUMNS, *_RECORD_COLUMNS,
             *(f.name for f in fields(CallOutcome)
               if f.name not in _OUTCOME_COLUMNS and f.name not in _TUPLE_FIELDS
               and f.name != "extra"),
             "turns", *(f"{k}_first" for k in _TUPLE_FIELDS))


def export_run(store: RunStore, fmt: str, out: Any) -> None:
    """Write every call of ``store`` to the text stream ``out`` as ``fmt``.

    ``jsonl``: each call as ``{"record": "call", ...}`` (outcome and transcript included)
    followed by its turns as ``{"record": "turn", "call_idx": ..., <TurnRecord fields>}``.
    ``csv``: one row per call (first value of each per-turn timing). ``turns-csv``: one row
    per turn, the :class:`~simulator.results.TurnRecord` columns and the call's warm-up flag
    and arm. A call's ``arm`` (A/B runs) is a column of ``csv`` and of each call record."""
    import csv

    turns: dict[int, list[dict[str, Any]]] = {}
    for t in store.turns():
        turns.setdefault(t["call_idx"], []).append(t)
    if fmt == "jsonl":
        for c in store.calls():
            out.write(json.dumps({"record": "call", **c}, separators=(",", ":"),
                                 ensure_ascii=False) + "\n")
            for t in turns.get(c["idx"], []):
                row = {"record": "turn", "call_idx": t["call_idx"],
                       **{k: t[k] for k in TURN_COLUMNS}}
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(_CALL_CSV)
        for c in store.calls():
            o = c["outcome"]
            row = {**o, **{k: v for k, v in c.items() if k != "outcome"},
                   "turns": len(turns.get(c["idx"], [])),
                   **{f"{k}_first": (o.get(k) or [None])[0] for k in _TUPLE_FIELDS}}
            w.writerow([row.get(k) for k in _CALL_CSV])
    elif fmt == "turns-csv":
        w = csv.writer(out)
        cols = ("call_idx", *TURN_COLUMNS, "warmup", "arm")
        w.writerow(cols)
        for rows in turns.values():
            for t in rows:
                w.writerow([t[k] for k in cols])
    else:
        raise StoreError(f"export format {fmt!r}: known are {', '.join(EXPORT_FORMATS)}")
