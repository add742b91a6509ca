"""Signal-processing building blocks of the telephone line, on float32 mono arrays.

Pure functions: band-pass, resampling, G.711 mu-law/A-law (bit-exact with the ITU reference
``g711.c`` and Python's ``audioop``), clipping, synthetic reverb, Gilbert-Elliott packet
loss with concealment, DTMF tones, active-speech measurement, and the framing helpers the
transports use (20 ms mu-law frames, pcm16 24 kHz for Realtime).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np
from scipy import signal

TELEPHONE_RATE = 8_000
REALTIME_RATE = 24_000
FRAME_MS = 20
MULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

# --- conversions ----------------------------------------------------------------------------


def to_int16(x: np.ndarray) -> np.ndarray:
    """float [-1, 1) -> int16 (rounded, saturated)."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int16
    )


def from_int16(x: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1)."""
    return (np.asarray(x, dtype=np.float32) / np.float32(32768.0)).astype(np.float32)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``, its anti-alias filter)."""
    if sr_from == sr_to or len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    g = gcd(sr_from, sr_to)
    return signal.resample_poly(x, sr_to // g, sr_from // g).astype(np.float32)


# --- filters --------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def telephone_sos(sr: int, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """4th-order Butterworth band-pass (second-order sections) for the telephone band."""
    high = min(high_hz, 0.45 * sr)
    return np.asarray(signal.butter(4, [low_hz, high], btype="bandpass", fs=sr, output="sos"))


def bandpass_telephone(x: np.ndarray, sr: int) -> np.ndarray:
    """Causal 300-3400 Hz band-pass, as a line card would apply it."""
    if len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    return signal.sosfilt(telephone_sos(sr), x).astype(np.float32)


def frame_power_db(x: np.ndarray, sr: int, frame_ms: int = FRAME_MS) -> np.ndarray:
    """Mean power per frame in dB (full-scale sine = -3 dB); last partial frame dropped."""
    n = max(1, int(sr * frame_ms / 1000))
    k = len(x) // n
    if k == 0:
        return np.zeros(0)
    frames = np.asarray(x[: k * n], dtype=np.float64).reshape(k, n)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)


def active_mask(x: np.ndarray, sr: int, frame_ms: int = FRAME_MS) -> np.ndarray:
    """Per-frame mask of active speech: frames within 35 dB of the loud (95th pct) frames
    and above -70 dBFS. A simple stand-in for ITU-T P.56 active speech level."""
    p = frame_power_db(x, sr, frame_ms)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    ref = np.percentile(p, 95)
    return np.asarray((p > ref - 35.0) & (p > -70.0))


def active_power(x: np.ndarray, sr: int, mask: np.ndarray, frame_ms: int = FRAME_MS) -> float:
    """Mean power of ``x`` over the frames where ``mask`` is true (0.0 if none)."""
    n = max(1, int(sr * frame_ms / 1000))
    k = min(len(mask), len(x) // n)
    if k == 0 or not mask[:k].any():
        return 0.0
    frames = np.asarray(x[: k * n], dtype=np.float64).reshape(k, n)[mask[:k]]
    return float(np.mean(frames * frames))


# --- distortions ----------------------------------------------------------------------------


def clip(x: np.ndarray, fraction: float) -> tuple[np.ndarray, float]:
    """Hard-clip so that about ``fraction`` of the non-silent samples saturate, as an
    over-driven input would, then scale the clip level to 0.99 of full scale.
    Returns (clipped, fraction of all samples actually at the clip level)."""
    if fraction <= 0 or len(x) == 0:
        return np.asarray(x, dtype=np.float32), 0.0
    a = np.abs(x)
    loud = a[a > 1e-4]
    if len(loud) == 0:
        return np.asarray(x, dtype=np.float32), 0.0
    level = float(np.quantile(loud, 1.0 - min(fraction, 0.99)))
    if level <= 0:
        return np.asarray(x, dtype=np.float32), 0.0
    y = np.clip(x, -level, level) * (0.99 / level)
    achieved = float(np.mean(a >= level))
    return y.astype(np.float32), achieved


def reverb(x: np.ndarray, sr: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room: a direct path plus exponentially decaying noise whose
    energy falls 60 dB in ``rt60_s``. Output energy is kept equal to the input's."""
    if rt60_s <= 0 or len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    n = int(sr * rt60_s * 1.2) + 1
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.907755 * t / rt60_s)  # ln(1000): -60 dB energy
    ir[: int(0.002 * sr)] *= 0.0  # a short gap between the direct path and the tail
    ir *= 0.3 / (np.sqrt(np.sum(ir * ir)) + 1e-12)
    ir[0] = 1.0
    y = signal.fftconvolve(x, ir)[: len(x)]
    ex, ey = float(np.sum(np.square(x, dtype=np.float64))), float(np.sum(y * y))
    if ey > 0:
        y *= np.sqrt(ex / ey)
    return y.astype(np.float32)


# --- G.711 ----------------------------------------------------------------------------------

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def lin2ulaw(pcm16: np.ndarray) -> np.ndarray:
    """int16 -> G.711 mu-law codes (uint8), as ``audioop.lin2ulaw(..., 2)``."""
    v = np.asarray(pcm16, dtype=np.int32) >> 2  # 14-bit
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, v, side="left")
    uval = (seg << 4) | ((v >> (seg + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def ulaw2lin(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law codes -> int16, as ``audioop.ulaw2lin(..., 2)``."""
    u = ~np.asarray(codes, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def lin2alaw(pcm16: np.ndarray) -> np.ndarray:
    """int16 -> G.711 A-law codes (uint8), as ``audioop.lin2alaw(..., 2)``."""
    v = np.asarray(pcm16, dtype=np.int32) >> 3  # 13-bit
    neg = v < 0
    mask = np.where(neg, 0x55, 0xD5)
    v = np.where(neg, -v - 1, v)
    seg = np.searchsorted(_SEG_AEND, v, side="left")
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((v >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8)


def alaw2lin(codes: np.ndarray) -> np.ndarray:
    """G.711 A-law codes -> int16, as ``audioop.alaw2lin(..., 2)``."""
    a = np.asarray(codes, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


CODECS = ("mulaw", "alaw")


# The code of every int16 value, computed once: encoding a turn is then one table lookup
# (callers' turns are encoded on the event loop when they are queued).
_INT16 = np.arange(-32768, 32768, dtype=np.int32)
_ENCODED: dict[str, np.ndarray] = {}


def _encode_table(codec: str) -> np.ndarray:
    table = _ENCODED.get(codec)
    if table is None:
        table = _ENCODED[codec] = lin2ulaw(_INT16) if codec == "mulaw" else lin2alaw(_INT16)
    return table


def _codes(pcm: np.ndarray, codec: str) -> bytes:
    """Whole int16 values (any integer or integral float dtype) -> G.711 bytes."""
    idx = pcm.astype(np.intp)
    idx += 32768
    return _encode_table(codec).take(idx).tobytes()


def encode(x: np.ndarray, codec: str) -> bytes:
    """float32 -> G.711 bytes (``codec`` is ``mulaw`` or ``alaw``); the same codes as
    :func:`lin2ulaw` / :func:`lin2alaw` of :func:`to_int16`."""
    return _codes(to_int16(x), codec)


# Every one of the 256 codes decoded once: a frame is then one table lookup (the agent side
# and the listener decode 50 frames a second per call).
_DECODED = {
    "mulaw": from_int16(ulaw2lin(np.arange(256, dtype=np.uint8))),
    "alaw": from_int16(alaw2lin(np.arange(256, dtype=np.uint8))),
}


def decode(data: bytes, codec: str) -> np.ndarray:
    """G.711 bytes -> float32 (the same values as ``from_int16(ulaw2lin(...))``)."""
    return _DECODED[codec][np.frombuffer(data, dtype=np.uint8)]


# --- packet loss ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GilbertElliott:
    """Two-state loss model: every frame in Bad is lost, none in Good. ``p_gb`` and
    ``p_bg`` are per-frame transition probabilities."""

    p_gb: float
    p_bg: float

    @classmethod
    def from_rate(cls, loss_rate: float, mean_burst_frames: float) -> GilbertElliott:
        """The model whose stationary loss rate is ``loss_rate`` and whose loss bursts last
        ``mean_burst_frames`` on average (geometric)."""
        if not 0 <= loss_rate < 1:
            raise ValueError(f"loss rate {loss_rate} not in [0, 1)")
        p_bg = 1.0 / max(1.0, mean_burst_frames)
        p_gb = loss_rate * p_bg / (1.0 - loss_rate)
        return cls(min(p_gb, 1.0), p_bg)

    @property
    def loss_rate(self) -> float:
        s = self.p_gb + self.p_bg
        return self.p_gb / s if s > 0 else 0.0

    def lost_mask(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Boolean mask of lost frames; the first frame's state is drawn from the
        stationary distribution so short calls are unbiased."""
        lost = np.zeros(n_frames, dtype=bool)
        if n_frames == 0 or self.p_gb == 0:
            return lost
        u = rng.random(n_frames)
        bad = bool(u[0] < self.loss_rate)
        # A run-length walk is faster than a per-frame Python loop for rare losses.
        i = 0
        while i < n_frames:
            p_leave = self.p_bg if bad else self.p_gb
            run = int(rng.geometric(p_leave)) if p_leave > 0 else n_frames
            if bad:
                lost[i : i + run] = True
            i += run
            bad = not bad
        return lost


def conceal(
    x: np.ndarray, sr: int, lost: np.ndarray, frame_ms: int = FRAME_MS, attenuation: float = 0.5
) -> np.ndarray:
    """Packet-loss concealment: the first lost frame after a received one repeats that frame
    scaled by ``attenuation``; further consecutive lost frames are silence."""
    n = int(sr * frame_ms / 1000)
    y = np.array(x, dtype=np.float32, copy=True)
    prev_ok: np.ndarray | None = None
    prev_lost = False
    for i in range(len(lost)):
        a, b = i * n, min((i + 1) * n, len(y))
        if a >= len(y):
            break
        if lost[i]:
            if not prev_lost and prev_ok is not None:
                y[a:b] = prev_ok[: b - a] * attenuation
            else:
                y[a:b] = 0.0
            prev_lost = True
        else:
            prev_ok = np.array(x[a:b], dtype=np.float32, copy=True)
            prev_lost = False
    return y


# --- DTMF -----------------------------------------------------------------------------------

DTMF_LOW = (697, 770, 852, 941)
DTMF_HIGH = (1209, 1336, 1477, 1633)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_FREQS: dict[str, tuple[int, int]] = {
    key: (DTMF_LOW[r], DTMF_HIGH[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}


def dtmf_tone(digit: str, sr: int, duration_s: float = 0.1, level_dbfs: float = -9.0) -> np.ndarray:
    """One DTMF digit: the sum of its row and column sines, each at ``level_dbfs`` peak,
    with 5 ms raised-cosine edges. Raises ValueError for a non-DTMF key or < 40 ms."""
    key = digit.upper()
    if key not in DTMF_FREQS:
        raise ValueError(f"not a DTMF key: {digit!r}")
    if duration_s < 0.04:
        raise ValueError(f"DTMF tone of {duration_s * 1000:.0f} ms is under 40 ms")
    lo, hi = DTMF_FREQS[key]
    n = int(round(sr * duration_s))
    t = np.arange(n) / sr
    amp = 10 ** (level_dbfs / 20)
    y = amp * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t))
    ramp = min(int(0.005 * sr), n // 2)
    if ramp > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        y[:ramp] *= w
        y[n - ramp :] *= w[::-1]
    return y.astype(np.float32)


def dtmf_sequence(
    digits: str, sr: int, tone_s: float = 0.1, gap_s: float = 0.06
) -> np.ndarray:
    """Digits as tones separated by ``gap_s`` of silence (spaces and dashes are skipped)."""
    parts: list[np.ndarray] = []
    gap = silence(sr, gap_s)
    for d in digits:
        if d in " -":
            continue
        if parts:
            parts.append(gap)
        parts.append(dtmf_tone(d, sr, tone_s))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def silence(sr: int, seconds: float) -> np.ndarray:
    return np.zeros(max(0, int(round(sr * seconds))), dtype=np.float32)


# --- framing for transports -----------------------------------------------------------------


def frame_bytes(data: bytes, frame_len: int = 160, pad: int = MULAW_SILENCE) -> list[bytes]:
    """Split codec bytes into fixed frames, padding the last with ``pad`` (codec silence)."""
    frames = [data[i : i + frame_len] for i in range(0, len(data), frame_len)]
    if frames and len(frames[-1]) < frame_len:
        frames[-1] = frames[-1] + bytes([pad]) * (frame_len - len(frames[-1]))
    return frames


def frames_mulaw_20ms(pcm8k: np.ndarray) -> list[bytes]:
    """8 kHz float32 -> 20 ms mu-law frames of 160 bytes (last padded with 0xFF)."""
    return frame_bytes(encode(pcm8k, "mulaw"), 160, MULAW_SILENCE)


def to_pcm16_bytes(x: np.ndarray, sr: int, sr_out: int = REALTIME_RATE) -> bytes:
    """float32 at ``sr`` -> little-endian pcm16 at ``sr_out`` (24 kHz for Realtime)."""
    return to_int16(resample(x, sr, sr_out)).astype("<i2").tobytes()


def from_pcm16_bytes(data: bytes, sr: int = REALTIME_RATE, sr_out: int | None = None) -> np.ndarray:
    """Little-endian pcm16 bytes at ``sr`` -> float32 (resampled to ``sr_out`` if given)."""
    x = from_int16(np.frombuffer(data, dtype="<i2"))
    return resample(x, sr, sr_out) if sr_out else x


def mulaw_to_pcm16_24k(data: bytes) -> bytes:
    """8 kHz mu-law bytes -> 24 kHz pcm16 LE bytes (Twilio audio into a Realtime agent)."""
    return to_pcm16_bytes(decode(data, "mulaw"), TELEPHONE_RATE, REALTIME_RATE)


def pcm16_24k_to_mulaw(data: bytes) -> bytes:
    """24 kHz pcm16 LE bytes -> 8 kHz mu-law bytes (Realtime agent audio onto a phone line)."""
    return encode(from_pcm16_bytes(data, REALTIME_RATE, TELEPHONE_RATE), "mulaw")


# The anti-alias low-pass that resample_poly designs for 24 -> 8 kHz (61 taps, Kaiser 5.0).
_DOWN = REALTIME_RATE // TELEPHONE_RATE
_H_24K_TO_8K = signal.firwin(20 * _DOWN + 1, 1.0 / _DOWN, window=("kaiser", 5.0))
_H_24K_TO_8K_REV = np.ascontiguousarray(_H_24K_TO_8K[::-1])  # convolution = dot with h reversed
_TAPS = len(_H_24K_TO_8K)
_NO_SAMPLES = np.zeros(0)


class MulawFrom24k:
    """A Realtime agent's 24 kHz pcm16 stream onto the 8 kHz mu-law line, chunk by chunk.

    The same low-pass as :func:`resample`, run as a stream: the filter's history carries
    over from one chunk to the next, so a reply cut into 20 ms deltas is filtered as one
    signal (no edge at every chunk). Only the outputs that land on the 8 kHz grid are
    computed: a strided view of the chunk holds one filter window per output sample, and
    one matrix-vector product filters them all (a third of a full convolution's work, and
    no filter design: this runs for every agent delta of every call). The output lags the
    input by the filter's half length, 1.25 ms."""

    __slots__ = ("_hist", "_phase")

    def __init__(self) -> None:
        self._hist = np.zeros(len(_H_24K_TO_8K) - 1)
        self._phase = 0  # index in the next chunk of the first sample on the 8 kHz grid

    def samples(self, data: bytes) -> np.ndarray:
        """The next 8 kHz samples (float64, int16 scale, not yet rounded) for ``data``."""
        v = np.frombuffer(data, dtype="<i2", count=len(data) // 2)
        n = len(v)
        if not n:
            return _NO_SAMPLES
        buf = np.concatenate((self._hist, v))
        p = self._phase
        self._phase = (p - n) % _DOWN
        self._hist = buf[n:]
        n_out = (len(buf) - _TAPS - p) // _DOWN + 1
        if n_out <= 0:
            return _NO_SAMPLES
        # row m is buf[p + 3m : p + 3m + taps]: the window of output sample m
        windows = np.ndarray((n_out, _TAPS), dtype=np.float64, buffer=buf,
                             offset=p * buf.itemsize,
                             strides=(_DOWN * buf.itemsize, buf.itemsize))
        return np.dot(windows, _H_24K_TO_8K_REV)

    @staticmethod
    def mulaw(y: np.ndarray) -> bytes:
        """:meth:`samples` output as mu-law bytes (rounded and clipped to int16 first)."""
        if not len(y):
            return b""
        y = np.rint(y)
        np.minimum(y, 32767, out=y)
        np.maximum(y, -32768, out=y)
        return _codes(y, "mulaw")

    def __call__(self, data: bytes) -> bytes:
        return self.mulaw(self.samples(data))
