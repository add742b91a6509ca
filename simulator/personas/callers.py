"""Which caller plays a call: a model (``--caller llm``), the frozen caller of a frozen
fixture, or the rule-based caller. The one replay path (:mod:`simulator.driver.replay`)
asks :func:`caller_for`, so the runner, soak and the pytest plugin choose alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.callscript import CallScript
from simulator.personas.caller import Caller
from simulator.personas.freeze import FrozenCaller, is_frozen
from simulator.personas.pack import Pack

if TYPE_CHECKING:
    from simulator.personas.llm_caller import CallerModel


def caller_for(script: CallScript, pack: Pack, model: CallerModel | None = None) -> Any:
    """The caller policy for ``script``: an :class:`~simulator.personas.llm_caller.LLMCaller`
    when a caller ``model`` is given, else the :class:`FrozenCaller` for a frozen fixture,
    else the rule-based :class:`Caller`."""
    if model is not None:
        from simulator.personas.llm_caller import LLMCaller

        return LLMCaller(script, pack, model)
    return FrozenCaller(script, pack) if is_frozen(script) else Caller(script, pack)
