"""One call replayed: the caller's script over a transport, the agent's tool calls answered
by the simulated tool side (:mod:`simulator.tools`) with the faults the script scheduled.

The runner, soak and the pytest plugin all replay a call through :func:`replay_call`, so a
call behaves the same whichever of them drives it; the transport's registered spec decides
whether the text or the audio call loop runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.callscript import CallScript
from simulator.driver.session import CallRun, run_text_call
from simulator.personas import Caller, Pack
from simulator.tools.answers import ToolAnswers
from simulator.transports.base import Deadlines
from simulator.transports.registry import TransportSpec


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
