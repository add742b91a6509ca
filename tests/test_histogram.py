"""LatencyHistogram: percentiles, lossless merge across processes, store round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.histogram import LatencyHistogram

PERCENTILES = [0, 50, 90, 95, 99, 99.9, 100]


def _values(seed: int = 3, n: int = 20_000) -> np.ndarray:
    # Latency-shaped: lognormal around ~200 ms with a long tail.
    return np.random.default_rng(seed).lognormal(mean=5.3, sigma=0.8, size=n)


def _hist(values: np.ndarray) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record_ms(float(v))
    return h


def test_percentiles_match_exact_within_three_significant_digits() -> None:
    values = _values()
    h = _hist(values)
    assert h.count == len(values)
    for p in (50, 90, 99):
        exact = float(np.percentile(values, p, method="inverted_cdf"))
        assert h.percentile_ms(p) == pytest.approx(exact, rel=2e-3)
    assert h.max_ms() == pytest.approx(float(values.max()), rel=1e-3)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_percentiles_in_one_pass_are_the_ones_hdrhistogram_reports(seed: int) -> None:
    # callsim reads percentiles off the counts with numpy (a live progress line must not
    # hold the loop for HdrHistogram's per-bucket scan): every value is the library's own.
    rng = np.random.default_rng(seed)
    h = _hist(np.concatenate([_values(seed, 3_000), rng.uniform(0.001, 0.5, 500),
                              rng.uniform(1_000, 60_000, 50)]))
    ps = [0, 0.1, 1, 25, 50, 90, 95, 99, 99.9, 99.99, 100]
    assert h.percentiles_ms(ps) == [h._h.get_value_at_percentile(p) / 1000.0 for p in ps]
    assert [h.percentile_ms(p) for p in ps] == h.percentiles_ms(ps)
    with pytest.raises(ValueError):
        h.percentiles_ms([50, 101])


def test_merging_halves_equals_one_histogram_of_all_values() -> None:
    values = _values()
    whole = _hist(values)
    a, b = _hist(values[::2]), _hist(values[1::2])
    a.merge(b)
    assert a.count == whole.count
    assert [a.percentile_ms(p) for p in PERCENTILES] == [
        whole.percentile_ms(p) for p in PERCENTILES
    ]
    merged = LatencyHistogram.merged([_hist(values[:5000]), _hist(values[5000:])])
    assert merged.percentile_ms(99) == whole.percentile_ms(99)


def test_encode_decode_round_trip_keeps_every_percentile() -> None:
    h = _hist(_values(seed=9, n=5000))
    text = h.encode()
    assert isinstance(text, str) and text.isascii() and "\n" not in text
    back = LatencyHistogram.decode(text)
    assert back.count == h.count
    assert [back.percentile_ms(p) for p in PERCENTILES] == [h.percentile_ms(p) for p in PERCENTILES]
    # Decoded histograms from different workers still merge losslessly.
    back.merge(LatencyHistogram.decode(text))
    assert back.count == 2 * h.count


def test_sub_millisecond_and_hour_long_values_are_kept() -> None:
    h = LatencyHistogram()
    h.record_ms(0.25)
    h.record_ms(3_600_000.0)
    assert h.percentile_ms(0) == pytest.approx(0.25, rel=1e-3)
    assert h.max_ms() == pytest.approx(3_600_000.0, rel=1e-3)
    assert h.clamped == 0


def test_out_of_range_values_are_clamped_and_counted_not_lost() -> None:
    h = LatencyHistogram()
    h.record_ms(-3.0)
    h.record_ms(10 * 3_600_000.0)
    assert h.count == 2
    assert h.clamped == 2
    assert h.max_ms() == pytest.approx(3_600_000.0, rel=1e-3)


def test_empty_histogram_reports_nan_not_zero() -> None:
    h = LatencyHistogram()
    assert h.count == 0
    assert math.isnan(h.percentile_ms(99))
    assert LatencyHistogram.decode(h.encode()).count == 0


@pytest.mark.parametrize("bad", ["", "garbage", "aGVsbG8gd29ybGQ="], ids=["empty", "junk", "b64"])
def test_decoding_junk_is_a_one_line_input_error(bad: str) -> None:
    with pytest.raises(InputError) as err:
        LatencyHistogram.decode(bad)
    assert "not an encoded HdrHistogram" in str(err.value)
    assert "\n" not in str(err.value)


def test_value_counts_keep_two_significant_digits_and_read_back_as_a_histogram() -> None:
    import numpy as np

    from simulator.histogram import value_counts

    values = np.array([0.0123, 0.5, 0.55, 1.234, 1.234, 17.6, -0.2])
    counts = value_counts(values)
    assert counts == {"12": 1, "500": 1, "550": 1, "1200": 2, "18000": 1, "0": 1}
    h = LatencyHistogram()
    h.record_value_counts(counts)
    assert h.count == len(values)
    assert h.max_ms() == pytest.approx(18.0, rel=1e-3)
    assert value_counts(np.array([])) == {}
