"""Persona packs, the persona generator and the caller policy."""

from __future__ import annotations

from simulator.personas.caller import Caller
from simulator.personas.callers import caller_for
from simulator.personas.freeze import FrozenCaller
from simulator.personas.generator import generate_call, generate_calls
from simulator.personas.pack import Pack, load_pack, load_packs

__all__ = ["Caller", "FrozenCaller", "Pack", "caller_for", "generate_call", "generate_calls",
           "load_pack", "load_packs"]
