"""Telephone-line primitives: G.711 bit-exactness, band-pass response, packet loss, DTMF."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import signal

from simulator.audio import dsp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib reference G.711 in 3.11 (removed in 3.13)

ALL_PCM16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def test_mulaw_encode_matches_audioop_for_every_16bit_value() -> None:
    ref = audioop.lin2ulaw(ALL_PCM16.astype("<i2").tobytes(), 2)
    assert dsp.lin2ulaw(ALL_PCM16).tobytes() == ref


def test_alaw_encode_matches_audioop_for_every_16bit_value() -> None:
    ref = audioop.lin2alaw(ALL_PCM16.astype("<i2").tobytes(), 2)
    assert dsp.lin2alaw(ALL_PCM16).tobytes() == ref


def test_decoders_match_audioop_for_every_code() -> None:
    assert dsp.ulaw2lin(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(
        ALL_CODES.tobytes(), 2
    )
    assert dsp.alaw2lin(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(
        ALL_CODES.tobytes(), 2
    )


@pytest.mark.parametrize(
    ("pcm", "ulaw", "alaw"),
    [(0, 0xFF, 0xD5), (-1, 0x7E, 0x55), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A)],
    ids=["zero", "minus-one", "max", "min"],
)
def test_known_g711_code_points(pcm: int, ulaw: int, alaw: int) -> None:
    x = np.array([pcm], dtype=np.int16)
    assert int(dsp.lin2ulaw(x)[0]) == ulaw
    assert int(dsp.lin2alaw(x)[0]) == alaw


def test_known_g711_decoded_values() -> None:
    assert dsp.ulaw2lin(np.array([0xFF, 0x80, 0x00], dtype=np.uint8)).tolist() == [
        0,
        32124,
        -32124,
    ]
    assert dsp.alaw2lin(np.array([0xD5, 0x55, 0xAA, 0x2A], dtype=np.uint8)).tolist() == [
        8,
        -8,
        32256,
        -32256,
    ]


@pytest.mark.parametrize("codec", ["mulaw", "alaw"])
def test_codec_round_trip_keeps_speech_level_signal_close(codec: str) -> None:
    t = np.arange(8000) / 8000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = dsp.decode(dsp.encode(x, codec), codec)
    snr = 10 * math.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert snr > 30  # G.711 gives ~38 dB SQNR at this level


@pytest.mark.parametrize("sr", [16_000, 22_050, 44_100, 48_000])
def test_bandpass_response_is_down_20db_at_100hz_and_6khz(sr: int) -> None:
    _, h = signal.sosfreqz(dsp.telephone_sos(sr), worN=[100.0, 1000.0, 6000.0], fs=sr)
    db = 20 * np.log10(np.abs(h))
    assert db[0] <= -20.0
    assert db[2] <= -20.0
    assert abs(db[1]) < 1.0


def test_bandpass_filters_real_tones() -> None:
    sr = 22_050
    t = np.arange(sr) / sr

    def gain_db(f: float) -> float:
        x = np.sin(2 * np.pi * f * t).astype(np.float32)
        y = dsp.bandpass_telephone(x, sr)[sr // 2 :]  # skip the filter's onset
        return 10 * math.log10(np.mean(y**2) / np.mean(x[sr // 2 :] ** 2))

    assert gain_db(100) <= -20
    assert gain_db(6000) <= -20
    assert gain_db(1000) > -1


def test_gilbert_elliott_loss_rate_within_binomial_interval() -> None:
    rate, burst = 0.05, 5.0
    model = dsp.GilbertElliott.from_rate(rate, burst)
    n = 200_000
    lost = model.lost_mask(n, np.random.default_rng(7))
    # Frames are correlated (a Markov chain): inflate the binomial variance by (1+l)/(1-l),
    # l = 1 - p_gb - p_bg the chain's second eigenvalue.
    lam = 1 - model.p_gb - model.p_bg
    sigma = math.sqrt(rate * (1 - rate) / n * (1 + lam) / (1 - lam))
    assert abs(lost.mean() - rate) < 4 * sigma
    # Mean burst length (in frames) is what was asked for.
    edges = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert abs(runs.mean() - burst) < 0.5


def test_zero_loss_rate_loses_nothing() -> None:
    lost = dsp.GilbertElliott.from_rate(0.0, 5).lost_mask(1000, np.random.default_rng(0))
    assert not lost.any()


def test_concealment_repeats_last_frame_attenuated_then_silence() -> None:
    sr, n = 8000, 160
    x = np.random.default_rng(1).uniform(-0.5, 0.5, n * 5).astype(np.float32)
    lost = np.array([False, True, True, False, False])
    y = dsp.conceal(x, sr, lost)
    np.testing.assert_allclose(y[n : 2 * n], 0.5 * x[:n])
    assert not y[2 * n : 3 * n].any()
    np.testing.assert_array_equal(y[3 * n :], x[3 * n :])


def _two_peaks(x: np.ndarray, sr: int) -> tuple[float, float]:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=sr))  # 1 Hz bins
    freqs = np.fft.rfftfreq(sr, 1 / sr)
    low = freqs[(freqs < 1100)][np.argmax(spec[freqs < 1100])]
    high = freqs[freqs >= 1100][np.argmax(spec[freqs >= 1100])]
    return float(low), float(high)


@pytest.mark.parametrize("key", list("123A456B789C*0#D"))
def test_dtmf_tone_has_the_right_frequency_pair(key: str) -> None:
    sr = 8000
    tone = dsp.dtmf_tone(key, sr, 0.05)
    assert len(tone) >= 0.04 * sr
    low, high = _two_peaks(tone, sr)
    want_low, want_high = dsp.DTMF_FREQS[key]
    assert abs(low - want_low) <= 3
    assert abs(high - want_high) <= 3


def test_dtmf_rejects_short_tones_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="under 40 ms"):
        dsp.dtmf_tone("5", 8000, 0.03)
    with pytest.raises(ValueError, match="not a DTMF key"):
        dsp.dtmf_tone("x", 8000)


def test_mulaw_frames_are_160_bytes_last_padded_with_silence() -> None:
    x = np.full(400, 0.1, dtype=np.float32)  # 2.5 frames
    frames = dsp.frames_mulaw_20ms(x)
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[2][80:] == b"\xff" * 80
    assert frames[2][:80] != b"\xff" * 80


def test_pcm16_24k_helpers_round_trip() -> None:
    t = np.arange(8000) / 8000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pcm = dsp.to_pcm16_bytes(x, 8000)
    assert len(pcm) == 24000 * 2
    back = dsp.from_pcm16_bytes(pcm, 24000, 8000)
    assert np.max(np.abs(back[100:-100] - x[100:-100])) < 0.01
    mu = dsp.encode(x, "mulaw")
    assert len(dsp.mulaw_to_pcm16_24k(mu)) == 48000
    assert len(dsp.pcm16_24k_to_mulaw(pcm)) == 8000


def test_realtime_agent_audio_streamed_in_deltas_is_the_one_shot_conversion_delayed() -> None:
    # A Realtime agent's reply arrives as 20 ms deltas of 24 kHz pcm16: streamed onto the
    # 8 kHz line it is the same signal as the whole reply converted at once (no click at
    # every delta), 10 line samples (1.25 ms, the filter's half length) later.
    t = np.arange(24000 * 2) / 24000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2)
    pcm = dsp.to_int16(x.astype(np.float32)).astype("<i2").tobytes()
    whole = dsp.decode(dsp.pcm16_24k_to_mulaw(pcm), "mulaw")
    line = dsp.MulawFrom24k()
    streamed = dsp.decode(b"".join(line(pcm[i:i + 960]) for i in range(0, len(pcm), 960)),
                          "mulaw")
    assert len(streamed) == len(whole) == 16000
    np.testing.assert_array_equal(streamed[110:-90], whole[100:-100])


def test_realtime_agent_audio_above_the_line_band_does_not_alias_into_it() -> None:
    t = np.arange(24000) / 24000
    pcm = dsp.to_int16((0.3 * np.sin(2 * np.pi * 10_000 * t)).astype(np.float32))
    line = dsp.MulawFrom24k()
    raw = pcm.astype("<i2").tobytes()
    heard = dsp.decode(b"".join(line(raw[i:i + 960]) for i in range(0, len(raw), 960)),
                       "mulaw")
    # a 10 kHz tone folds to 2 kHz if decimated without the low-pass: at least 50 dB down
    assert 10 * np.log10(np.mean(heard[200:] ** 2) / np.mean((0.3 * np.sin(t)) ** 2)) < -50


def test_realtime_agent_audio_in_deltas_of_any_size_is_one_stream() -> None:
    # Agents cut their deltas where they like (any number of samples, not always a
    # multiple of the 3:1 ratio): the line hears the same 8 kHz signal whatever the cut.
    rng = np.random.default_rng(7)
    pcm = dsp.to_int16((0.2 * rng.standard_normal(24000)).astype(np.float32)).astype(
        "<i2").tobytes()
    whole = dsp.MulawFrom24k()(pcm)
    line = dsp.MulawFrom24k()
    cuts = 2 * np.sort(rng.choice(np.arange(1, len(pcm) // 2), size=200, replace=False))
    pieces = [pcm[a:b] for a, b in zip([0, *cuts], [*cuts, len(pcm)], strict=True)]
    assert b"".join(line(p) for p in pieces) == whole


def test_voicing_of_filtered_samples_agrees_with_the_mulaw_frames_they_become() -> None:
    from simulator.audio.line import VOICED_DBFS, is_voiced_int16_scale, is_voiced_mulaw

    t = np.arange(160) / 8000
    for level_db in np.arange(-70.0, -5.0, 0.25):
        if abs(level_db - VOICED_DBFS) < 0.5:
            continue  # within the codec's quantisation of the threshold: either answer
        x = np.sin(2 * np.pi * 440 * t) * np.sqrt(2) * 10 ** (level_db / 20) * 32768
        mu = dsp.encode((x / 32768).astype(np.float32), "mulaw")
        assert is_voiced_int16_scale(x) == is_voiced_mulaw(mu) == (level_db > VOICED_DBFS)
    assert not is_voiced_int16_scale(np.zeros(0))
