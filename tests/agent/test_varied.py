"""The varied reference agent (``--style varied``) and the rule-based caller that has to
follow it: phrasings, two-slot questions, read-backs; and the acceptance check that the
caller completes about as many tasks against it as against the template agent."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from simulator.agent import phrasing
from simulator.agent.policy import AgentConfig, decide
from simulator.cli import agent_process
from simulator.degradation import degrade_calls
from simulator.degradation.profile import get_profile
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs
from simulator.personas.pack import Pack
from simulator.transports.base import Deadlines

SEED = 17
CALLS = 400


def test_each_slot_type_has_at_least_30_questions(packs: dict[str, Pack]) -> None:
    per_type: dict[str, set[str]] = {}
    for pack in packs.values():
        for name, sd in pack.slots.items():
            per_type.setdefault(sd.type, set()).update(phrasing.questions(sd, name))
    assert per_type and all(len(q) >= 30 for q in per_type.values()), {
        t: len(q) for t, q in per_type.items()}


def test_every_phrasing_is_recognised_as_the_slot_it_asks(packs: dict[str, Pack]) -> None:
    """The agent is stateless: it must read its own questions back as the slots asked."""
    r = random.Random(1)
    for pack in packs.values():
        for intent in pack.intents.values():
            for name in intent.slots:
                sd = pack.slots[name]
                for q in phrasing.questions(sd, name):
                    text = r.choice(phrasing.ACKS) + q
                    got = phrasing.asked_slots(pack, text, intent.slots)
                    assert got[:1] == [name] or (
                        got and pack.slots[got[0]].question == sd.question), (text, got)


def _conversation(packs: dict[str, Pack], style: str, seed: int) -> list[str]:
    from simulator.personas.caller import Caller

    call = generate_calls(packs, "healthcare", 1, seed)[0]
    caller = Caller(call, packs[call.pack])
    tools = packs[call.pack].tool_schemas()
    msgs = [{"role": "system", "content": packs[call.pack].system_prompt},
            {"role": "user", "content": caller.first().text}]
    said: list[str] = []
    for _ in range(12):
        reply = decide(msgs, tools, packs, AgentConfig(style=style, seed=3))
        if reply.tool_calls:
            break
        said.append(reply.content)
        turn = caller.respond(reply.content)
        if turn is None:
            break
        msgs += [{"role": "assistant", "content": reply.content},
                 {"role": "user", "content": turn.text}]
    return said


def test_varied_agent_is_seeded_and_differs_from_the_template(packs: dict[str, Pack]) -> None:
    varied = [_conversation(packs, "varied", s) for s in range(8)]
    assert varied == [_conversation(packs, "varied", s) for s in range(8)]
    template = [_conversation(packs, "template", s) for s in range(8)]
    questions = {q for conv in varied for q in conv}
    assert questions - {q for conv in template for q in conv}
    # Over a few calls it asks two slots at once, reads a value back, or talks small.
    joined = " ".join(questions)
    assert " and " in joined or any(phrasing.CONFIRM_RE.match(q) for q in questions)


def _run(url: str, tmp_path: Path, name: str) -> dict:
    packs = load_packs()
    calls = degrade_calls(generate_calls(packs, "all", CALLS, SEED), get_profile("typical_call"),
                          SEED)
    # Scripted silences are skipped and slow tools cut at 2 s: neither changes what is said.
    cfg = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=32), seed=SEED,
                    profile="typical_call", honour_pauses=False, pacing="none",
                    deadlines=Deadlines(tool_s=2.0))
    return asyncio.run(run_load(calls, packs, cfg, tmp_path / name))


@pytest.mark.timeout(1200)  # 800 calls on a shared 2-core machine
def test_rule_based_caller_completes_as_many_tasks_against_the_varied_agent(
    tmp_path: Path,
) -> None:
    """Acceptance: over 400 seeded calls on a typical line, the caller's task completion
    (every expected tool call made with every argument right) against ``--style varied`` is
    within 5 points of its completion against the template agent."""
    with agent_process("--stt", "none") as url:
        template = _run(url, tmp_path, "template")
    with agent_process("--stt", "none", "--style", "varied", "--seed", str(SEED)) as url:
        varied = _run(url, tmp_path, "varied")
    for s in (template, varied):
        assert s["calls"]["completed"] == CALLS and s["calls"]["failed"] == 0
    t = template["numbers"]["strict_pass_rate"]
    v = varied["numbers"]["strict_pass_rate"]
    print(f"task completion: template {t:.3f}, varied {v:.3f}")
    assert t > 0.5
    assert abs(t - v) <= 0.05, (t, v)
