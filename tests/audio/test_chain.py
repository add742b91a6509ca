"""The degradation chain end to end, and AudioParams from a profile's audio section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simulator.audio import dsp
from simulator.audio.chain import AudioParams, degrade_audio
from simulator.errors import ProfileError

SR = 22_050
PROFILES = Path(__file__).resolve().parents[2] / "noise_profiles"

NOISY = AudioParams(
    snr_db=(5.0, 10.0),
    noise_beds=("street", "babble"),
    bursts_per_min=(2.0, 4.0),
    clipping_fraction=(0.05, 0.1),
    rt60_s=(0.3, 0.8),
    packet_loss=0.05,
    burst_ms=100.0,
)


def test_output_is_8khz_with_matching_mulaw_payload(speech: np.ndarray) -> None:
    out = degrade_audio(speech, SR, NOISY, np.random.default_rng(0))
    assert out.sample_rate == 8000
    assert out.samples.dtype == np.float32
    assert abs(out.duration_s - len(speech) / SR) < 0.01
    assert len(out.payload) == len(out.samples)
    np.testing.assert_array_equal(dsp.decode(out.payload, "mulaw"), out.samples)
    applied = out.applied
    assert applied["noise"]["bed"] in ("street", "babble")
    assert 5.0 - 0.5 <= applied["noise"]["snr_db"] <= 10.0 + 0.5
    assert 0.3 <= applied["rt60_s"] <= 0.8
    assert applied["packet_loss"]["frames_lost"] == len(applied["packet_loss"]["lost_frames"])


def test_same_seed_same_bytes_other_seed_other_bytes(speech: np.ndarray) -> None:
    a = degrade_audio(speech, SR, NOISY, np.random.default_rng(42))
    b = degrade_audio(speech, SR, NOISY, np.random.default_rng(42))
    c = degrade_audio(speech, SR, NOISY, np.random.default_rng(43))
    assert a.payload == b.payload
    assert a.applied == b.applied
    assert a.payload != c.payload


def test_alaw_and_pcm16_codecs(speech: np.ndarray) -> None:
    alaw = degrade_audio(speech, SR, AudioParams(codec="alaw"), np.random.default_rng(0))
    np.testing.assert_array_equal(dsp.decode(alaw.payload, "alaw"), alaw.samples)
    pcm = degrade_audio(speech, SR, AudioParams(codec="pcm16"), np.random.default_rng(0))
    assert len(pcm.payload) == 2 * len(pcm.samples)


def test_lost_frames_are_concealed_in_the_output(speech: np.ndarray) -> None:
    params = AudioParams(packet_loss=0.3, burst_ms=60.0)
    out = degrade_audio(speech, SR, params, np.random.default_rng(1))
    lost = out.applied["packet_loss"]["lost_frames"]
    assert lost
    # A frame lost after another lost frame is silence (mu-law 0xFF).
    later = [i for i in lost if i - 1 in lost]
    assert later
    for i in later:
        assert out.payload[i * 160 : (i + 1) * 160] == b"\xff" * 160


def test_clipping_reaches_the_asked_fraction(speech: np.ndarray) -> None:
    params = AudioParams(clipping_fraction=(0.1, 0.1), bandpass=False)
    out = degrade_audio(speech, SR, params, np.random.default_rng(0))
    assert out.applied["clipping"]["target_fraction"] == 0.1
    # 10% of the non-silent samples saturate; speech is ~60% non-silent here.
    assert 0.03 < out.applied["clipping"]["fraction"] < 0.1


def test_dtmf_survives_the_line() -> None:
    tone = dsp.dtmf_sequence("5", SR, tone_s=0.1)
    out = degrade_audio(tone, SR, AudioParams(), np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(out.samples, n=8000))
    top = sorted(int(f) for f in np.argsort(spec)[-2:])
    assert abs(top[0] - 770) <= 3 and abs(top[1] - 1336) <= 3


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_audio_section_builds_params(path: Path) -> None:
    audio = (yaml.safe_load(path.read_text()) or {}).get("audio")
    params = AudioParams.from_dict(audio, noise_dir=path.parent)
    assert params.codec in ("mulaw", "alaw", "pcm16")


def test_from_dict_reads_the_profile_shape() -> None:
    p = AudioParams.from_dict(
        {
            "snr_db": [12, 18],
            "noise_beds": ["babble", "office"],
            "bursts": {"per_min": [1, 2], "level_db": [-5, 10]},
            "clipping_fraction": [0.0, 0.0],
            "packet_loss": {"rate": 0.01, "mean_burst_ms": 100},
            "codec": "mulaw",
            "band_pass": True,
        }
    )
    assert p.snr_db == (12.0, 18.0)
    assert p.noise_beds == ("babble", "office")
    assert p.bursts_per_min == (1.0, 2.0)
    assert p.packet_loss == 0.01 and p.burst_ms == 100.0


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ({"snr": [1, 2]}, "unknown field 'snr'"),
        ({"snr_db": [20, 10]}, "lo > hi"),
        ({"codec": "opus"}, "audio.codec"),
        ({"packet_loss": {"rate": 0.1, "burst": 3}}, "audio.packet_loss"),
        ({"sample_rate": 16000}, "audio.codec: mulaw is an 8 kHz codec"),
        ({"codec": "pcm16", "sample_rate": 44100}, "audio.sample_rate: expected 8000 or 16000"),
    ],
    ids=["unknown", "reversed", "codec", "loss-field", "wideband-mulaw", "rate"],
)
def test_from_dict_errors_name_the_field(audio: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        AudioParams.from_dict(audio)


def _band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


def test_the_clean_profile_is_a_wideband_line_that_keeps_4_to_8_khz(speech: np.ndarray) -> None:
    from simulator.degradation import get_profile

    t = np.arange(len(speech)) / SR  # voiced speech plus a 5 kHz component where it is voiced
    speech = (speech + 0.02 * np.sin(2 * np.pi * 5000 * t) * (speech != 0)).astype(np.float32)
    wide = degrade_audio(speech, SR, AudioParams.from_dict(get_profile("clean").audio),
                         np.random.default_rng(0))
    narrow = degrade_audio(speech, SR, AudioParams(codec="pcm16", bandpass=False),
                           np.random.default_rng(0))
    assert (wide.sample_rate, wide.codec) == (16_000, "pcm16")
    assert len(wide.payload) == 2 * len(wide.samples)  # 16-bit linear PCM
    assert abs(wide.duration_s - len(speech) / SR) < 0.01
    assert wide.applied["telephony"]["sr"] == 16_000
    # the speech's energy between 4 and 7.5 kHz is on the wideband line, and a phone line
    # (8 kHz) has no such band at all
    src = _band_energy(speech, SR, 4000, 7500)
    assert src > 1e-3
    assert _band_energy(wide.samples, 16_000, 4000, 7500) > 0.5 * src
    assert narrow.sample_rate == 8000


def test_packet_loss_on_a_wideband_line_drops_20_ms_frames(speech: np.ndarray) -> None:
    params = AudioParams(codec="pcm16", bandpass=False, sample_rate=16_000, packet_loss=0.3,
                         burst_ms=20.0)
    out = degrade_audio(speech, SR, params, np.random.default_rng(2))
    loss = out.applied["packet_loss"]
    assert loss["frames"] == -(-len(out.samples) // 320)  # 20 ms at 16 kHz
    assert loss["frames_lost"] > 0
    for i in loss["lost_frames"][1:]:
        if i - 1 in loss["lost_frames"]:  # the second of two lost frames is silence
            assert not np.any(out.samples[i * 320:(i + 1) * 320])
            break
