"""The tool backend: lookups after normalisation, writes logged per call, HTTP access."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from simulator.callscript import CallScript
from simulator.personas.generator import generate_calls
from simulator.personas.pack import load_packs
from simulator.tools.backend import CALL_ID_HEADER, ToolBackend, create_tools_app
from tests.conftest import serve_app

PACKS = load_packs()


def _call(pack: str, intent: str, exists: bool = True) -> CallScript:
    return next(
        c
        for c in generate_calls(PACKS, pack, 300, 12)
        if c.intent == intent and c.record_exists is exists
    )


def test_lookup_matches_after_normalisation_and_scopes_per_call() -> None:
    call = _call("healthcare", "cancel_appointment")
    other = _call("healthcare", "cancel_appointment", exists=False)
    be = ToolBackend(PACKS)
    be.load([call, other])
    rec = call.backend_records[0].data
    y, m, d = rec["date_of_birth"].split("-")
    hit = be.execute(
        call.call_id,
        "find_patient",
        {"name": f"  {rec['name'].upper()}. ", "date_of_birth": rec["date_of_birth"]},
    )
    assert hit == {"found": True, "record": rec}
    miss = be.execute(
        call.call_id,
        "find_patient",
        {"name": rec["name"], "date_of_birth": f"{y}-{m}-{int(d) % 28 + 1:02d}"},
    )
    assert miss["found"] is False and miss["error"] == "not_found" and miss["message"]
    # Another call cannot see this call's records.
    assert (
        be.execute(
            other.call_id,
            "find_patient",
            {"name": rec["name"], "date_of_birth": rec["date_of_birth"]},
        )["found"]
        is False
    )
    assert be.final_outcome(call.call_id) is None


def test_writes_change_state_and_grade_the_outcome() -> None:
    call = _call("healthcare", "reschedule_appointment")
    be = ToolBackend(PACKS)
    be.load([call])
    appt = call.backend_records[0].data["appointment_id"]
    res = be.execute(
        call.call_id,
        "reschedule_appointment",
        {"appointment_id": appt, "new_date": "2025-07-01", "new_time": "10:00"},
    )
    assert res["ok"] is True and res["patient_id"] == call.backend_records[0].key
    row = be.rows(call.call_id, "patients")[0]
    assert (row["appointment_date"], row["appointment_time"]) == ("2025-07-01", "10:00")
    writes = be.writes(call.call_id)
    assert [(w["tool"], w["ok"]) for w in writes] == [("reschedule_appointment", True)]
    assert be.final_outcome(call.call_id) == "completed"


def test_create_returns_new_id_and_transfer_is_an_outcome() -> None:
    call = _call("after_hours", "urgent_issue")
    be = ToolBackend(PACKS)
    be.load([call])
    tid = call.backend_records[0].key
    assert be.execute(
        call.call_id,
        "create_ticket",
        {"tenant_id": tid, "issue": "pest control", "permission_to_enter": "yes"},
    )["ticket_id"].startswith("MT-")
    assert be.final_outcome(call.call_id) is None  # a ticket is not this intent's goal
    assert be.execute(
        call.call_id, "transfer_to_on_call", {"tenant_id": tid, "issue": "gas smell"}
    )["ok"]
    assert be.final_outcome(call.call_id) == "transferred"
    assert len(be.writes(call.call_id)) == 2


def test_unknown_tools_and_bad_arguments_are_errors() -> None:
    call = _call("salon", "book_service")
    be = ToolBackend(PACKS)
    be.load([call])
    assert be.execute(call.call_id, "launch_rocket", {})["error"] == "unknown_tool"
    bad = be.execute(call.call_id, "find_client", {})
    assert bad["error"] == "invalid_arguments" and "phone" in bad["message"]
    assert be.execute(call.call_id, "find_client", ["5551234567"])["error"] == "invalid_arguments"
    assert be.execute(call.call_id, "cancel_booking", {"booking_id": "B-000000"})["ok"] is False
    assert be.writes(call.call_id)[0]["ok"] is False


def test_listing_lookup_by_address_or_id() -> None:
    call = _call("real_estate", "price_inquiry")
    be = ToolBackend(PACKS)
    be.load([call])
    rec = call.backend_records[0].data
    assert be.execute(
        call.call_id, "lookup_listing", {"listing_id": rec["listing_id"].replace("-", "")}
    )["found"]
    assert be.execute(call.call_id, "lookup_listing", {"address": rec["address"].lower()})["found"]
    assert be.execute(call.call_id, "lookup_listing", {})["error"] == "invalid_arguments"


def test_sqlite_file_backend_survives_reopen(tmp_path: Any) -> None:
    call = _call("salon", "cancel_booking")
    path = str(tmp_path / "backend.sqlite")
    be = ToolBackend(PACKS, path)
    be.load([call])
    be.execute(
        call.call_id, "cancel_booking", {"booking_id": call.backend_records[0].data["booking_id"]}
    )
    be.close()
    again = ToolBackend(PACKS, path)
    assert again.final_outcome(call.call_id) == "completed"
    assert again.rows(call.call_id, "clients")[0]["booking_status"] == "cancelled"


def test_tools_http_app() -> None:
    call = _call("salon", "cancel_booking")
    be = ToolBackend(PACKS)
    be.load([call])
    phone = call.backend_records[0].data["phone"]

    async def main() -> list[tuple[int, Any]]:
        out = []
        async with serve_app(create_tools_app(be)) as url, aiohttp.ClientSession() as s:
            hdr = {CALL_ID_HEADER: call.call_id}
            for name, kw in [
                ("find_client", {"json": {"phone": phone}, "headers": hdr}),
                ("find_client", {"json": {"phone": phone}}),
                ("nope", {"json": {}, "headers": hdr}),
                ("find_client", {"data": b"{", "headers": hdr}),
                ("find_client", {"data": b"x" * (1024 * 1024 + 1), "headers": hdr}),
            ]:
                async with s.post(f"{url}/tools/{name}", **kw) as r:
                    out.append((r.status, await r.json() if r.status != 413 else None))
        return out

    (s1, b1), (s2, b2), (s3, b3), (s4, _), (s5, _) = asyncio.run(main())
    assert s1 == 200 and b1["found"] is True
    assert s2 == 400 and b2["error"] == "missing_call_id"
    assert s3 == 404 and b3["error"] == "unknown_tool"
    assert s4 == 400 and s5 == 413


def test_sounds_like_finds_a_name_spelt_as_heard_and_nothing_else() -> None:
    # Over a phone line "Khan" and "Kahn" are the same sounds: with match="sounds-like" the
    # record is found (a voice agent that wrote what it heard is not told "no record");
    # exact matching, the text default, does not find it. Another name, another date of
    # birth or another call's record is still not found.
    call = _call("healthcare", "cancel_appointment")
    rec = dict(call.backend_records[0].data)
    first = rec["name"].split()[0]
    spoken = call.model_copy(update={"backend_records": [
        call.backend_records[0].model_copy(update={"data": {**rec, "name": f"{first} Khan"}})]})
    other = _call("healthcare", "cancel_appointment", exists=False)
    for mode, found in (("sounds-like", True), ("exact", False)):
        be = ToolBackend(PACKS, match=mode)
        be.load([spoken, other])
        args = {"name": f"{first} kahn", "date_of_birth": rec["date_of_birth"]}
        assert be.execute(call.call_id, "find_patient", args)["found"] is found, mode
    be = ToolBackend(PACKS, match="sounds-like")
    be.load([spoken, other])
    for name, dob in ((f"{first} Shaw", rec["date_of_birth"]), (f"{first} Kahn", "1901-01-01")):
        assert be.execute(call.call_id, "find_patient",
                          {"name": name, "date_of_birth": dob})["found"] is False, name
    assert be.execute(other.call_id, "find_patient",
                      {"name": f"{first} Kahn", "date_of_birth": rec["date_of_birth"]}
                      )["found"] is False
