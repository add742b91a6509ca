"""Seeded synthetic call outcomes, for tests, benchmarks and demos of the gate.

A run replays a fixed set of scripts; each script's properties (vertical, noise profile,
intent, whether the record exists, how many turns and tool arguments) come from the
scripts seed, so two runs over the same scripts pair by ``script_id``. How the agent
behaves on each call (latency, argument errors, refusals, fabrication, cost) comes from the
run seed and the :class:`AgentModel`. Noisier profiles are slower and less accurate for
every agent, as on real traffic, which is what makes the paired bootstrap worth having.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.results import CallOutcome
from simulator.seeding import np_rng

PACKS = ("clinic", "real_estate", "salon", "after_hours")
PROFILES = ("clean", "typical_call", "noisy")
INTENTS = ("book", "reschedule", "cancel", "lookup")
_PROFILE_SLOWDOWN = {"clean": 1.0, "typical_call": 1.15, "noisy": 1.35}
_PROFILE_ARG_ERRORS = {"clean": 0.0, "typical_call": 0.03, "noisy": 0.08}


@dataclass(frozen=True, slots=True)
class AgentModel:
    """How a simulated agent behaves (defaults: a decent production agent)."""

    ttft_median_ms: float = 550.0
    ttft_sigma: float = 0.35          # log-normal shape per turn
    ttft_shift_ms: float = 0.0        # added to every turn
    arg_error_rate: float = 0.05      # per argument, on top of the profile's
    refusal_rate: float = 0.90        # on missing records
    fabricate_rate: float = 0.03      # on missing records
    over_refusal_rate: float = 0.02   # on existing records
    cost_mean_usd: float = 0.040
    cost_sd_usd: float = 0.010
    error_rate: float = 0.01
    ttfa_extra_ms: float = 250.0      # time to first audio = ttft + this


def synthetic_run(n_calls: int, agent: AgentModel, *, seed: object, scripts_seed: object = 0,
                  missing_record_rate: float = 0.15, run: str = "run") -> list[CallOutcome]:
    """``n_calls`` outcomes over scripts ``s0..s{n-1}`` (one call per script)."""
    out: list[CallOutcome] = []
    for i in range(n_calls):
        sid = f"s{i:05d}"
        s = np_rng(scripts_seed, "script", sid)
        pack = PACKS[int(s.integers(len(PACKS)))]
        profile = PROFILES[int(s.integers(len(PROFILES)))]
        exists = bool(s.random() >= missing_record_rate)
        intent = "lookup" if not exists else INTENTS[int(s.integers(3))]
        turns = int(s.integers(3, 9))
        arg_total = int(s.integers(2, 6)) if exists else 1
        difficulty = float(s.lognormal(0.0, 0.15))      # same script, same difficulty

        g = np_rng(seed, "call", sid)
        ok = bool(g.random() >= agent.error_rate)
        slow = _PROFILE_SLOWDOWN[profile] * difficulty
        ttft = g.lognormal(np.log(agent.ttft_median_ms * slow), agent.ttft_sigma, turns)
        ttft = ttft + agent.ttft_shift_ms
        p_arg = min(1.0, agent.arg_error_rate + _PROFILE_ARG_ERRORS[profile])
        arg_correct = int(g.binomial(arg_total, 1.0 - p_arg)) if ok else 0
        if exists:
            refused = bool(g.random() < agent.over_refusal_rate)
            fabricated = False
        else:
            fabricated = bool(g.random() < agent.fabricate_rate)
            refused = (not fabricated) and bool(g.random() < agent.refusal_rate / max(
                1e-9, 1.0 - agent.fabricate_rate))
        cost = max(0.0, float(g.normal(agent.cost_mean_usd, agent.cost_sd_usd)))
        out.append(CallOutcome(
            call_id=f"{run}-{i}", script_id=sid, pack=pack, profile=profile, intent=intent,
            ok=ok, error=None if ok else "timeout",
            ttft_ms=tuple(float(x) for x in ttft) if ok else (),
            arg_total=arg_total, arg_correct=arg_correct,
            strict_pass=ok and arg_correct == arg_total and not fabricated,
            record_exists=exists, refused=refused and ok, fabricated=fabricated and ok,
            cost_usd=cost,
            extra={"ttfa_ms": float(ttft[0] + agent.ttfa_extra_ms)} if ok else {},
        ))
    return out
