"""One simulated call over a text transport: the caller speaks, the agent answers, the
simulator plays the tool backend, and every exchange is timed.

The loop is transport-agnostic: anything with the ``TextTransport`` shape works. Tool
faults from the degraded script are applied here, per tool call, so the agent sees exactly
what the profile scheduled and the transcript records it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.agent_profile import add_usage
from simulator.callscript import CallScript, Turn
from simulator.driver.pacing import REAL_CLOCK, Clock, pauses_s, speaking_rate_wpm, turn_delay_s
from simulator.errors import TransportError
from simulator.results import TURN_TIMINGS, TurnRecord
from simulator.transports.base import Deadlines, Exchange, TextTransport

_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_TOOL_ROUNDS = 8


@dataclass(slots=True)
class CallRun:
    """What the driver saw during one call (before grading)."""

    exchanges: list[TurnRecord] = field(default_factory=list)
    transcript: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None
    error_detail: str = ""
    started_ns: int = 0
    finished_ns: int = 0

    @property
    def ttft_ms(self) -> tuple[float, ...]:
        """First-token latency of each caller turn (tool follow-ups excluded)."""
        return self.caller_values("ttft_ms")

    def caller_values(self, name: str) -> tuple[float, ...]:
        """A ``TurnRecord`` timing of each caller turn that has it (tool follow-ups
        excluded), e.g. ``caller_values("ttfa_ms")``."""
        out = []
        for e in self.exchanges:
            if e.phase == "caller":
                v = getattr(e, name)
                if v is not None:
                    out.append(v)
        return tuple(out)

    def timings(self) -> dict[str, tuple[float, ...]]:
        """Every per-turn timing an outcome carries (:data:`TURN_TIMINGS`), by name."""
        return {name: self.caller_values(name) for name in TURN_TIMINGS}


def _estimate_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


async def awaited_turn(value: Any) -> Turn | None:
    """A caller policy's ``first()`` / ``respond()`` result: a turn (the rule-based caller)
    or an awaitable of one (a caller whose lines a model writes)."""
    return await value if inspect.isawaitable(value) else value


ToolExecutor = Callable[[str, str, dict[str, Any], int], "asyncio.Future[str] | Any"]


async def run_text_call(
    script: CallScript,
    caller: Any,
    system_prompt: str,
    tools: list[dict[str, Any]],
    transport: TextTransport,
    execute_tool: Callable[[str, dict[str, Any] | None, str, int], Any],
    *,
    deadlines: Deadlines,
    run_t0_ns: int,
    scheduled_ns: int | None = None,
    lag_ms: Callable[[], float] = lambda: 0.0,
    honour_pauses: bool = True,
    call_id: str | None = None,
    pacing: str = "none",
    clock: Clock = REAL_CLOCK,
) -> CallRun:
    """Replay ``script`` against ``transport``.

    ``caller`` has ``first() -> Turn`` and ``respond(agent_text) -> Turn | None``, each
    possibly awaitable (see :func:`awaited_turn`); a caller that fails (its model endpoint)
    ends the call with its error category.
    ``execute_tool(name, parsed_args, raw_args, k)`` is awaited for the k-th tool call of the
    call and returns ``(result_text, fault_record | None)``. With ``pacing="speech"`` each
    caller turn is sent when the persona has finished saying it (see
    :mod:`simulator.driver.pacing`) and that moment is the turn's scheduled time; ``"none"``
    sends turns back to back. ``clock`` is the time seam (tests pass a controllable one).
    """
    _now = clock.now_ns
    run = CallRun(started_ns=_now())
    wpm = speaking_rate_wpm(script.persona.voice)
    # When the caller starts speaking the next turn: the call's arrival for the opening.
    speech_from = scheduled_ns if scheduled_ns is not None else run.started_ns
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    usage: dict[str, Any] = {}
    estimated = False
    caller_log: list[dict[str, Any]] = []
    agent_log: list[str] = []
    tool_log: list[dict[str, Any]] = []
    tool_k = 0
    seq = 0
    deadline = run.started_ns + int(deadlines.call_s * 1e9)
    try:
        turn: Turn | None = await awaited_turn(caller.first())
    except TransportError as exc:
        run.error, run.error_detail, turn = exc.category, str(exc), None
    first_turn = True
    while turn is not None:
        # No pause before the opening (there is no greeting to pause after on text).
        delay = turn_delay_s(turn, wpm, pacing=pacing,
                             honour_pauses=honour_pauses and not first_turn)
        due_ns = speech_from + int(delay * 1e9)
        if delay > 0:
            await clock.sleep_until(min(due_ns, deadline))
            if honour_pauses and not first_turn and pauses_s(turn) > 0:
                run.events.append(("pause", {"turn": turn.index, "seconds": pauses_s(turn)}))
        # The turn's clock starts when its text is due (end of speech, as ASR delivers it);
        # unpaced, only an open-loop call's opening has a schedule (its arrival).
        turn_sched = due_ns if pacing == "speech" else (scheduled_ns if first_turn else None)
        messages.append({"role": "user", "content": turn.text})
        caller_log.append({"index": turn.index, "kind": turn.kind, "text": turn.text,
                           "clean_text": turn.clean_text})
        barge = next((e for e in turn.events if e.get("type") == "barge_in"), None)
        phase = "caller"
        rounds = 0
        ex: Exchange | None = None
        while True:
            if _now() > deadline:
                run.error, run.error_detail = "call_timeout", "call exceeded its deadline"
                break
            onset = float(barge["onset_s"]) if barge and phase == "caller" else None
            try:
                async with asyncio.timeout((deadline - _now()) / 1e9):
                    ex = await transport.exchange(messages, tools, interrupt_after_s=onset,
                                                  call_id=call_id)
            except TimeoutError:
                run.error, run.error_detail = "call_timeout", "call exceeded its deadline"
                break
            sched = turn_sched if phase == "caller" else None
            run.exchanges.append(_exchange_record(seq, turn.index, phase, ex, run_t0_ns,
                                                  sched, lag_ms()))
            seq += 1
            if ex.usage:
                add_usage(usage, ex.usage)
            else:
                estimated = True
                add_usage(usage, {
                    "prompt_tokens": sum(_estimate_tokens(str(m.get("content") or ""))
                                         for m in messages),
                    "completion_tokens": _estimate_tokens(ex.text),
                })
            if ex.error:
                run.error, run.error_detail = ex.error, ex.error_detail
                if ex.text:
                    agent_log.append(ex.text)
                break
            if ex.tool_calls and ex.interrupted_at_ns is None:
                messages.append({
                    "role": "assistant",
                    "content": ex.text or None,
                    "tool_calls": [
                        {"id": c.id, "type": "function",
                         "function": {"name": c.name, "arguments": c.arguments}}
                        for c in ex.tool_calls
                    ],
                })
                if ex.text:
                    agent_log.append(ex.text)
                for c in ex.tool_calls:
                    result, fault = await execute_tool(c.name, c.parsed, c.arguments, tool_k)
                    tool_log.append({"name": c.name, "arguments": c.parsed, "raw": c.arguments,
                                     "result": result, "fault": fault, "k": tool_k})
                    if fault:
                        run.events.append(("tool_fault", {"k": tool_k, "tool": c.name, **fault}))
                    tool_k += 1
                    messages.append({"role": "tool", "tool_call_id": c.id, "content": result})
                phase = "tool"
                rounds += 1
                if rounds > MAX_TOOL_ROUNDS:
                    run.error, run.error_detail = "tool_loop", "agent kept calling tools"
                    break
                continue
            messages.append({"role": "assistant", "content": ex.text})
            agent_log.append(ex.text)
            break
        first_turn = False
        if run.error:
            break
        assert ex is not None
        if ex.interrupted_at_ns is not None and barge is not None:
            run.events.append(("barge_in", {
                "turn": turn.index, "onset_s": barge["onset_s"],
                "agent_said": ex.text, "text": barge.get("text", ""),
            }))
            text = str(barge.get("text") or "Sorry, wait.")
            turn = Turn(index=turn.index, kind="barge_in", text=text, pause_before_s=0.0)
            speech_from = ex.interrupted_at_ns  # the caller starts talking over the agent
            continue
        speech_from = ex.last_byte_ns if ex.last_byte_ns is not None else _now()
        try:
            turn = await awaited_turn(caller.respond(ex.text))
        except TransportError as exc:
            run.error, run.error_detail = exc.category, str(exc)
            break
    run.finished_ns = _now()
    run.transcript = {
        "caller": caller_log,
        "agent": agent_log,
        "tool_calls": tool_log,
        "usage": usage,
        "usage_estimated": estimated,
        "duration_s": (run.finished_ns - run.started_ns) / 1e9,
    }
    return run


def _exchange_record(
    seq: int, caller_turn: int, phase: str, ex: Exchange, t0: int,
    scheduled_ns: int | None, lag: float,
) -> TurnRecord:
    ttft = ex.ttft_ms
    usage = ex.usage or {}
    return TurnRecord(
        seq=seq, caller_turn=caller_turn, phase=phase,
        scheduled_s=None if scheduled_ns is None else (scheduled_ns - t0) / 1e9,
        sent_s=(ex.sent_ns - t0) / 1e9,
        conn_setup_ms=ex.conn_setup_ns / 1e6,
        ttft_ms=ttft,
        ttft_from_schedule_ms=(
            None if ttft is None or scheduled_ns is None
            else (ex.first_content_ns - scheduled_ns - ex.conn_setup_ns) / 1e6  # type: ignore[operator]
        ),
        last_byte_ms=None if ex.last_byte_ns is None else (ex.last_byte_ns - ex.sent_ns) / 1e6,
        loop_lag_ms=lag, stalls=ex.stalls, max_gap_ms=ex.max_gap_ms,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        interrupted=ex.interrupted_at_ns is not None, error=ex.error, text=ex.text,
    )
