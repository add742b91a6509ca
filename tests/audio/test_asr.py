"""The audio closed loop with a real recogniser (pocketsphinx, the ``asr`` extra).

Numbers are what pocketsphinx's small bundled model does on espeak-ng speech: poor in
absolute terms (docs/audio.md), so the thresholds leave room above what was measured.
"""

from __future__ import annotations

from pathlib import Path

import jiwer
import numpy as np
import pytest

from simulator.audio import asr, tts
from simulator.audio.calibrate_audio import calibrate_audio, caller_utterances
from simulator.audio.chain import AudioParams, degrade_audio
from simulator.audio.spoken import spoken_form
from simulator.degradation import get_profile
from simulator.degradation.asr_noise import error_counts, normalise, word_error_rate
from simulator.seeding import np_rng

ASR_OK, ASR_WHY = asr.asr_available()
TTS_OK, TTS_WHY = tts.tts_available()
needs_loop = pytest.mark.skipif(
    not (ASR_OK and TTS_OK),
    reason=f"needs pocketsphinx ({ASR_WHY}) and TTS ({TTS_WHY})",
)
VOICE = tts.Voice("en-us", rate=170, pitch=50)
SENTENCES = (
    "I would like to book an appointment for next week",
    "Hello I want to cancel my appointment please",
    "What time do you open tomorrow",
    "Yes that is correct thank you very much",
)


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("around 2:30 PM", "around two thirty pm"),
        ("the 7th of June", "the seventh of june"),
        ("born 3/10/1963", "born three ten nineteen sixty three"),
        ("call 831 839 93771", "call eight hundred thirty one eight hundred thirty nine "
                               "nine three seven seven one"),
        ("offer $225,000.", "offer two hundred twenty five thousand dollars"),
        ("listing L-30538", "listing l three zero five three eight"),
    ],
    ids=["time", "ordinal", "date", "phone", "money", "id"],
)
def test_reference_is_written_in_words_as_a_recogniser_writes(text: str, spoken: str) -> None:
    assert spoken_form(text) == spoken


def test_without_pocketsphinx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pocketsphinx(name: str, *args: object, **kwargs: object) -> object:
        if name == "pocketsphinx":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pocketsphinx)
    ok, why = asr.asr_available()
    assert not ok and "pip install 'callsim[asr]'" in why and "\n" not in why
    with pytest.raises(asr.AsrUnavailableError, match=r"callsim\[asr\]"):
        asr.Recogniser()


def _render(text: str, cache: Path) -> tts.Rendered:
    return tts.synthesize(text, VOICE, cache_dir=cache)


@needs_loop
def test_clean_speech_is_mostly_recognised(tmp_path: Path) -> None:
    r = _render(SENTENCES[0], tmp_path)
    hyp = asr.transcribe(r.samples, r.sample_rate)
    # measured: "i would look up one for next week" (WER 0.5)
    assert word_error_rate(SENTENCES[0], hyp) <= 0.75, hyp
    assert asr.transcribe(np.zeros(0, dtype=np.float32), 8000) == ""


@needs_loop
def test_hostile_line_loses_more_words_than_a_clean_line(tmp_path: Path) -> None:
    clean_line = AudioParams.clean()
    hostile = AudioParams.from_dict(get_profile("hostile").audio)
    errs = {"clean": 0, "hostile": 0}
    words = 0
    for i, text in enumerate(SENTENCES):
        r = _render(text, tmp_path)
        for name, params in (("clean", clean_line), ("hostile", hostile)):
            d = degrade_audio(r.samples, r.sample_rate, params, np_rng(3, "test-asr", i))
            e, n = error_counts(text, asr.transcribe(d.samples, d.sample_rate))
            errs[name] += e
        words += n
    assert errs["clean"] / words < errs["hostile"] / words, errs


@needs_loop
def test_calibrate_audio_orders_clean_below_hostile(tmp_path: Path) -> None:
    profiles = [get_profile("clean"), get_profile("hostile")]
    clean, hostile = calibrate_audio(profiles, utterances=4, seed=1, cache_dir=str(tmp_path))
    assert (clean.profile, hostile.profile) == ("clean", "hostile")
    assert clean.words == hostile.words > 0
    assert clean.floor_wer == hostile.floor_wer
    # On these persona utterances pocketsphinx's WER is ~100% even undegraded (it inserts
    # words on clean audio, and hears nothing on a hostile line, so WER can come out
    # *lower* there); the share of reference words heard is what orders the lines.
    assert clean.hit_rate > hostile.hit_rate
    assert hostile.hit_rate < 0.5 * clean.hit_rate


@needs_loop
def test_the_domain_lm_hears_more_of_the_callers_than_the_generic_one(tmp_path: Path) -> None:
    utts = caller_utterances(8, 1, str(tmp_path / "tts"))
    wer = {}
    for lm in ("generic", "domain"):
        rec = asr.Recogniser(asr.RecogniserConfig(lm=lm, lm_cache_dir=str(tmp_path / "lm")))
        errors = words = 0
        for u in utts:
            e, n = error_counts(u.reference, rec.transcribe(u.samples, u.sample_rate))
            errors += e
            words += n
        wer[lm] = errors / words
    # measured (40 utterances, undegraded): generic 93.6%, domain 57.5%
    assert wer["domain"] < wer["generic"] - 0.15, wer


@needs_loop
def test_a_noise_floor_keeps_digital_silence_from_costing_words(tmp_path: Path) -> None:
    utts = caller_utterances(8, 1, str(tmp_path / "tts"))
    line = AudioParams.from_dict(get_profile("clean").audio)  # no noise bed: exact zeros
    degraded = [degrade_audio(u.samples, u.sample_rate, line, np_rng(1, "t", i))
                for i, u in enumerate(utts)]
    assert any(float(np.mean(d.samples == 0)) > 0.05 for d in degraded)
    heard = {}
    for floor in (None, asr.NOISE_FLOOR_DBFS):
        rec = asr.Recogniser(asr.RecogniserConfig(lm="domain", noise_floor_dbfs=floor,
                                                  lm_cache_dir=str(tmp_path / "lm")))
        hits = words = 0
        for u, d in zip(utts, degraded, strict=True):
            hyp = normalise(rec.transcribe(d.samples, d.sample_rate))
            words += len(u.reference.split())
            hits += jiwer.process_words(u.reference, hyp).hits if hyp else 0
        heard[floor] = hits / words
    # measured (40 utterances, clean line): 20.1% of words heard without, 31.0% with
    assert heard[asr.NOISE_FLOOR_DBFS] > heard[None], heard


MOONSHINE_OK, MOONSHINE_WHY = asr.moonshine_available()


@pytest.mark.skipif(not MOONSHINE_OK, reason=MOONSHINE_WHY)
def test_moonshine_hears_names_and_numbers_over_a_phone_line(tmp_path: Path) -> None:
    # Natural speech (the Piper reference voice) through the telephone line: Moonshine
    # writes what was said, names and numerals included, in this process and from a
    # listener's worker alike.
    from simulator.audio.reference_voice import reference_voice_available, synthesize_reference

    ok, why = reference_voice_available()
    if not ok:
        pytest.skip(why)
    # Digit by digit, as callsim's callers say phone numbers.
    said = "Hi, this is Stephanie Schultz, my number is six two seven, eight one three, " \
           "nine three six two."
    r = synthesize_reference(said, tmp_path)
    line = degrade_audio(r.samples, r.sample_rate, AudioParams(),
                         np_rng(1, "moonshine-test"))
    rec = asr.get_recogniser(asr.RecogniserConfig(engine="moonshine"))
    heard = rec.transcribe(line.samples, line.sample_rate)
    assert "Schultz" in heard and "".join(c for c in heard if c.isdigit()) == "6278139362", heard
    assert normalise(heard).startswith("hi this is stephanie schultz my number is"), heard


@pytest.mark.skipif(not MOONSHINE_OK, reason=MOONSHINE_WHY)
def test_moonshine_takes_a_few_milliseconds_of_audio_without_dying() -> None:
    # Its encoder aborts the whole process on 20 ms of input; a listener worker gets such
    # scraps (a lone frame of agent audio), so they are padded with silence.
    rec = asr.get_recogniser(asr.RecogniserConfig(engine="moonshine"))
    for n in (0, 1, 160, 320):
        assert rec.transcribe(np.zeros(n, np.float32) + 0.01, 8000) == ""
