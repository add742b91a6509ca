"""Caller voices a recogniser hears: Piper, a speaking rate and a pitch per persona."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.audio import dsp
from simulator.audio.caller_audio import resolve_caller_voice
from simulator.audio.reference_voice import reference_voice_available
from simulator.audio.render import call_voice
from simulator.audio.tts import Voice, say_digits, synthesize
from simulator.errors import InputError
from simulator.personas import generate_calls, load_packs

PIPER_OK, PIPER_WHY = reference_voice_available()
needs_piper = pytest.mark.skipif(not PIPER_OK, reason=f"needs Piper ({PIPER_WHY})")


def test_each_pack_has_several_distinct_piper_voices_chosen_by_seed() -> None:
    calls = generate_calls(load_packs(), "all", 60, 3)
    by_pack: dict[str, set[str]] = {}
    for c in calls:
        by_pack.setdefault(c.pack, set()).add(call_voice(c, 3, "piper").key())
    assert len(by_pack) >= 3
    for pack, voices in by_pack.items():
        assert len(voices) >= 4, (pack, voices)
    # The same persona and seed: the same voice; another seed moves it.
    c = calls[0]
    assert call_voice(c, 3, "piper") == call_voice(c, 3, "piper")
    assert {call_voice(c, s, "piper").key() for s in range(8)} != {call_voice(c, 3, "piper").key()}
    # The espeak-ng voices are the ones they were.
    assert call_voice(c, 3).engine == "espeak" and call_voice(c, 3, "espeak") == call_voice(c, 3)


def test_phone_numbers_and_ids_are_said_digit_by_digit() -> None:
    assert say_digits("744-923-1764.") == "seven four four, nine two three, one seven six four."
    assert say_digits("It's L-30538") == "It's L-three zero five three eight"
    assert say_digits("543, 283, four zero six oh.") == (
        "five four three, two eight three, four zero six oh.")
    # Clock times and slash dates as people say them, not as a voice reads the symbols
    # ("three zero zero PM", "four slash twelve slash ...").
    assert say_digits("3:00 PM, or 9:05.") == "three PM, or nine oh five."
    assert say_digits("It's 4/12/1959.") == "It's four twelve, nineteen fifty nine."
    assert say_digits("6/11.") == "six eleven."
    # Short numbers, ISO dates and amounts are the voice's to read.
    kept = "room 12, born 1963-05-15, $225,000"
    assert say_digits(kept) == kept


@needs_piper
def test_piper_voices_differ_and_render_the_same_bytes_again(tmp_path: object) -> None:
    text = "My number is 564 395 4972."
    slow_low = Voice(engine="piper", length_scale=1.15, pitch_factor=0.92)
    fast_high = Voice(engine="piper", length_scale=0.9, pitch_factor=1.12)
    a = synthesize(text, slow_low, cache_dir=str(tmp_path))
    b = synthesize(text, fast_high, cache_dir=str(tmp_path))
    assert a.sample_rate == b.sample_rate == 22_050
    # A slower voice speaks longer (the pitch factor's length is compensated).
    assert len(a.samples) / len(b.samples) == pytest.approx(1.15 / 0.9, rel=0.1)
    # Its pitch is lower: fewer zero crossings per second of voiced speech.
    def crossings(x: np.ndarray) -> float:
        x = x[np.abs(x) > 0.02]
        return float(np.mean(np.abs(np.diff(np.sign(x))) > 0))
    assert crossings(a.samples) < crossings(b.samples)
    again = synthesize(text, slow_low, cache_dir=str(tmp_path), use_cache=False)
    assert not again.cached and np.array_equal(again.samples, a.samples)
    assert dsp.resample(a.samples, 22_050, 8000).size > 0


@needs_piper
def test_piper_is_the_default_caller_voice_when_installed() -> None:
    assert resolve_caller_voice(None) == ("piper", None)
    assert resolve_caller_voice("espeak") == ("espeak", None)


def test_without_piper_espeak_is_the_fallback_with_a_notice(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from simulator.audio import reference_voice

    monkeypatch.setattr(reference_voice, "reference_voice_available",
                        lambda: (False, "piper-tts is not installed"))
    engine, notice = resolve_caller_voice(None)
    assert engine == "espeak" and notice and "piper-tts is not installed" in notice
    with pytest.raises(InputError, match="--caller-voice piper: piper-tts is not installed"):
        resolve_caller_voice("piper")
    with pytest.raises(InputError, match="--caller-voice"):
        resolve_caller_voice("festival")
