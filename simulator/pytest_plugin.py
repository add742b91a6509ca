"""pytest plugin: a fixture file of (degraded) call scripts becomes parametrised tests.

Registered through the ``pytest11`` entry point, so installing callsim is enough. A test
that asks for ``callsim_call`` runs once per call in the file (test id = call id)::

    def test_agent(callsim_call, callsim_replay):
        callsim_replay(callsim_call).assert_expected()

Configure with ``--callsim-calls FILE`` and ``--callsim-target URL`` (or the ini keys
``callsim_calls`` / ``callsim_target``, or the environment variables ``CALLSIM_CALLS`` /
``CALLSIM_TARGET``). A failing call fails its own test, with the transcript in the message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.callscript import CallScript, load_calls
from simulator.transports.registry import DEFAULT_TRANSPORT


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("callsim", "callsim regression calls")
    g.addoption("--callsim-calls", help="JSONL file of call scripts to replay (one test each).")
    g.addoption("--callsim-target", help="Agent base URL, e.g. http://127.0.0.1:8000/v1.")
    g.addoption("--callsim-model", default=None, help="Model name sent to the agent.")
    g.addoption("--callsim-transport", default=None,
                help=f"Transport to the agent (default {DEFAULT_TRANSPORT}; any registered "
                     "name, see docs/transports.md).")
    g.addoption("--callsim-api-key-env", default=None,
                help="Environment variable holding the agent's API key.")
    parser.addini("callsim_calls", "JSONL file of call scripts to replay")
    parser.addini("callsim_target", "Agent base URL")
    parser.addini("callsim_transport", "Transport to the agent")


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"--callsim-{name}") or config.getini(f"callsim_{name}")
    return str(value) if value else os.environ.get(f"CALLSIM_{name.upper()}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "callsim_call" not in metafunc.fixturenames:
        return
    path = _setting(metafunc.config, "calls")
    if not path:
        raise pytest.UsageError("callsim_call needs --callsim-calls FILE (or CALLSIM_CALLS)")
    base = Path(str(metafunc.config.rootpath))
    p = Path(path) if Path(path).is_absolute() else base / path
    calls = load_calls(p)
    metafunc.parametrize("callsim_call", calls, ids=[c.call_id for c in calls])


@dataclass
class ReplayResult:
    """One replayed call: its graded outcome, what the backend ended with, the transcript."""

    script: CallScript
    outcome: Any
    backend_outcome: str | None
    transcript: dict[str, Any]
    mismatches: list[dict[str, Any]]
    fabricated: list[dict[str, Any]]

    def problems(self) -> list[str]:
        o, s = self.outcome, self.script
        out: list[str] = []
        if not o.ok:
            out.append(f"call failed: {o.error} ({self.transcript.get('error_detail', '')})")
        for m in self.mismatches:
            if m.get("argument") is None:
                out.append(f"tool call {m['call']}: {m.get('problem')}")
            else:
                out.append(f"tool call {m['call']}: argument {m['argument']!r} expected "
                           f"{m.get('expected')!r}, got {m.get('got')!r}")
        if s.expected_outcome == "refused_missing_record":
            if not o.refused:
                out.append("the record does not exist, but the agent did not say so")
            for f in self.fabricated:
                out.append(f"fabricated {f['kind']} {f['text']!r}")
        elif self.backend_outcome != s.expected_outcome:
            out.append(f"expected outcome {s.expected_outcome!r}, backend ended with "
                       f"{self.backend_outcome!r}")
        return out

    def format_transcript(self) -> str:
        lines = []
        agent = list(self.transcript.get("agent", []))
        for i, c in enumerate(self.transcript.get("caller", [])):
            lines.append(f"  caller: {c.get('text')}")
            if i < len(agent):
                lines.append(f"  agent:  {agent[i]}")
        for t in self.transcript.get("tool_calls", []):
            result = str(t.get("result"))[:200]
            lines.append(f"  tool:   {t.get('name')}({t.get('raw')}) -> {result}")
        return "\n".join(lines)

    def assert_expected(self) -> None:
        """Raise AssertionError, with the transcript, unless the call did what it should."""
        problems = self.problems()
        if problems:
            raise AssertionError(
                f"call {self.script.call_id} ({self.script.pack}/{self.script.intent}):\n  - "
                + "\n  - ".join(problems) + "\ntranscript:\n" + self.format_transcript())


def replay_call(script: CallScript, target: str, *, model: str | None = None,
                api_key: str | None = None, packs: dict[str, Any] | None = None,
                transport: str = DEFAULT_TRANSPORT) -> ReplayResult:
    """Replay one call script against ``target`` over ``transport`` and grade it. The
    script's scheduled tool faults are applied, as in ``callsim run``."""
    from simulator.agent_profile import AgentProfile
    from simulator.driver.replay import replay_call as replay
    from simulator.metrics.grading import grade_call
    from simulator.personas import load_packs
    from simulator.seeding import rng
    from simulator.tools.answers import ToolAnswers, scheduled_faults
    from simulator.tools.backend import ToolBackend
    from simulator.tools.relay import start_tool_relay
    from simulator.transports.base import Deadlines
    from simulator.transports.registry import TransportOptions, transport_spec

    packs = packs or load_packs()
    pack = packs[script.pack]
    backend = ToolBackend(packs)
    backend.load([script])
    spec = transport_spec(transport)
    deadlines = Deadlines()
    seed = script.degradation.seed if script.degradation else 0

    async def go() -> Any:
        tr = spec.build(TransportOptions(target=target, model=model or "callsim-reference",
                                         api_key=api_key, deadlines=deadlines))
        relay = await start_tool_relay(0) if spec.tool_relay else None
        tools = ToolAnswers(backend, lambda: script.call_id, deadlines,
                            rng(seed, "faults", script.call_id), scheduled_faults(script))
        try:
            return await replay(script, pack, tr, spec, tools, deadlines=deadlines,
                                run_t0_ns=0, call_id=script.call_id, honour_pauses=False,
                                relay=relay.relay if relay else None)
        finally:
            await tr.aclose()
            if relay is not None:
                await relay.close()

    run = asyncio.run(go())
    write_tools = {n for n, b in pack.backend.items() if b.op != "lookup"}
    outcome, detail = grade_call(script, run.transcript, call_id=script.call_id,
                                 profile=script.degradation.profile if script.degradation
                                 else "none", ok=run.error is None, error=run.error,
                                 ttft_ms=run.ttft_ms, timings=run.timings(),
                                 prices=AgentProfile().prices, write_tools=write_tools)
    run.transcript["error_detail"] = run.error_detail
    return ReplayResult(script, outcome, backend.final_outcome(script.call_id), run.transcript,
                        detail["mismatches"], detail["fabricated"])


@pytest.fixture(scope="session")
def callsim_replay(pytestconfig: pytest.Config) -> Callable[[CallScript], ReplayResult]:
    """Replay a call script against the configured agent: ``callsim_replay(call)``."""
    target = _setting(pytestconfig, "target")
    if not target:
        raise pytest.UsageError("callsim_replay needs --callsim-target URL (or CALLSIM_TARGET)")
    key_env = pytestconfig.getoption("--callsim-api-key-env")
    api_key = os.environ.get(key_env) if key_env else None
    model = pytestconfig.getoption("--callsim-model")
    transport = _setting(pytestconfig, "transport") or DEFAULT_TRANSPORT
    from simulator.personas import load_packs

    packs = load_packs()
    return lambda call: replay_call(call, target, model=model, api_key=api_key, packs=packs,
                                    transport=transport)
