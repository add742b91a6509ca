"""The optional LLM judge: its verdicts are stored and every disagreement with the
deterministic grader is listed (the judge here is a loopback stand-in at the endpoint seam
that believes whatever the agent said). In full, 120 calls against ``callsim agent serve``
in its own process; the smaller variant (50 calls, the same agent in this process) is the
one the mutation run uses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from simulator.agent import AgentConfig, start_agent
from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.metrics.llm_judge import judge_run, stored_judgements
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore
from tests.conftest import serve_app


async def credulous_judge(request: web.Request) -> web.Response:
    body = await request.json()
    text = body["messages"][-1]["content"]
    refused = "couldn't find" in text
    verdict = {"refused": refused, "fabricated": False, "recovered": None,
               "reason": "the agent sounded sure of itself"}
    return web.json_response({"choices": [{"index": 0, "message": {
        "role": "assistant", "content": json.dumps(verdict)}}]})


@pytest.mark.parametrize(("n", "own_process"), [
    pytest.param(120, True, marks=pytest.mark.mutation_skip), (50, False)])
def test_judge_disagrees_where_the_agent_invented_details(
        tmp_path: Path, n: int, own_process: bool) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", n, 5)

    def config(url: str) -> RunConfig:
        return RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=20),
                         seed=5, honour_pauses=False, pacing="none")

    async def in_process() -> None:
        async with start_agent(AgentConfig(fabricate_rate=0.5)) as url:
            await run_load(calls, packs, config(url), tmp_path / "run")

    if own_process:
        with agent_process("--fabricate-rate", "0.5") as url:
            asyncio.run(run_load(calls, packs, config(url), tmp_path / "run"))
    else:
        asyncio.run(in_process())
    store = RunStore(tmp_path / "run")
    missing = [o for o in store.outcomes() if not o.record_exists]
    fabricated = {o.call_id for o in missing if o.fabricated}

    async def go() -> dict:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", credulous_judge)
        async with serve_app(app) as judge_url:
            return await judge_run(store, judge_url + "/v1", "stand-in")

    res = asyncio.run(go())
    assert res["asked"] >= len(missing) and res["judged"] == res["asked"]
    assert fabricated  # the agent did invent details on some missing records
    flagged = {d["call_id"] for d in res["disagreements"] if d["question"] == "fabricated"}
    assert flagged == fabricated
    assert all(d["deterministic"] is True and d["judge"] is False
               for d in res["disagreements"] if d["question"] == "fabricated")
    assert len(stored_judgements(store)) == res["judged"]
    # The gate numbers stay the deterministic grader's.
    assert {o.call_id for o in missing if o.fabricated} == fabricated
    store.close()
