"""Latency histograms: a thin wrapper on HdrHistogram.

Values are kept in integer microseconds (1 us .. 1 hour, 3 significant digits), so a
percentile is exact to 0.1% of its value. Histograms encode to a base64 string for the run
store and merge losslessly, so workers and machines can each keep their own and a report
adds them up.
"""

from __future__ import annotations

import binascii
import math
import zlib
from collections.abc import Iterable, Mapping

import numpy as np
from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram

from simulator.errors import InputError

LOWEST_US = 1
HIGHEST_US = 3_600 * 1_000_000  # one hour
SIGNIFICANT_DIGITS = 3


class LatencyHistogram:
    """A latency distribution recorded in milliseconds, stored in microseconds.

    Values below 0 are recorded as 0 and values above one hour as one hour (``clamped``
    counts them); neither can be a real latency, but a report must not lose the sample.
    """

    __slots__ = ("_h", "clamped")

    def __init__(self, _h: HdrHistogram | None = None) -> None:
        self._h = _h if _h is not None else HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.clamped = 0

    def record_ms(self, value_ms: float, count: int = 1) -> None:
        """Record ``value_ms`` milliseconds (``count`` times)."""
        us = round(value_ms * 1000.0)
        if us < 0 or us > HIGHEST_US or math.isnan(value_ms):
            self.clamped += count
            us = 0 if (us < 0 or math.isnan(value_ms)) else HIGHEST_US
        self._h.record_value(us, count)

    def record_us(self, value_us: int) -> None:
        """Record an integer number of microseconds (the hot-path form, no float maths)."""
        if value_us < 0 or value_us > HIGHEST_US:
            self.clamped += 1
            value_us = 0 if value_us < 0 else HIGHEST_US
        self._h.record_value(value_us)

    def record_value_counts(self, counts: Mapping[str, int]) -> None:
        """Record a :func:`value_counts` mapping (microseconds -> how many)."""
        for us, k in counts.items():
            self.record_ms(int(us) / 1000.0, int(k))

    def record_corrected_ms(self, value_ms: float, expected_interval_ms: float) -> None:
        """Record ``value_ms`` plus the samples a periodic probe missed while stalled.

        HdrHistogram's coordinated-omission correction: a value ``k`` intervals long also
        records ``value - interval``, ``value - 2*interval``... down to one interval.
        """
        us = min(max(round(value_ms * 1000.0), 0), HIGHEST_US)
        self._h.record_corrected_value(us, max(round(expected_interval_ms * 1000.0), 0))

    @property
    def count(self) -> int:
        """Number of recorded values."""
        return int(self._h.get_total_count())

    def percentile_ms(self, p: float) -> float:
        """The value at percentile ``p`` (0..100) in ms; NaN when nothing was recorded."""
        return self.percentiles_ms((p,))[0]

    def percentiles_ms(self, ps: Iterable[float]) -> list[float]:
        """The values at several percentiles (each NaN when nothing was recorded), found with
        numpy on the counts: HdrHistogram's own scan is a Python loop over tens of thousands
        of buckets, milliseconds that a live progress line must not hold the loop for."""
        ps = list(ps)
        for p in ps:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile must be in 0..100, got {p}")
        h = self._h
        if self.count == 0:
            return [math.nan] * len(ps)
        cum = np.cumsum(np.ctypeslib.as_array(h.counts)[: h.counts_len], dtype=np.int64)
        out = []
        for p in ps:
            i = int(np.searchsorted(cum, h.get_target_count_at_percentile(p)))
            v = h.get_value_from_index(i)
            out.append(float(h.get_highest_equivalent_value(v) if p
                             else h.get_lowest_equivalent_value(v)) / 1000.0)
        return out

    def max_ms(self) -> float:
        """Largest recorded value in ms (to histogram precision); NaN when empty."""
        return math.nan if self.count == 0 else float(self._h.get_max_value()) / 1000.0

    def min_ms(self) -> float:
        """Smallest recorded value in ms (to histogram precision); NaN when empty."""
        return math.nan if self.count == 0 else float(self._h.get_min_value()) / 1000.0

    def mean_ms(self) -> float:
        """Mean in ms (to histogram precision); NaN when empty."""
        return math.nan if self.count == 0 else float(self._h.get_mean_value()) / 1000.0

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value of ``other`` into this histogram (lossless)."""
        self._h.add(other._h)
        self.clamped += other.clamped

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """A new histogram holding the values of all ``histograms``."""
        out = cls()
        for h in histograms:
            out.merge(h)
        return out

    def encode(self) -> str:
        """The compressed, base64 HdrHistogram form (``HISTF...``), ready for a TEXT column.

        ``clamped`` is not part of the standard form and is not kept.
        """
        return bytes(self._h.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> LatencyHistogram:
        """Rebuild a histogram from :meth:`encode` output.

        Raises ``InputError`` (one line) when ``text`` is not an encoded HdrHistogram.
        """
        raw = text.encode("ascii") if isinstance(text, str) else text
        try:
            h = HdrHistogram.decode(raw)
        except (
            binascii.Error,
            zlib.error,
            ValueError,
            TypeError,
            IndexError,
            HdrCookieException,
            HdrLengthException,
            HdrHistogramSettingsException,
        ) as exc:
            shown = raw[:20].decode("ascii", "replace")
            why = str(exc) or type(exc).__name__
            raise InputError(f"not an encoded HdrHistogram ({shown!r}): {why}") from None
        if h is None:
            raise InputError("not an encoded HdrHistogram: empty or unknown cookie")
        return cls(h)

    def __repr__(self) -> str:
        if self.count == 0:
            return "LatencyHistogram(count=0)"
        return (
            f"LatencyHistogram(count={self.count}, p50={self.percentile_ms(50):.3f}ms, "
            f"p99={self.percentile_ms(99):.3f}ms, max={self.max_ms():.3f}ms)"
        )


def value_counts(values_ms: np.ndarray) -> dict[str, int]:
    """Many latencies as ``{microseconds: count}``, each kept to two significant digits
    (within 5%; exact below 0.1 ms), negatives as 0: a few hundred entries however many
    values, built by numpy in well under a millisecond, and JSON as it is. The form in which
    a call stores its per-frame timings; :meth:`LatencyHistogram.record_value_counts` reads
    it back."""
    if not len(values_ms):
        return {}
    us = np.maximum(np.asarray(values_ms, dtype=np.float64), 0.0) * 1000.0
    mag = 10.0 ** np.maximum(np.floor(np.log10(np.maximum(us, 1.0))) - 1, 0)
    q, counts = np.unique(np.rint(us / mag) * mag, return_counts=True)
    return {str(int(v)): int(k) for v, k in zip(q, counts, strict=True)}
