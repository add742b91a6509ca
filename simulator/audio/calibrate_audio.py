"""The audio closed loop: caller text -> TTS -> telephone line -> pocketsphinx -> WER.

For each noise profile, N caller utterances from the built-in persona packs are rendered
(cached TTS), degraded with the profile's ``audio`` section (seeded), recognised, and
scored against what the caller said. The same utterances recognised from the undegraded
rendering give the recogniser's floor. This checks that the audio profiles order by
difficulty the way their text-noise WER bands claim. See docs/audio.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Literal, get_args

import jiwer
import numpy as np
from rich.table import Table

from simulator.audio.asr import RecogniserConfig, get_recogniser
from simulator.audio.chain import AudioParams, degrade_audio
from simulator.audio.reference_voice import synthesize_reference
from simulator.audio.render import call_voice
from simulator.audio.spoken import spoken_form
from simulator.audio.tts import synthesize
from simulator.degradation.asr_noise import error_counts, normalise
from simulator.errors import InputError
from simulator.seeding import np_rng
from simulator.seeding import rng as seeded_rng

DEFAULT_UTTERANCES = 40
# The speech that probes the line: "piper", the natural reference voice (a recording-like
# VITS voice, simulator.audio.reference_voice), or "espeak", the persona voices that speak
# on calls (formant speech: pocketsphinx misses half its words undegraded).
Speech = Literal["piper", "espeak"]
SPEECH: tuple[str, ...] = get_args(Speech)
FLOOR = "(undegraded)"
# Order the profiles by WER only when the recogniser's floor WER is at most this. Measured:
# generic LM ~83% floor, WER insertion-dominated and unordered; domain LM ~50%.
ORDER_BY_WER_MAX_FLOOR = 0.75

# --- the loop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    """One caller utterance: its text, its spoken-form reference, and its clean rendering."""

    call_id: str
    text: str
    reference: str
    samples: np.ndarray = field(repr=False)
    sample_rate: int


@dataclass(frozen=True)
class AudioCalibration:
    """One profile's closed-loop result. ``wer`` is pooled word errors / reference words
    over the degraded utterances; ``floor_wer`` the same recogniser on the undegraded
    renderings (identical for every profile of one run); ``target_wer`` the profile's
    text-noise band; ``hit_rate`` the share of reference words recognised (1 - (S + D) / N).
    ``examples`` holds (reference, degraded hypothesis) for the first few."""

    profile: str
    target_wer: tuple[float, float]
    utterances: int
    words: int
    errors: int
    wer: float
    hit_rate: float
    floor_wer: float
    floor_hit_rate: float
    seconds_audio: float
    seconds_cpu: float
    examples: tuple[tuple[str, str], ...] = ()
    lm: str = ""
    speech: str = ""


def caller_utterances(count: int, seed: int, cache_dir: str | None = None,
                      speech: Speech = "espeak") -> list[Utterance]:
    """``count`` caller utterances, one from each of ``count`` calls generated from all
    built-in packs with ``seed`` (the turn picked by a seeded draw), rendered with the
    caller's espeak-ng voice, or with the Piper reference voice when ``speech`` is
    "piper". Raises :class:`InputError` for ``count < 1``."""
    from simulator.personas import generate_calls, load_packs

    if count < 1:
        raise InputError(f"--utterances: must be >= 1, got {count}")
    out: list[Utterance] = []
    for call in generate_calls(load_packs(), "all", count, seed):
        turns = [t for t in call.turns if normalise(t.text)]
        if not turns:
            continue
        turn = seeded_rng(seed, "audio-calibrate", call.call_id).choice(turns)
        r = (synthesize_reference(turn.text, cache_dir) if speech == "piper"
             else synthesize(turn.text, call_voice(call, seed), cache_dir=cache_dir))
        out.append(Utterance(call.call_id, turn.text, spoken_form(turn.text), r.samples,
                             r.sample_rate))
    return out


def agent_utterances(count: int, seed: int, cache_dir: str | None = None,
                     speech: Speech = "piper") -> list[Utterance]:
    """``count`` agent turns, one from each of ``count`` calls played between the rule-based
    caller and the reference agent's policy (:func:`simulator.audio.lm.agent_replies`,
    ``seed``; the turn picked by a seeded draw), spoken in the Piper reference voice, or in
    the reference voice agent's espeak-ng voice when ``speech`` is "espeak": what callsim's
    listener hears. Raises :class:`InputError` for ``count < 1``."""
    from simulator.audio.lm import agent_replies

    if count < 1:
        raise InputError(f"--utterances: must be >= 1, got {count}")
    replies = agent_replies(count * 3, seed)
    r = seeded_rng(seed, "listener-calibrate")
    picked = r.sample(replies, min(count, len(replies)))
    out: list[Utterance] = []
    for i, text in enumerate(picked):
        if speech == "piper":
            rend = synthesize_reference(text, cache_dir)
        else:
            from simulator.agent.voice import AGENT_VOICE

            rend = synthesize(text, AGENT_VOICE, cache_dir=cache_dir)
        out.append(Utterance(f"agent-{i}", text, spoken_form(text), rend.samples,
                             rend.sample_rate))
    return out


def _recognise_job(job: tuple[str, Any, list[Utterance], int, RecogniserConfig]
                   ) -> tuple[str, list[str], float, float]:
    """Degrade (unless ``params`` is None) and recognise every utterance. Pure in its
    arguments, so it runs the same in a worker process."""
    name, params, utts, seed, config = job
    rec = get_recogniser(config)
    t0 = time.process_time()
    hyps: list[str] = []
    seconds = 0.0
    for i, u in enumerate(utts):
        if params is None:
            x, sr = u.samples, u.sample_rate
        else:
            d = degrade_audio(u.samples, u.sample_rate, params,
                              np_rng(seed, "audio-calibrate", name, u.call_id, i))
            x, sr = d.samples, d.sample_rate
        seconds += len(x) / sr
        heard = rec.transcribe(x, sr)
        # Moonshine writes numerals ("835-884-7945"); score them as said, like the reference.
        hyps.append(spoken_form(heard) if config.engine == "moonshine" else heard)
    return name, hyps, seconds, time.process_time() - t0


def _score(utts: Sequence[Utterance], hyps: Sequence[str]) -> tuple[int, int, int]:
    """(word errors, reference words, reference words recognised) pooled over utterances.
    Hits are reported beside WER because WER counts insertions: a recogniser that babbles
    on clean audio can score a higher WER than one that hears nothing on a dead line."""
    errors = words = hits = 0
    for u, h in zip(utts, hyps, strict=True):
        e, n = error_counts(u.reference, h)
        errors += e
        words += n
        hyp = normalise(h)
        if u.reference and hyp:
            hits += jiwer.process_words(u.reference, hyp).hits
    return errors, words, hits


def calibrate_audio(
    profiles: list[Any],
    utterances: int = DEFAULT_UTTERANCES,
    seed: int = 1,
    *,
    workers: int = 1,
    cache_dir: str | None = None,
    config: RecogniserConfig | None = None,
    speech: Speech = "espeak",
    source: Literal["caller", "agent"] = "caller",
) -> list[AudioCalibration]:
    """Closed-loop audio WER for each of ``profiles`` (``NoiseProfile`` objects, e.g.
    ``list(load_profiles().values())``), in the order given.

    ``utterances`` caller turns (see :func:`caller_utterances`) are rendered once; each
    profile degrades them with its own seeded Generators. ``workers`` > 1 recognises
    profiles in that many spawned processes (results do not depend on it). Raises
    :class:`~simulator.audio.asr.AsrUnavailableError` without pocketsphinx,
    :class:`~simulator.audio.tts.TTSUnavailableError` without espeak-ng, and
    :class:`InputError` when ``seed`` is the seed ``config``'s domain LM is trained on or
    ``speech`` is not one of ``SPEECH``; ``speech="piper"`` without Piper raises
    :class:`~simulator.audio.tts.TTSUnavailableError` naming the extra. ``source``
    "agent" scores agent turns (:func:`agent_utterances`: what callsim's listener hears)
    instead of caller turns.
    """
    if speech not in SPEECH:
        raise InputError(f"speech: expected one of {', '.join(SPEECH)}, got {speech!r}")
    config = config or RecogniserConfig()
    if config.lm in ("domain", "listener"):
        from simulator.audio.lm import LM_SEED

        lm_seed = LM_SEED if config.lm_seed is None else config.lm_seed
        if seed == lm_seed:
            raise InputError(f"--seed: {seed} is the seed the {config.lm} LM is trained on; "
                             "scoring its own calls would test on training data")
    get_recogniser(config)  # fail fast, with the install hint, before rendering anything
    utts = (agent_utterances(utterances, seed, cache_dir, speech) if source == "agent"
            else caller_utterances(utterances, seed, cache_dir, speech))
    jobs: list[tuple[str, Any, list[Utterance], int, RecogniserConfig]] = [
        (FLOOR, None, utts, seed, config)
    ]
    for p in profiles:
        jobs.append((p.name, AudioParams.from_dict(p.audio), utts, seed, config))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            done = list(ex.map(_recognise_job, jobs))
    else:
        done = [_recognise_job(j) for j in jobs]
    by_name = {name: (hyps, secs, cpu) for name, hyps, secs, cpu in done}
    floor_e, floor_n, floor_h = _score(utts, by_name[FLOOR][0])
    floor = floor_e / floor_n if floor_n else 0.0
    floor_hits = floor_h / floor_n if floor_n else 0.0
    out = []
    for p in profiles:
        hyps, secs, cpu = by_name[p.name]
        e, n, h = _score(utts, hyps)
        out.append(AudioCalibration(
            profile=p.name,
            target_wer=(float(p.asr.target_wer[0]), float(p.asr.target_wer[1])),
            utterances=len(utts),
            words=n,
            errors=e,
            wer=e / n if n else 0.0,
            hit_rate=h / n if n else 0.0,
            floor_wer=floor,
            floor_hit_rate=floor_hits,
            seconds_audio=secs,
            seconds_cpu=cpu,
            examples=tuple((u.reference, h) for u, h in list(zip(utts, hyps, strict=True))[:3]),
            lm=config.lm,
            speech=speech,
        ))
    return out


def band_pairs(results: Sequence[AudioCalibration]
               ) -> list[tuple[AudioCalibration, AudioCalibration]]:
    """Every (easier, harder) pair of profiles whose text bands do not overlap (the easier
    band's top <= the harder band's bottom), easier first. Overlapping bands (car 12-20%
    and cafe 15-25%, say) claim no order between them, so they are not checked."""
    ordered = sorted(results, key=lambda r: (r.target_wer[0] + r.target_wer[1], r.profile))
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]
            if a.target_wer[1] <= b.target_wer[0]]


def order_metric(results: Sequence[AudioCalibration]) -> str:
    """The measure that orders the profiles: "wer" when the recogniser's floor WER is at
    most ``ORDER_BY_WER_MAX_FLOOR``, else "words heard": near a ~100% floor, WER is
    dominated by insertions (pocketsphinx babbles on clean audio and says little on a dead
    line), so a worse line can score lower."""
    floor = max((r.floor_wer for r in results), default=0.0)
    return "wer" if floor <= ORDER_BY_WER_MAX_FLOOR else "words heard"


def order_violations(results: Sequence[AudioCalibration]) -> list[str]:
    """One line per pair of profiles (see :func:`band_pairs`) whose measured WER (or
    words heard, see :func:`order_metric`) is not strictly ordered like their text bands,
    saying by how much; [] when every pair is in order."""
    out = []
    if order_metric(results) == "wer":
        for a, b in band_pairs(results):
            if a.wer >= b.wer:
                out.append(f"{a.profile} WER {a.wer:.1%} >= {b.profile} {b.wer:.1%} "
                           f"(by {a.wer - b.wer:.1%})")
    else:
        for a, b in band_pairs(results):
            if a.hit_rate <= b.hit_rate:
                out.append(f"{a.profile} heard {a.hit_rate:.1%} <= {b.profile} "
                           f"{b.hit_rate:.1%} (by {b.hit_rate - a.hit_rate:.1%})")
    return out


def render_audio_calibration(results: Sequence[AudioCalibration]) -> Table:
    """A rich Table: profile, text-noise target band, measured audio WER, recogniser floor,
    share of words heard, and of the floor; the caption says whether the measure of
    :func:`order_metric` orders the profiles as their bands do (:func:`order_violations`),
    and what the run cost."""
    lm = results[0].lm if results else ""
    speech = results[0].speech if results else ""
    t = Table(title=f"Audio closed loop: {speech or 'TTS'} speech -> line -> pocketsphinx"
                    + (f", {lm} LM" if lm else ""))
    for col in ("profile", "text band", "WER", "floor WER", "heard", "floor heard", "words"):
        t.add_column(col, justify="left" if col == "profile" else "right", no_wrap=True)
    for r in results:
        t.add_row(r.profile, f"{r.target_wer[0]:.0%}-{r.target_wer[1]:.0%}", f"{r.wer:.1%}",
                  f"{r.floor_wer:.1%}", f"{r.hit_rate:.1%}", f"{r.floor_hit_rate:.1%}",
                  str(r.words))
    per = results[0] if results else None
    cost = (f"; {per.utterances} utterances, {per.seconds_audio:.0f} s of audio per profile, "
            f"{sum(r.seconds_cpu for r in results):.0f} s CPU") if per else ""
    metric = order_metric(results)
    violations = order_violations(results)
    what = "WER rises" if metric == "wer" else "words heard fall"
    t.caption = (f"{what} as the text bands rise ({len(band_pairs(results))} pairs with "
                 "disjoint bands checked)" if not violations
                 else f"out of order ({metric}): " + "; ".join(violations)) + cost
    return t
