"""What the agent gets back from a tool call: the backend's result for the call's records,
with the fault the degraded script scheduled for that tool call applied (delay, error
status, malformed or wrong body), or a timeout past the tool deadline."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.callscript import CallScript
from simulator.tools.backend import ToolBackend
from simulator.transports.base import Deadlines


def tool_result_text(result: Any) -> str:
    """A backend result as the JSON text an agent receives."""
    return result if isinstance(result, str) else json.dumps(result, separators=(",", ":"))


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
