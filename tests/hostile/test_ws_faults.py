"""Issue 8, audio side of the fault matrix: a WebSocket closed with an error code, Realtime
events of the wrong shape, Twilio frames with bad base64. Each call ends in its category and
the run goes on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore
from simulator.transports.base import Deadlines
from tests.conftest import serve_app


async def hostile_ws(request: web.Request) -> web.WebSocketResponse:
    fault = request.match_info["fault"]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.receive()  # session.update (Realtime) / connected (Twilio)
    if fault == "close":
        await ws.close(code=1011, message=b"internal agent failure")
    elif fault == "rt-wrong-shape":
        await ws.send_str(json.dumps({"type": "response.output_audio.delta", "delta": 42}))
    elif fault == "rt-type-not-string":
        await ws.send_str(json.dumps({"type": 7}))
    elif fault == "tw-bad-base64":
        await ws.send_str(json.dumps({"event": "media", "streamSid": "MZ1",
                                      "media": {"payload": "%%% not base64 %%%"}}))
    await asyncio.sleep(5)
    return ws


CASES = [
    ("openai-realtime", "close", "ws_closed"),
    ("twilio", "close", "ws_closed"),
    ("openai-realtime", "rt-wrong-shape", "protocol_error"),
    ("openai-realtime", "rt-type-not-string", "protocol_error"),
    ("twilio", "tw-bad-base64", "protocol_error"),
]


@pytest.mark.parametrize(("transport", "fault", "category"), CASES,
                         ids=[f"{t}-{f}" for t, f, _ in CASES])
async def test_ws_fault_lands_in_its_category(transport: str, fault: str, category: str,
                                              tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_get("/{fault}", hostile_ws)
    packs = load_packs()
    calls = generate_calls(packs, "all", 3, 1)
    async with serve_app(app) as url:
        cfg = RunConfig(target=url.replace("http://", "ws://") + "/" + fault,
                        transport=transport, arrival=ArrivalSpec(kind="closed", concurrency=3),
                        honour_pauses=False,
                        deadlines=Deadlines(first_byte_s=3, stall_s=3, call_s=20))
        s = await run_load(calls, packs, cfg, tmp_path / "run")
    assert s["status"] == "complete" and s["calls"]["failed"] == 3
    store = RunStore(tmp_path / "run")
    errors = {o.error for o in store.outcomes()}
    store.close()
    assert errors == {category}
