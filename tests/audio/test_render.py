"""render_calls: one 8 kHz WAV per caller turn plus a manifest, deterministic per seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from simulator.audio import tts
from simulator.audio.chain import AudioParams
from simulator.audio.render import render_calls, turn_clean_audio
from simulator.audio.tts import Voice
from simulator.callscript import CallScript, Turn

PARAMS = AudioParams(snr_db=(10.0, 15.0), noise_beds=("babble",), packet_loss=0.05)


def fake_synth(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    """0.25 s of a voice-dependent tone per word, at 16 kHz (exercises resampling)."""
    sr = 16_000
    n = int(0.25 * sr) * len(text.split())
    t = np.arange(n) / sr
    return (0.2 * np.sin(2 * np.pi * (100 + voice.pitch * 3) * t)).astype(np.float32), sr


def make_call(call_id: str = "c-1") -> CallScript:
    return CallScript.model_validate(
        {
            "call_id": call_id,
            "pack": "clinic",
            "intent": "book",
            "seed": 1,
            "persona": {"name": "Ann Lee"},
            "record_exists": True,
            "slots": {},
            "turns": [
                {"index": 0, "text": "Hi I need an appointment", "pause_before_s": 0.5},
                {
                    "index": 1,
                    "text": "on the sixteenth please",
                    "events": [{"type": "hesitation", "duration_s": 1.2, "at_word": 2}],
                },
                {"index": 2, "text": "", "dtmf": "1#"},
            ],
            "expected_tool_calls": [],
            "expected_outcome": "completed",
        }
    )


def test_writes_one_8khz_pcm16_wav_per_turn_and_a_manifest(tmp_path: Path) -> None:
    manifest = render_calls([make_call()], PARAMS, tmp_path, seed=7, synth=fake_synth)
    data = json.loads(manifest.read_text())
    assert [e["turn_index"] for e in data["turns"]] == [0, 1, 2]
    for entry in data["turns"]:
        info = sf.info(str(tmp_path / entry["file"]))
        assert info.samplerate == 8000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - entry["duration_s"]) < 0.001
        assert "noise" in entry["applied"] and "packet_loss" in entry["applied"]
    first = data["turns"][0]
    assert abs(first["duration_s"] - (0.5 + 5 * 0.25)) < 0.01
    kinds = [seg["kind"] for seg in data["turns"][1]["timeline"]]
    assert kinds == ["speech", "hesitation", "speech"]
    assert data["turns"][2]["timeline"][0]["kind"] == "dtmf"


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    calls = [make_call("c-1"), make_call("c-2")]
    a = render_calls(calls, PARAMS, tmp_path / "a", seed=3, synth=fake_synth).parent
    b = render_calls(calls, PARAMS, tmp_path / "b", seed=3, synth=fake_synth).parent
    c = render_calls(calls, PARAMS, tmp_path / "c", seed=4, synth=fake_synth).parent
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert len(names) == 7
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "c-1_t000.wav").read_bytes() != (c / "c-1_t000.wav").read_bytes()


def test_hesitation_is_placed_before_the_given_word() -> None:
    turn = Turn(
        index=0,
        text="one two three four",
        events=[{"type": "hesitation", "duration_s": 0.8, "at_word": 1}],
        pause_before_s=0.2,
    )
    audio, timeline = turn_clean_audio(turn, Voice(), fake_synth, sr=16_000)
    assert [s["kind"] for s in timeline] == ["pause", "speech", "hesitation", "speech"]
    assert timeline[1]["words"] == [0, 1] and timeline[3]["words"] == [1, 4]
    assert timeline[2]["duration_s"] == 0.8
    assert len(audio) == int(16_000 * (0.2 + 0.25 + 0.8 + 0.75))


@pytest.mark.skipif(not tts.tts_available()[0], reason=f"TTS: {tts.tts_available()[1]}")
def test_real_tts_render_is_deterministic(tmp_path: Path) -> None:
    call = make_call()
    a = render_calls([call], PARAMS, tmp_path / "a", seed=1, cache_dir=tmp_path / "cache")
    b = render_calls([call], PARAMS, tmp_path / "b", seed=1, cache_dir=tmp_path / "cache")
    assert a.read_bytes() == b.read_bytes()
    assert (a.parent / "c-1_t000.wav").read_bytes() == (b.parent / "c-1_t000.wav").read_bytes()
    entry = json.loads(a.read_text())["turns"][0]
    assert entry["duration_s"] > 1.0  # 0.5 s pause + five spoken words


def test_the_clean_profile_renders_wideband_wavs(tmp_path: Path) -> None:
    from simulator.degradation import get_profile

    clean = AudioParams.from_dict(get_profile("clean").audio)
    manifest = render_calls([make_call()], clean, tmp_path, seed=7, synth=fake_synth)
    for entry in json.loads(manifest.read_text())["turns"]:
        info = sf.info(str(tmp_path / entry["file"]))
        assert (info.samplerate, info.subtype) == (16_000, "PCM_16")
        assert entry["sample_rate"] == 16_000
        assert abs(info.duration - entry["duration_s"]) < 0.001


@pytest.mark.skipif(not tts.tts_available()[0], reason="needs espeak-ng")
def test_a_wideband_turn_reaches_the_transports_at_8_khz(tmp_path: Path) -> None:
    from simulator.audio.caller_audio import render_caller_turn
    from simulator.degradation import get_profile

    args = ("Hello, I need to book a haircut.", [], Voice(), None, 3, "c-1", 0, "answer")
    wide = render_caller_turn(*args[:3], AudioParams.from_dict(get_profile("clean").audio),
                              *args[4:], cache_dir=tmp_path)
    phone = render_caller_turn(*args[:3], AudioParams(codec="pcm16", bandpass=False),
                               *args[4:], cache_dir=tmp_path)
    assert (wide.sample_rate, phone.sample_rate) == (16_000, 8_000)
    n_wide, n_phone = len(wide.payload), len(phone.payload)
    assert abs(n_wide - 2 * n_phone) <= 4  # twice the samples, 16-bit each
    w, p = wide.samples(), phone.samples()
    assert abs(len(w) - len(p)) <= 1  # both at 8 kHz, the same duration
    # the same speech: what a phone line would have carried of the wideband turn
    n = min(len(w), len(p))
    assert np.corrcoef(w[:n], p[:n])[0, 1] > 0.99
