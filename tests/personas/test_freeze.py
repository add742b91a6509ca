"""``callsim freeze``: a run whose caller was a model (a stub on 127.0.0.1) becomes call
scripts that replay with no model, byte for byte, and grade as the original run did; an
agent that answers differently gets the rule-based caller from the point of divergence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from simulator.agent import AgentConfig, start_agent
from simulator.callscript import load_calls
from simulator.cli import main
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore
from tests.personas import caller_stub

COUNT = 16
SEED = 8


async def _original(tmp: Path) -> Path:
    packs = load_packs()
    calls = generate_calls(packs, "all", COUNT, SEED)
    async with start_agent(AgentConfig(), packs=packs) as agent, caller_stub.serve() as stub:
        cfg = RunConfig(target=agent, arrival=ArrivalSpec(kind="closed", concurrency=4),
                        seed=SEED, honour_pauses=False, pacing="none", caller="llm",
                        caller_endpoint=stub,
                        caller_model="stub-caller")
        await run_load(calls, packs, cfg, tmp / "original")
    return tmp / "original"


async def _replay(fixtures: Path, run_dir: Path, style: str = "template") -> None:
    packs = load_packs()
    async with start_agent(AgentConfig(style=style, seed=SEED), packs=packs) as agent:
        cfg = RunConfig(target=agent, arrival=ArrivalSpec(kind="closed", concurrency=4),
                        seed=SEED, honour_pauses=False, pacing="none")  # no caller model configured
        await run_load(load_calls(fixtures), packs, cfg, run_dir)


def _calls(run_dir: Path) -> dict[str, dict[str, Any]]:
    store = RunStore(run_dir)
    out = {c["script_id"]: c for c in store.calls()}
    store.close()
    return out


def _said(c: dict[str, Any]) -> tuple[list[str], list[str]]:
    tr = c["transcript"]
    return [t["text"] for t in tr["caller"]], list(tr["agent"])


def _grade(c: dict[str, Any]) -> tuple[Any, ...]:
    o = c["outcome"]
    return o["arg_total"], o["arg_correct"], o["strict_pass"], o["refused"], o["fabricated"]


def test_frozen_fixtures_replay_byte_identically_and_grade_the_same(tmp_path: Path) -> None:
    original = asyncio.run(_original(tmp_path))
    out = tmp_path / "fixtures.jsonl"
    res = CliRunner().invoke(main, ["freeze", str(original), "-o", str(out)])
    assert res.exit_code == 0, res.output
    again = tmp_path / "again.jsonl"
    assert CliRunner().invoke(main, ["freeze", str(original), "-o", str(again)]).exit_code == 0
    assert out.read_bytes() == again.read_bytes()
    assert len(load_calls(out)) == COUNT

    asyncio.run(_replay(out, tmp_path / "r1"))
    asyncio.run(_replay(out, tmp_path / "r2"))
    orig, r1, r2 = _calls(original), _calls(tmp_path / "r1"), _calls(tmp_path / "r2")
    assert set(orig) == set(r1) == set(r2)
    for sid in orig:
        assert _said(r1[sid]) == _said(r2[sid]) == _said(orig[sid]), sid
        assert r1[sid]["transcript"]["frozen"] == {"diverged": False, "diverged_at": None}
        assert r1[sid]["outcome"]["frozen_diverged_at"] is None
        assert _grade(r1[sid]) == _grade(r2[sid]) == _grade(orig[sid]), sid
        assert "caller_llm" not in r1[sid]["transcript"]
        assert r1[sid]["outcome"]["caller_prompt_tokens"] == 0
        assert orig[sid]["outcome"]["caller_prompt_tokens"] > 0

    # The pytest plugin replays a frozen fixture the same way (one replay path).
    from simulator.agent.process import agent_process
    from simulator.pytest_plugin import replay_call

    packs = load_packs()
    with agent_process() as url:
        for script in load_calls(out)[:3]:
            got = replay_call(script, url, packs=packs)
            tr = got.transcript
            assert tr["frozen"] == {"diverged": False, "diverged_at": None}
            said = ([t["text"] for t in tr["caller"]], list(tr["agent"]))
            assert said == _said(orig[script.call_id]), script.call_id
            assert (got.outcome.arg_total, got.outcome.arg_correct) == \
                _grade(orig[script.call_id])[:2]


def test_replay_against_a_different_agent_falls_back_and_says_so(tmp_path: Path) -> None:
    original = asyncio.run(_original(tmp_path))
    out = tmp_path / "fixtures.jsonl"
    assert CliRunner().invoke(main, ["freeze", str(original), "-o", str(out)]).exit_code == 0
    asyncio.run(_replay(out, tmp_path / "varied", style="varied"))
    calls = _calls(tmp_path / "varied")
    diverged = [c for c in calls.values() if c["transcript"]["frozen"]["diverged"]]
    assert diverged
    for c in calls.values():
        assert c["outcome"]["frozen_diverged_at"] == c["transcript"]["frozen"]["diverged_at"]
    # From the divergence on, the rule-based caller carries the call to an end.
    assert all(c["outcome"]["ok"] for c in calls.values())
    assert sum(c["outcome"]["arg_correct"] for c in diverged) > 0


def test_freezing_a_run_without_an_llm_caller_is_a_usage_error(tmp_path: Path) -> None:
    packs = load_packs()

    async def plain() -> None:
        async with start_agent(AgentConfig(), packs=packs) as agent:
            cfg = RunConfig(target=agent, arrival=ArrivalSpec(kind="closed", concurrency=2),
                            count=2, honour_pauses=False, pacing="none")
            await run_load(generate_calls(packs, "salon", 2, 1), packs, cfg, tmp_path / "p")

    asyncio.run(plain())
    res = CliRunner().invoke(main, ["freeze", str(tmp_path / "p"), "-o",
                                    str(tmp_path / "x.jsonl")])
    assert res.exit_code == 2 and "no calls played by an LLM caller" in res.output
