"""Full calls: Caller + the reference agent over HTTP + the tool backend, per pack."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from simulator.agent import AgentConfig, start_agent
from simulator.callscript import CallScript
from simulator.personas.generator import generate_calls
from simulator.personas.pack import Pack
from simulator.slots import normalise_arg
from simulator.tools.backend import ToolBackend
from tests.agent.loop import Transcript, over_http, run_call

PACKS = ["after_hours", "healthcare", "real_estate", "salon"]
REFUSAL = "couldn't find a record"


def _refused(tr: Transcript) -> bool:
    return any(REFUSAL in t for t in tr.agent_texts)


async def _run_many(
    packs: dict[str, Pack], calls: list[CallScript], config: AgentConfig, stream: bool
) -> tuple[ToolBackend, list[Transcript]]:
    backend = ToolBackend(packs)
    backend.load(calls)
    async with start_agent(config, packs=packs) as url, aiohttp.ClientSession() as session:
        complete = over_http(session, url, stream)
        out = [await run_call(c, packs[c.pack], backend, complete) for c in calls]
    return backend, out


def _first(calls: list[CallScript], exists: bool) -> CallScript:
    return next(c for c in calls if c.record_exists is exists)


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("exists", [True, False], ids=["record", "missing"])
def test_streamed_call_reaches_expected_outcome(
    packs: dict[str, Pack], pack: str, exists: bool
) -> None:
    call = _first(generate_calls(packs, pack, 40, 3), exists)
    backend, (tr,) = asyncio.run(_run_many(packs, [call], AgentConfig(), stream=True))
    made = [(n, {k: normalise_arg(v) for k, v in a.items()}) for n, a in tr.tool_calls]
    expected = [
        (t.name, {k: normalise_arg(v) for k, v in t.arguments.items()})
        for t in call.expected_tool_calls
    ]
    assert made == expected
    outcome = backend.final_outcome(call.call_id)
    if exists:
        assert outcome == call.expected_outcome
        assert not _refused(tr)
    else:
        assert call.expected_outcome == "refused_missing_record"
        assert outcome is None and _refused(tr)
        assert backend.writes(call.call_id) == []


def _score(calls: list[CallScript], transcripts: list[Transcript]) -> tuple[float, float, int]:
    total = correct = 0
    missing = refused = 0
    for call, tr in zip(calls, transcripts, strict=True):
        for exp in call.expected_tool_calls:
            got = next((a for n, a in tr.tool_calls if n == exp.name), {})
            for k, v in exp.arguments.items():
                total += 1
                correct += normalise_arg(got.get(k)) == normalise_arg(v)
        if not call.record_exists:
            missing += 1
            refused += _refused(tr)
    return correct / total, refused / missing, missing


@pytest.fixture(scope="module")
def hundred_per_pack(packs: dict[str, Pack]) -> list[CallScript]:
    return [c for p in PACKS for c in generate_calls(packs, p, 100, 2024)]


def test_default_agent_gets_arguments_right_and_refuses_missing_records(
    packs: dict[str, Pack], hundred_per_pack: list[CallScript]
) -> None:
    calls = hundred_per_pack
    backend, trs = asyncio.run(_run_many(packs, calls, AgentConfig(), stream=False))
    for pack in PACKS:
        idx = [i for i, c in enumerate(calls) if c.pack == pack]
        acc, refusal, missing = _score([calls[i] for i in idx], [trs[i] for i in idx])
        assert missing >= 5, pack
        assert acc >= 0.95, (pack, acc)
        assert refusal >= 0.95, (pack, refusal)
    outcomes = [backend.final_outcome(c.call_id) or "refused_missing_record" for c in calls]
    assert sum(o == c.expected_outcome for o, c in zip(outcomes, calls, strict=True)) >= 0.95 * len(
        calls
    )


def test_fabricating_agent_refuses_less_and_invents_details(
    packs: dict[str, Pack], hundred_per_pack: list[CallScript]
) -> None:
    calls = [c for c in hundred_per_pack if not c.record_exists]
    _, trs = asyncio.run(
        _run_many(packs, calls, AgentConfig(fabricate_rate=0.5, seed=1), stream=False)
    )
    _, refusal, missing = _score(calls, trs)
    assert 0.25 <= refusal <= 0.75, refusal
    invented = [
        t for tr in trs if not _refused(tr) for t in tr.agent_texts if "found your record" in t
    ]
    assert len(invented) == missing - round(refusal * missing)


def test_arg_error_knob_lowers_argument_accuracy(
    packs: dict[str, Pack], hundred_per_pack: list[CallScript]
) -> None:
    calls = [c for c in hundred_per_pack if c.pack == "healthcare"][:60]
    _, trs = asyncio.run(
        _run_many(packs, calls, AgentConfig(arg_error_rate=0.5, seed=3), stream=False)
    )
    acc, _, _ = _score(calls, trs)
    assert acc < 0.9


def test_per_pack_arg_errors_touch_that_pack_only(
    packs: dict[str, Pack], hundred_per_pack: list[CallScript]
) -> None:
    calls = [c for p in ("healthcare", "salon")
             for c in [x for x in hundred_per_pack if x.pack == p][:40]]
    cfg = AgentConfig(arg_error_packs=(("healthcare", 0.5),), seed=3)
    _, trs = asyncio.run(_run_many(packs, calls, cfg, stream=False))
    by_pack = {
        p: _score([c for c in calls if c.pack == p], [t for c, t in zip(calls, trs, strict=True)
                                                      if c.pack == p])[0]
        for p in ("healthcare", "salon")
    }
    assert by_pack["healthcare"] < 0.9, by_pack
    assert by_pack["salon"] >= 0.95, by_pack


def test_agent_is_reproducible(packs: dict[str, Pack]) -> None:
    calls = generate_calls(packs, "all", 12, 9)
    cfg = AgentConfig(fabricate_rate=0.5, arg_error_rate=0.3, seed=5)

    def texts() -> list[Any]:
        _, trs = asyncio.run(_run_many(packs, calls, cfg, stream=False))
        return [(tr.agent_texts, tr.tool_calls) for tr in trs]

    assert texts() == texts()
