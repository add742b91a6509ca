"""``--caller llm``: a model (here a deterministic stub on 127.0.0.1) plays the caller
against the reference agent; calls complete and are graded, the caller's own tokens are
recorded apart, and a caller that invents a value is flagged and left out of grading."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from simulator.agent import AgentConfig, start_agent
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.personas.llm_caller import invented_values
from simulator.storage.store import RunStore, export_run
from tests.personas import caller_stub

COUNT = 24


async def _run(tmp: Path, lie: bool, profile: str = "none") -> dict:
    packs = load_packs()
    calls = generate_calls(packs, "healthcare", COUNT, 5)
    if profile != "none":
        from simulator.degradation import degrade_calls
        from simulator.degradation.profile import get_profile

        calls = degrade_calls(calls, get_profile(profile), 5)
    async with start_agent(AgentConfig(), packs=packs) as agent, \
            caller_stub.serve(lie=lie) as stub:
        cfg = RunConfig(target=agent, arrival=ArrivalSpec(kind="closed", concurrency=6),
                        seed=5, profile=profile, honour_pauses=False, pacing="none", caller="llm",
                        caller_endpoint=stub, caller_model="stub-caller",
                        caller_price_in_per_m=1.0, caller_price_out_per_m=2.0)
        return await run_load(calls, packs, cfg, tmp / "run")


def test_llm_caller_completes_calls_and_is_graded(tmp_path: Path) -> None:
    s = asyncio.run(_run(tmp_path, lie=False))
    assert s["calls"]["completed"] == COUNT and s["calls"]["failed"] == 0
    assert s["calls"]["caller_invented"] == 0 and s["calls"]["measured"] == COUNT
    assert s["gate"]["tool_arg_accuracy"] >= 0.8
    # The caller model's tokens and cost are its own, not the agent's.
    assert s["caller_llm"]["tokens"] > 0 and s["caller_llm"]["cost_usd"] > 0
    store = RunStore(tmp_path / "run")
    tr = next(iter(store.calls()))["transcript"]
    assert tr["caller_llm"]["model"] == "stub-caller" and tr["caller_llm"]["lines"]
    agent_tokens = tr["usage"]["prompt_tokens"]
    assert tr["caller_llm"]["usage"]["prompt_tokens"] != agent_tokens
    # The outcome carries them as its own fields, so the store and export have them.
    outcomes = store.outcomes()
    assert all(o.caller_prompt_tokens > 0 and o.caller_completion_tokens > 0
               and o.caller_invented == 0 for o in outcomes)
    assert sum(o.caller_cost_usd for o in outcomes) == s["caller_llm"]["cost_usd"]
    out = io.StringIO()
    export_run(store, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == COUNT
    assert all(float(r["caller_cost_usd"]) > 0 and int(r["caller_prompt_tokens"]) > 0
               and r["caller_invented"] == "0" for r in rows)
    store.close()


def test_a_caller_that_invents_a_value_is_flagged_and_not_graded(tmp_path: Path) -> None:
    s = asyncio.run(_run(tmp_path, lie=True))
    assert s["calls"]["completed"] == COUNT
    flagged = s["calls"]["caller_invented"]
    assert flagged == COUNT  # every healthcare call asks for the date of birth
    assert s["calls"]["measured"] == 0
    store = RunStore(tmp_path / "run")
    tr = next(iter(store.calls()))["transcript"]
    assert any(i["value"] == "1901-01-01" for i in tr["caller_llm"]["invented"])
    assert store.outcomes() == []
    flagged_outcomes = store.outcomes(include_flagged=True)
    assert len(flagged_outcomes) == COUNT
    assert all(o.caller_invented >= 1 for o in flagged_outcomes)
    store.close()


def test_llm_lines_are_degraded_by_the_scripts_profile(tmp_path: Path) -> None:
    s = asyncio.run(_run(tmp_path, lie=False, profile="noisy"))
    assert s["calls"]["completed"] == COUNT
    store = RunStore(tmp_path / "run")
    changed = 0
    for c in store.calls():
        tr = c["transcript"]
        wrote = [ln["text"] for ln in tr["caller_llm"]["lines"]]
        sent = [t["text"] for t in tr["caller"]]
        changed += sum(1 for t in sent if t not in wrote)
    store.close()
    assert changed > 0


def test_grounding_check_uses_the_slot_parsers() -> None:
    packs = load_packs()
    call = generate_calls(packs, "healthcare", 1, 5)[0]
    from simulator.slots import speak

    dob = speak("date_of_birth", call.slots["date_of_birth"])
    assert invented_values(f"I was born {dob}.", call, packs["healthcare"]) == []
    bad = invented_values("I was born January 1, 1901.", call, packs["healthcare"])
    assert [b["value"] for b in bad] == ["1901-01-01"]


def test_callsim_run_with_caller_llm_from_the_command_line(tmp_path: Path) -> None:
    import threading

    from click.testing import CliRunner

    from simulator.cli import agent_process, main

    loop = asyncio.new_event_loop()
    ready: list[str] = []
    stop = asyncio.Event()

    async def stub() -> None:
        async with caller_stub.serve() as url:
            ready.append(url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(stub(),), daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if ready:
                break
            threading.Event().wait(0.05)
        with agent_process("--stt", "none") as url:
            res = CliRunner().invoke(main, [
                "run", "--target", url, "--pack", "salon", "--count", "6", "--seed", "3",
                "--no-pauses", "--pacing", "none", "--runs-dir", str(tmp_path), "--json",
                "--caller", "llm",
                "--caller-endpoint", ready[0], "--caller-model", "stub-caller"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["calls"]["completed"] == 6 and summary["calls"]["measured"] == 6
    assert summary["caller_llm"]["tokens"] > 0


def test_caller_llm_without_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    res = CliRunner().invoke(main, ["run", "--target", "http://127.0.0.1:9/v1", "--caller",
                                    "llm", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--caller-endpoint" in res.output


def test_an_unreachable_caller_model_fails_the_call_with_its_own_category(
    tmp_path: Path,
) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "salon", 2, 5)

    async def go() -> dict:
        async with start_agent(AgentConfig(), packs=packs) as agent:
            cfg = RunConfig(target=agent, arrival=ArrivalSpec(kind="closed", concurrency=2),
                            seed=5, honour_pauses=False, pacing="none", caller="llm",
                            caller_endpoint="http://127.0.0.1:9/v1", caller_model="m")
            return await run_load(calls, packs, cfg, tmp_path / "run")

    s = asyncio.run(go())
    assert s["calls"]["completed"] == 2 and s["errors"] == {"caller_llm": 2}
