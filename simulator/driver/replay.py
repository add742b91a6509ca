"""One call replayed: the caller's script over a transport, the agent's tool calls answered
by the simulated tool side (:mod:`simulator.tools`) with the faults the script scheduled.

The runner, soak and the pytest plugin all replay a call through :func:`replay_call`, so a
call behaves the same whichever of them drives it; the transport's registered spec decides
whether the text or the audio call loop runs, and
:func:`~simulator.personas.callers.caller_for` who plays the caller (a model, a frozen
fixture's caller, or the rule-based caller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.callscript import CallScript
from simulator.driver.session import CallRun, run_text_call
from simulator.personas import Pack, caller_for
from simulator.tools.answers import ToolAnswers
from simulator.transports.base import Deadlines
from simulator.transports.registry import TransportSpec

if TYPE_CHECKING:
    from simulator.personas.llm_caller import CallerModel

#: Builds a script's caller policy: ``(script, pack) -> caller``.
CallerFactory = Callable[[CallScript, Pack], Any]


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
    caller: Callable[[CallerFactory], Any] | None = None,
    caller_model: CallerModel | None = None,
    scheduled_ns: int | None = None,
    lag_ms: Callable[[], float] = lambda: 0.0,
    honour_pauses: bool = True,
    relay: Any = None,
    speech: Any = None,
    tool_schemas: list[dict[str, Any]] | None = None,
    pacing: str = "none",
    turn_taking: Any = None,
    listener: Any = None,
) -> CallRun:
    """Replay ``script`` over ``transport`` (built from ``spec``); return what the driver saw.

    The caller is the script's own (:func:`~simulator.personas.callers.caller_for`: a model
    when ``caller_model`` is given, the frozen caller of a frozen fixture, else the
    rule-based one); ``caller``, when given, builds the call's caller around that choice
    (soak chains several scripts' callers into one call). ``relay`` routes the agent's HTTP
    tool calls (transports whose spec has ``tool_relay``); ``speech`` gives the caller's
    audio on audio transports (default: synthetic tones); ``tool_schemas`` the pack's tool
    schemas when the caller has them at hand already.

    The transcript keeps what the caller says of itself: ``caller_llm`` (a model's tokens,
    cost and any invented values) and ``frozen`` (where a frozen fixture diverged).
    ``pacing`` applies to text transports (:mod:`simulator.driver.pacing`): ``"speech"`` sends
    each caller turn once the persona has said it, ``"none"`` back to back; an audio line
    paces itself (a turn takes as long as it is spoken).
    """
    def choose(s: CallScript, p: Pack) -> Any:
        return caller_for(s, p, caller_model)

    policy = caller(choose) if caller is not None else choose(script, pack)
    run = await _replay(script, pack, transport, spec, tools, policy, deadlines=deadlines,
                        run_t0_ns=run_t0_ns, call_id=call_id, scheduled_ns=scheduled_ns,
                        lag_ms=lag_ms, honour_pauses=honour_pauses, relay=relay,
                        speech=speech, tool_schemas=tool_schemas, pacing=pacing,
                        turn_taking=turn_taking, listener=listener)
    frozen = getattr(policy, "frozen_record", None)
    if frozen is not None:
        run.transcript["frozen"] = frozen()
    record = getattr(policy, "record", None)
    if record is not None:
        run.transcript["caller_llm"] = record()
    return run


async def _replay(
    script: CallScript, pack: Pack, transport: Any, spec: TransportSpec, tools: ToolAnswers,
    caller: Any, *, deadlines: Deadlines, run_t0_ns: int, call_id: str,
    scheduled_ns: int | None, lag_ms: Callable[[], float], honour_pauses: bool, relay: Any,
    speech: Any, tool_schemas: list[dict[str, Any]] | None, pacing: str,
    turn_taking: Any = None, listener: Any = None,
) -> CallRun:
    schemas = tool_schemas if tool_schemas is not None else pack.tool_schemas()
    if spec.audio:
        from simulator.driver.audio_call import run_audio_call

        return await run_audio_call(
            script, caller, transport, tools, deadlines=deadlines, run_t0_ns=run_t0_ns,
            scheduled_ns=scheduled_ns, call_id=call_id, tools=schemas,
            system_prompt=pack.system_prompt, relay=relay, lag_ms=lag_ms,
            honour_pauses=honour_pauses, speech=speech, turn_taking=turn_taking,
            listener=listener,
        )
    return await run_text_call(
        script, caller, pack.system_prompt, schemas, transport, tools,
        deadlines=deadlines, run_t0_ns=run_t0_ns, scheduled_ns=scheduled_ns, lag_ms=lag_ms,
        honour_pauses=honour_pauses, call_id=call_id, pacing=pacing,
    )
