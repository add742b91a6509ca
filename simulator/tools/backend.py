"""The simulated tool backend: the records of every generated persona, answering the packs'
tools (lookups, create / cancel / update, transfer) on SQLite.

Records are scoped per call (a call only sees the rows its script put there), so a missing
record is reliably missing and calls cannot disturb each other. Every write is logged per
call for grading (:meth:`ToolBackend.writes`, :meth:`ToolBackend.final_outcome`).
``create_tools_app`` exposes the same backend over HTTP for agents that call tools
themselves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from simulator.callscript import CallScript
from simulator.personas.pack import Pack, ToolBehaviour
from simulator.seeding import derive_seed
from simulator.slots import normalise_arg, sounds_like

CALL_ID_HEADER = "X-Callsim-Call-Id"
MAX_BODY = 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    call_id TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (call_id, tbl, key)
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY, pack TEXT NOT NULL, intent TEXT NOT NULL,
    action_tool TEXT, lookup_found INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS writes (
    call_id TEXT NOT NULL, seq INTEGER NOT NULL, tool TEXT NOT NULL, op TEXT NOT NULL,
    ok INTEGER NOT NULL, arguments TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
"""


# How lookups compare a tool call's arguments with a record (ToolBackend ``match``).
LOOKUP_MATCH = ("exact", "sounds-like")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


class ToolBackend:
    """Simulated backend for the packs' tools.

    ``path`` is an SQLite database path (":memory:" by default). One lock serialises all
    access, which is plenty for one asyncio loop (each operation is microseconds)."""

    def __init__(self, packs: Mapping[str, Pack], path: str = ":memory:",
                 match: str = "exact") -> None:
        if match not in LOOKUP_MATCH:
            raise ValueError(f"lookup match {match!r}: one of {', '.join(LOOKUP_MATCH)}")
        self.packs = dict(packs)
        # "exact": a record matches when every given argument equals its field, normalised;
        # "sounds-like": words without digits may be spelt otherwise if they sound the same
        # (slots.sounds_like), as a caller's name or street heard over a phone line.
        self.match = match
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ loading

    def load(self, calls: Iterable[CallScript]) -> int:
        """Insert every call's backend records (and remember its pack and intent).
        Returns the number of calls loaded. Loading a call again replaces its rows."""
        n = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for c in calls:
                    pack = self.packs.get(c.pack)
                    intent = pack.intents.get(c.intent) if pack else None
                    action = intent.action.tool if intent and intent.action else None
                    self._db.execute("DELETE FROM records WHERE call_id = ?", (c.call_id,))
                    self._db.execute("DELETE FROM writes WHERE call_id = ?", (c.call_id,))
                    self._db.execute(
                        "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, 0)",
                        (c.call_id, c.pack, c.intent, action),
                    )
                    self._db.executemany(
                        "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                        [(c.call_id, r.table, r.key, _dumps(r.data)) for r in c.backend_records],
                    )
                    n += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    # ------------------------------------------------------------------ execution

    def _behaviour(self, call_id: str, name: str) -> tuple[str, ToolBehaviour] | None:
        row = self._db.execute("SELECT pack FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row and row[0] in self.packs:
            beh = self.packs[row[0]].backend.get(name)
            return (row[0], beh) if beh else None
        for pname in sorted(self.packs):
            beh = self.packs[pname].backend.get(name)
            if beh:
                return pname, beh
        return None

    def execute(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        """Run tool ``name`` for call ``call_id``; always returns a JSON-serialisable dict.

        Lookups: ``{"found": true, "record": {...}}`` or ``{"found": false, "error":
        "not_found", "message": ...}``. Writes: ``{"ok": true, "status": ..., <id field>:
        ...}``. Unknown tools and bad arguments: ``{"error": ..., "message": ...}``."""
        with self._lock:
            found = self._behaviour(call_id, name)
            if found is None:
                return _err("unknown_tool", f"unknown tool {name!r}")
            _, beh = found
            if not isinstance(arguments, dict):
                return _err("invalid_arguments", f"{name}: arguments must be a JSON object")
            need = list(beh.required)
            if beh.op in ("lookup", "cancel", "update") and not beh.match_any:
                need += [a for a in beh.match if a not in need]
            missing = [a for a in need if normalise_arg(arguments.get(a)) == ""]
            if (
                beh.op == "lookup"
                and beh.match_any
                and not any(normalise_arg(arguments.get(a)) for a in beh.match)
            ):
                missing = [" or ".join(beh.match)]
            if missing:
                return _err("invalid_arguments", f"{name}: missing argument {', '.join(missing)}")
            if beh.op == "lookup":
                return self._lookup(call_id, beh, arguments)
            return self._write(call_id, name, beh, arguments)

    def _find(
        self, call_id: str, beh: ToolBehaviour, args: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        given = {a: normalise_arg(args.get(a)) for a in beh.match}
        given = {a: v for a, v in given.items() if v}
        same = sounds_like if self.match == "sounds-like" else str.__eq__
        rows = self._db.execute(
            "SELECT key, data FROM records WHERE call_id = ? AND tbl = ? ORDER BY key",
            (call_id, beh.table),
        ).fetchall()
        for key, data in rows:
            rec = json.loads(data)
            if given and all(same(normalise_arg(rec.get(beh.match[a])), v)
                             for a, v in given.items()):
                return key, rec
        return None

    def _lookup(self, call_id: str, beh: ToolBehaviour, args: Mapping[str, Any]) -> dict[str, Any]:
        hit = self._find(call_id, beh, args)
        if hit is None:
            shown = ", ".join(f"{a}={args.get(a)!r}" for a in beh.match if args.get(a))
            return {
                "found": False,
                "error": "not_found",
                "message": f"No {beh.table} record matches {shown}.",
            }
        self._db.execute("UPDATE calls SET lookup_found = 1 WHERE call_id = ?", (call_id,))
        return {"found": True, "record": hit[1]}

    def _write(
        self, call_id: str, name: str, beh: ToolBehaviour, args: dict[str, Any]
    ) -> dict[str, Any]:
        seq = self._db.execute(
            "SELECT COUNT(*) FROM writes WHERE call_id = ?", (call_id,)
        ).fetchone()[0]
        result: dict[str, Any]
        if beh.op == "create":
            new_id = f"{beh.id_prefix}-{derive_seed(call_id, name, seq) % 900000 + 100000}"
            data = {**args, beh.id_field: new_id}
            assert beh.table is not None
            self._db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                (call_id, beh.table, new_id, _dumps(data)),
            )
            result = {"ok": True, "status": "created", beh.id_field: new_id}
        elif beh.op in ("cancel", "update"):
            hit = self._find(call_id, beh, args)
            if hit is None:
                shown = ", ".join(f"{a}={args.get(a)!r}" for a in beh.match)
                result = {
                    "ok": False,
                    "error": "not_found",
                    "message": f"No {beh.table} record matches {shown}.",
                }
            else:
                key, rec = hit
                for field, val in beh.updates.items():
                    rec[field] = args.get(val[4:]) if val.startswith("arg:") else val
                self._db.execute(
                    "UPDATE records SET data = ? WHERE call_id = ? AND tbl = ? AND key = ?",
                    (_dumps(rec), call_id, beh.table, key),
                )
                status = "cancelled" if beh.op == "cancel" else "updated"
                table = self.packs_table_key(call_id, beh)
                result = {"ok": True, "status": status, table: key}
        else:  # transfer
            result = {
                "ok": True,
                "status": "transferring",
                "transfer_id": f"T-{derive_seed(call_id, name, seq) % 900000 + 100000}",
            }
        self._db.execute(
            "INSERT INTO writes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                call_id,
                seq,
                name,
                beh.op,
                1 if result.get("ok") else 0,
                _dumps(args),
                _dumps(result),
            ),
        )
        return result

    def packs_table_key(self, call_id: str, beh: ToolBehaviour) -> str:
        """The key field name of ``beh.table`` (for confirmations), "id" if unknown."""
        for pack in self.packs.values():
            if beh.table in pack.tables:
                return pack.tables[beh.table].key
        return "id"

    # ------------------------------------------------------------------ grading

    def writes(self, call_id: str) -> list[dict[str, Any]]:
        """Every write (create/cancel/update/transfer) attempted during the call, in order:
        ``{"seq", "tool", "op", "ok", "arguments", "result"}``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, tool, op, ok, arguments, result FROM writes"
                " WHERE call_id = ? ORDER BY seq",
                (call_id,),
            ).fetchall()
        return [
            {
                "seq": s,
                "tool": t,
                "op": o,
                "ok": bool(ok),
                "arguments": json.loads(a),
                "result": json.loads(r),
            }
            for s, t, o, ok, a, r in rows
        ]

    def final_outcome(self, call_id: str) -> str | None:
        """ "transferred" after a successful transfer, "completed" once the intent's write
        succeeded (or, for an intent without a write, once its lookup found the record),
        else None."""
        with self._lock:
            call = self._db.execute(
                "SELECT action_tool, lookup_found FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
            rows = self._db.execute(
                "SELECT tool, op FROM writes WHERE call_id = ? AND ok = 1", (call_id,)
            ).fetchall()
        if any(op == "transfer" for _, op in rows):
            return "transferred"
        if call is None:
            return None
        action, lookup_found = call
        if action is None:
            return "completed" if lookup_found else None
        return "completed" if any(tool == action for tool, _ in rows) else None

    def rows(self, call_id: str, table: str) -> list[dict[str, Any]]:
        """The call's current rows of ``table`` (for grading the final state)."""
        with self._lock:
            got = self._db.execute(
                "SELECT data FROM records WHERE call_id = ? AND tbl = ? ORDER BY key",
                (call_id, table),
            ).fetchall()
        return [json.loads(d) for (d,) in got]


def create_tools_app(backend: ToolBackend) -> web.Application:
    """An aiohttp app exposing ``POST /tools/{name}`` (JSON arguments in the body, the call
    id in the ``X-Callsim-Call-Id`` header). 400 on a missing header or a body that is not
    a JSON object, 404 for an unknown tool, else 200 with the tool result."""

    async def handle(request: web.Request) -> web.Response:
        call_id = request.headers.get(CALL_ID_HEADER)
        if not call_id:
            return web.json_response(
                _err("missing_call_id", f"header {CALL_ID_HEADER} is required"), status=400
            )
        try:
            args = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response(_err("invalid_json", "body is not valid JSON"), status=400)
        if not isinstance(args, dict):
            return web.json_response(
                _err("invalid_arguments", "body must be a JSON object"), status=400
            )
        result = backend.execute(call_id, request.match_info["name"], args)
        status = 404 if result.get("error") == "unknown_tool" else 200
        return web.json_response(result, status=status)

    from simulator.serverlimits import in_flight_limit

    app = web.Application(client_max_size=MAX_BODY, middlewares=[in_flight_limit()])
    app.router.add_post("/tools/{name}", handle)
    return app
