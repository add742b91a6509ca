"""One call replayed: the caller's script over a transport, the agent's tool calls answered
by the simulated backend with the faults the script scheduled.

The runner, soak and the pytest plugin all replay a call through :func:`replay_call`, so a
call behaves the same whichever of them drives it; the transport's registered spec decides
whether the text or the audio call loop runs.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.callscript import CallScript
from simulator.driver.session import CallRun, run_text_call, tool_result_text
from simulator.personas import Caller, Pack
from simulator.tools.backend import ToolBackend
from simulator.transports.base import Deadlines
from simulator.transports.registry import TransportSpec

INVALID_ARGUMENTS = json.dumps({"error": "invalid_arguments",
                                "message": "arguments are not a JSON object"})


def scheduled_faults(script: CallScript) -> dict[int, dict[str, Any]]:
    """The script's tool faults by the index of the tool call they hit."""
    return {int(f["tool_call_index"]): f for f in
            (script.degradation.tool_faults if script.degradation else [])}


async def apply_tool_fault(
    fault: dict[str, Any] | None, result: Any, r: random.Random, deadlines: Deadlines
) -> tuple[str, dict[str, Any] | None]:
    """A backend result as the agent sees it once ``fault`` (see
    :mod:`simulator.degradation.faults`) is applied: the body, and a record of the fault
    (None without one). A delay beyond the tool deadline answers with a timeout error."""
    if fault is None:
        return tool_result_text(result), None
    from simulator.degradation.faults import apply_fault

    effect = apply_fault(fault, result, r)
    delay = min(effect.delay_s, deadlines.tool_s)
    if delay > 0:
        await asyncio.sleep(delay)
    if effect.delay_s > deadlines.tool_s:
        body = json.dumps({"error": "timeout",
                           "message": f"tool did not answer within {deadlines.tool_s:g} s"})
        return body, {"kind": fault.get("kind"), "effect": "timeout", "delay_s": delay}
    return effect.body, {"kind": fault.get("kind"), "status": effect.status, "delay_s": delay}


@dataclass
class RunningRelay:
    """The HTTP tool relay an agent calls (transports whose spec has ``tool_relay``)."""

    relay: Any
    url: str
    runner: Any

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_tool_relay(port: int = 0) -> RunningRelay:
    """Serve the tool relay on 127.0.0.1:``port`` (0: any free port)."""
    from aiohttp import web

    from simulator.driver.audio_call import ToolRelay, create_tool_relay_app

    relay = ToolRelay()
    runner = web.AppRunner(create_tool_relay_app(relay), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return RunningRelay(relay, f"http://127.0.0.1:{runner.addresses[0][1]}", runner)


@dataclass
class ToolAnswers:
    """Answers one call's tool calls: the backend's result for the record held under
    ``key()``, with the k-th call's scheduled fault applied."""

    backend: ToolBackend
    key: Callable[[], str]
    deadlines: Deadlines
    fault_rng: random.Random
    faults: dict[int, dict[str, Any]] = field(default_factory=dict)

    async def __call__(self, name: str, parsed: dict[str, Any] | None, raw: str, k: int
                       ) -> tuple[str, dict[str, Any] | None]:
        if parsed is None:
            return INVALID_ARGUMENTS, None
        result = self.backend.execute(self.key(), name, parsed)
        return await apply_tool_fault(self.faults.get(k), result, self.fault_rng,
                                      self.deadlines)


async def replay_call(
    script: CallScript,
    pack: Pack,
    transport: Any,
    spec: TransportSpec,
    tools: ToolAnswers,
    *,
    deadlines: Deadlines,
    run_t0_ns: int,
    call_id: str,
    caller: Any = None,
    scheduled_ns: int | None = None,
    lag_ms: Callable[[], float] = lambda: 0.0,
    honour_pauses: bool = True,
    relay: Any = None,
    speech: Any = None,
    tool_schemas: list[dict[str, Any]] | None = None,
) -> CallRun:
    """Replay ``script`` over ``transport`` (built from ``spec``); return what the driver saw.

    ``caller`` defaults to the script's own :class:`~simulator.personas.Caller`; ``relay``
    routes the agent's HTTP tool calls (transports whose spec has ``tool_relay``);
    ``speech`` gives the caller's audio on audio transports (default: synthetic tones);
    ``tool_schemas`` the pack's tool schemas when the caller has them at hand already.
    """
    caller = caller if caller is not None else Caller(script, pack)
    schemas = tool_schemas if tool_schemas is not None else pack.tool_schemas()
    if spec.audio:
        from simulator.driver.audio_call import run_audio_call

        return await run_audio_call(
            script, caller, transport, tools, deadlines=deadlines, run_t0_ns=run_t0_ns,
            scheduled_ns=scheduled_ns, call_id=call_id, tools=schemas,
            system_prompt=pack.system_prompt, relay=relay, lag_ms=lag_ms,
            honour_pauses=honour_pauses, speech=speech,
        )
    return await run_text_call(
        script, caller, pack.system_prompt, schemas, transport, tools,
        deadlines=deadlines, run_t0_ns=run_t0_ns, scheduled_ns=scheduled_ns, lag_ms=lag_ms,
        honour_pauses=honour_pauses, call_id=call_id,
    )
