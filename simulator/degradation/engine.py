"""The degradation entry point: a clean call script in, a degraded one out.

Order per turn: self-correction, disfluencies, partial input (split), then for every
resulting turn pauses, barge-in, backchannels and DTMF, then the ASR pass. Tool faults
are scheduled per call. Every random draw comes from rngs derived from
(seed, call_id, stage), so a call degrades the same way wherever it sits in a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein  # jiwer's own aligner; jiwer depends on it

from simulator.callscript import CallScript, Degradation, Turn, trusted
from simulator.degradation import conversation as conv
from simulator.degradation.asr_noise import (
    asr_pass,
    calibrated_p_word,
    entity_words,
    normalised_words,
    pass_constants,
)
from simulator.degradation.faults import can_fault, fault_schedule
from simulator.degradation.profile import NoiseProfile
from simulator.seeding import rng as seeded_rng


@dataclass(frozen=True)
class _Plan:
    """What every call of one profile shares, computed once per batch (not per turn)."""

    p_word: float
    asr: tuple[float, float, float, float] | None  # asr.pass_constants; None: no ASR noise
    fault_kinds: tuple[str, ...]
    faults: bool  # can the profile inject a tool fault at all

    @classmethod
    def of(cls, profile: NoiseProfile) -> _Plan:
        p_word = calibrated_p_word(profile.asr)
        return cls(p_word=p_word, asr=pass_constants(profile.asr, p_word),
                   fault_kinds=tuple(profile.tool_faults.rates()),
                   faults=can_fault(profile.tool_faults))


def _degrade(script: CallScript, profile: NoiseProfile, seed: int,
             stats: Counter[str] | None = None, plan: _Plan | None = None) -> CallScript:
    if plan is None:
        plan = _Plan.of(profile)
    c = profile.conversation
    r_conv = seeded_rng(seed, script.call_id, "conversation")
    # Seeding a Random is a measurable share of a call: skip the streams a profile never
    # draws from (no ASR noise, no tool faults). Their draws could not change the output.
    r_asr = seeded_rng(seed, script.call_id, "asr") if plan.asr is not None else r_conv
    slots = script.slots

    work: list[conv.WorkTurn] = []
    for t in script.turns:
        w = conv.WorkTurn(kind=t.kind, text=t.text, slot=t.slot,
                          events=[dict(e) for e in t.events], pause_before_s=t.pause_before_s,
                          dtmf=t.dtmf)
        conv.self_correct(w, slots, c, r_conv, stats)
        conv.disfluencies(w, c, r_conv, stats)
        rest = conv.partial_input(w, c, r_conv, stats)
        work.append(w)
        if rest is not None:
            work.append(rest)
    last = len(work) - 1
    for i, w in enumerate(work):
        if w.kind != "partial":  # a continuation follows its first half at once
            conv.pauses(w, c, r_conv, stats)
        if i < last:  # no agent reply to interrupt after the caller's last turn
            conv.barge_in(w, c, r_conv, stats)
            conv.backchannels(w, c, r_conv, stats)
        conv.dtmf(w, slots, c, r_conv, stats)

    ents = entity_words(slots.values())
    turns: list[Turn] = []
    perturbations: list[dict[str, object]] = []
    errs = words = 0
    for i, w in enumerate(work):
        res = asr_pass(w.text, r_asr, plan.asr, ents)
        ref = normalised_words(w.text)
        if res.edits:
            e = Levenshtein.distance(ref, normalised_words(res.text))
        else:
            e = 0
        errs += e
        words += len(ref)
        wer = round(e / len(ref), 4) if ref else 0.0
        for ev in w.events:
            perturbations.append({"turn": i, **ev})
        turns.append(trusted(Turn, {
            "index": i, "kind": w.kind, "text": res.text, "slot": w.slot,
            "clean_text": w.text, "wer": wer, "edits": res.edits, "events": w.events,
            "pause_before_s": w.pause_before_s, "dtmf": w.dtmf}))
    faults = (fault_schedule(profile.tool_faults, len(script.expected_tool_calls),
                             seeded_rng(seed, script.call_id, "tool_faults"))
              if plan.faults else [])
    if stats is not None:
        n_slots = len(script.expected_tool_calls) + profile.tool_faults.spare_calls
        for kind in plan.fault_kinds:
            stats[f"fault_{kind}:n"] += n_slots
        for f in faults:
            stats[f"fault_{f['kind']}"] += 1
        stats["wer_errors"] += errs
        stats["wer_words"] += words
    deg = trusted(Degradation, {
        "profile": profile.name, "seed": seed, "target_wer": profile.asr.target_wer,
        "measured_wer": round(errs / words, 4) if words else 0.0,
        "perturbations": perturbations, "tool_faults": faults})
    # A shallow copy, as model_copy(update=...) makes, with the two new fields.
    return trusted(CallScript, {**script.__dict__, "turns": turns, "degradation": deg})


def degrade_call(script: CallScript, profile: NoiseProfile, seed: int) -> CallScript:
    """``script`` degraded by ``profile``: turns carry ``clean_text`` (what the caller
    said), ``text`` (what the agent receives), ``wer``, ``edits`` and ``events``;
    ``degradation`` records profile, seed, target and measured WER, perturbations and the
    tool-fault schedule. Deterministic in (script, profile, seed); ``script`` is unchanged.
    """
    return _degrade(script, profile, seed)


def degrade_calls(scripts: Iterable[CallScript], profile: NoiseProfile,
                  seed: int) -> list[CallScript]:
    """:func:`degrade_call` over many scripts (each call's randomness depends only on
    ``seed`` and its ``call_id``)."""
    plan = _Plan.of(profile)
    return [_degrade(s, profile, seed, None, plan) for s in scripts]
