"""The degradation entry point: a clean call script in, a degraded one out.

Order per turn: self-correction, disfluencies, partial input (split), then for every
resulting turn pauses, barge-in, backchannels and DTMF, then the ASR pass. Tool faults
are scheduled per call. Every random draw comes from rngs derived from
(seed, call_id, stage), so a call degrades the same way wherever it sits in a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein  # jiwer's own aligner; jiwer depends on it

from simulator.callscript import CallScript, Degradation, Turn
from simulator.degradation import conversation as conv
from simulator.degradation.asr import calibrated_p_word, degrade_text, entity_words, normalise
from simulator.degradation.faults import fault_schedule
from simulator.degradation.profile import NoiseProfile
from simulator.seeding import rng as seeded_rng


def _degrade(script: CallScript, profile: NoiseProfile, seed: int,
             stats: Counter[str] | None = None) -> CallScript:
    c = profile.conversation
    r_conv = seeded_rng(seed, script.call_id, "conversation")
    r_asr = seeded_rng(seed, script.call_id, "asr")
    r_fault = seeded_rng(seed, script.call_id, "tool_faults")
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

    p_word = calibrated_p_word(profile.asr)
    ents = entity_words(slots.values())
    turns: list[Turn] = []
    perturbations: list[dict[str, object]] = []
    errs = words = 0
    for i, w in enumerate(work):
        res = degrade_text(w.text, r_asr, p_word, profile.asr, ents)
        ref = normalise(w.text).split()
        if res.edits:
            e = Levenshtein.distance(ref, normalise(res.text).split())
        else:
            e = 0
        errs += e
        words += len(ref)
        wer = round(e / len(ref), 4) if ref else 0.0
        for ev in w.events:
            perturbations.append({"turn": i, **ev})
        # model_construct: every field is built here with the right type (hot path).
        turns.append(Turn.model_construct(
            index=i, kind=w.kind, text=res.text, slot=w.slot, clean_text=w.text, wer=wer,
            edits=res.edits, events=w.events, pause_before_s=w.pause_before_s, dtmf=w.dtmf))
    faults = fault_schedule(profile.tool_faults, len(script.expected_tool_calls), r_fault)
    if stats is not None:
        n_slots = len(script.expected_tool_calls) + profile.tool_faults.spare_calls
        for kind in profile.tool_faults.rates():
            stats[f"fault_{kind}:n"] += n_slots
        for f in faults:
            stats[f"fault_{f['kind']}"] += 1
        stats["wer_errors"] += errs
        stats["wer_words"] += words
    deg = Degradation.model_construct(
        profile=profile.name, seed=seed, target_wer=profile.asr.target_wer,
        measured_wer=round(errs / words, 4) if words else 0.0,
        perturbations=perturbations, tool_faults=faults)
    return script.model_copy(update={"turns": turns, "degradation": deg})


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
    return [_degrade(s, profile, seed) for s in scripts]
