"""Speech rendering through pyttsx3 + the espeakng-loader wheel (no system espeak)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.audio import tts

AVAILABLE, WHY = tts.tts_available()
needs_tts = pytest.mark.skipif(not AVAILABLE, reason=f"TTS cannot run here: {WHY}")

LONG = (
    "Hi, this is Margaret Ellison calling about my appointment. I was booked for the "
    "fifteenth at ten in the morning but something came up at work, so I need to move it "
    "to the sixteenth, or any afternoon later that week if that is easier for you. My date "
    "of birth is March third nineteen seventy two and my phone number ends in four five "
    "six seven. Could you also confirm whether the doctor has my latest test results?"
)


@needs_tts
def test_back_to_back_long_and_short_utterances_are_all_complete(tmp_path: Path) -> None:
    texts = [LONG, "Yes.", LONG + " " + LONG, "No, thanks.", "Tuesday works.", LONG]
    voice = tts.Voice("en-us", rate=175, pitch=50)
    durations = []
    for text in texts:
        r = tts.synthesize(text, voice, cache_dir=tmp_path, use_cache=False)
        assert r.sample_rate == tts.TTS_SAMPLE_RATE
        assert r.samples.dtype == np.float32
        durations.append(len(r.samples) / r.sample_rate)
    for text, secs in zip(texts, durations, strict=True):
        words = len(text.split())
        # 175 wpm is ~2.9 words/s; allow 1.5..5 words/s plus a fixed end pause.
        assert words / 5.0 <= secs <= words / 1.5 + 1.0, (words, secs)
    assert durations[2] > 1.8 * durations[0]  # the doubled text was not truncated


@needs_tts
def test_the_same_text_and_voice_give_the_same_bytes_whatever_was_rendered_before(
    tmp_path: Path,
) -> None:
    """One long-lived espeak engine drifts (the same utterance came out 83,381 / 83,428 /
    83,384 samples in a row), and pyttsx3's loop applied a rate to the wrong utterance."""
    a = tts.Voice("en-us+m1", 150, 30)
    b = tts.Voice("en-gb-scotland+f3", 190, 70)
    text = "I would like to book a cleaning on Tuesday at ten please."
    renders = [tts.synthesize(text, v, cache_dir=tmp_path, use_cache=False).samples
               for v in (a, a, b, a, b, b, a)]
    for i in (1, 3, 6):
        np.testing.assert_array_equal(renders[i], renders[0])
    for i in (4, 5):
        np.testing.assert_array_equal(renders[i], renders[2])
    assert len(renders[0]) > 1.2 * len(renders[2])  # rate 150 is slower than 190


@needs_tts
def test_a_render_host_that_died_is_started_again(tmp_path: Path) -> None:
    first = tts.synthesize("Tuesday works.", tts.Voice("en-us"), cache_dir=tmp_path,
                           use_cache=False)
    host = tts._host.proc
    assert host is not None
    host.kill()
    host.wait()
    again = tts.synthesize("Tuesday works.", tts.Voice("en-us"), cache_dir=tmp_path,
                           use_cache=False)
    assert tts._host.proc is not None and tts._host.proc.pid != host.pid
    np.testing.assert_array_equal(first.samples, again.samples)


@needs_tts
def test_an_unknown_voice_or_a_render_past_its_timeout_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(tts.TTSUnavailableError, match="no voice 'xx-nope'") as err:
        tts.synthesize("Hello there.", tts.Voice("xx-nope"), cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(tts.TTSUnavailableError, match="no audio after") as err:
        tts.synthesize("Hello there.", tts.Voice("en-us"), cache_dir=tmp_path,
                       timeout_s=1e-6)
    assert "\n" not in str(err.value) and "Hello there" in str(err.value)
    assert not list(tmp_path.rglob("*.wav"))  # nothing half-written left in the cache
    ok = tts.synthesize("Hello there.", tts.Voice("en-us"), cache_dir=tmp_path)
    assert len(ok.samples) > 0


@needs_tts
def test_rendered_audio_is_cached_by_content(tmp_path: Path) -> None:
    voice = tts.voice_for("persona-a")
    first = tts.synthesize("Can I book a cleaning?", voice, cache_dir=tmp_path)
    again = tts.synthesize("Can I book a cleaning?", voice, cache_dir=tmp_path)
    assert not first.cached and again.cached
    np.testing.assert_array_equal(first.samples, again.samples)
    other = tts.synthesize("Can I book a cleaning?", tts.voice_for("persona-b"), cache_dir=tmp_path)
    assert other.cache_key != first.cache_key
    assert len(list(tmp_path.rglob("*.wav"))) == 2


@needs_tts
def test_voices_sound_different(tmp_path: Path) -> None:
    a = tts.synthesize("Hello there.", tts.Voice("en-us+m1", 150, 30), cache_dir=tmp_path)
    b = tts.synthesize("Hello there.", tts.Voice("en-us+f3", 190, 70), cache_dir=tmp_path)
    assert len(a.samples) != len(b.samples)


def test_voice_is_deterministic_per_persona_and_varied_across_personas() -> None:
    assert tts.voice_for("pack/alice", 1) == tts.voice_for("pack/alice", 1)
    voices = {tts.voice_for(f"pack/p{i}", 1) for i in range(20)}
    assert len(voices) == 20
    assert len({v.espeak_voice for v in voices}) >= 8


def test_persona_voice_dict_overrides_the_derived_voice() -> None:
    v = tts.voice_from_persona({"espeak_voice": "en-gb", "rate": 120}, "pack/bob", 0)
    assert v.espeak_voice == "en-gb" and v.rate == 120
    assert v.pitch == tts.voice_for("pack/bob", 0).pitch


def test_a_render_child_killed_by_a_signal_is_rendered_once_more_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's retry policy, at its seam (a real espeak-ng crash cannot be provoked)."""
    import signal

    from simulator.audio import espeak_host

    outcomes = [(signal.SIGSEGV, ""), (None, "")]
    monkeypatch.setattr(espeak_host, "_render_once", lambda lib, sp, req: outcomes.pop(0))
    req = {"text": "Tuesday works.", "path": str(tmp_path / "a.wav")}
    assert espeak_host.render(None, None, req) == {"ok": True}

    outcomes[:] = [(signal.SIGSEGV, ""), (signal.SIGSEGV, "")]
    out = espeak_host.render(None, None, req)
    assert out == {"ok": False, "error": "TTS: espeak-ng crashed (SIGSEGV) 2 times rendering "
                                         "'Tuesday works.'"}
