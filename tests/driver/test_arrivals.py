"""Arrival schedules: distributions, ramps, traces, bounds, seeding and sharding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from simulator.driver.arrivals import (
    ArrivalSpec,
    GammaArrivals,
    Stage,
    StagedArrivals,
    build_schedule,
    parse_duration,
    parse_rate,
    parse_stages,
    spec_from_options,
    split_schedule,
    warmup_count,
)
from simulator.errors import InputError

N = 10_000
ALPHA = 0.01


def _gaps(spec: ArrivalSpec, seed: int, n: int = N) -> np.ndarray:
    offsets = build_schedule(spec, count=n + 1, duration_s=None, seed=seed)
    assert len(offsets) == n + 1
    return np.diff(offsets)


# ------------------------------------------------------------------ distributions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_gaps_are_exponential_at_the_configured_rate(seed: int) -> None:
    spec = spec_from_options("poisson", rate="20/s")
    gaps = _gaps(spec, seed)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 20)).pvalue > ALPHA
    assert gaps.mean() == pytest.approx(1 / 20, rel=0.05)


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 2.0], ids=lambda b: f"cv{b}")
def test_gamma_gaps_follow_gamma_with_mean_one_over_rate_and_cv_burstiness(
    burstiness: float,
) -> None:
    spec = spec_from_options("gamma", rate="300/m", burstiness=burstiness)
    gaps = _gaps(spec, seed=11)
    shape, scale = 1 / burstiness**2, burstiness**2 / 5.0
    assert GammaArrivals.shape_scale(spec) == pytest.approx((shape, scale))
    assert stats.kstest(gaps, "gamma", args=(shape, 0, scale)).pvalue > ALPHA
    assert gaps.mean() == pytest.approx(1 / 5.0, rel=0.1)
    assert gaps.std() / gaps.mean() == pytest.approx(burstiness, rel=0.1)


def test_very_bursty_gamma_matches_above_a_microsecond() -> None:
    # At cv=4 (shape 1/16) a quarter of the gaps are under a nanosecond: offsets of
    # thousands of seconds cannot hold them, so those calls start together. Above 1 us
    # (below any dispatch resolution) the gaps follow the conditional gamma exactly, and
    # the share under 1 us is what the gamma says.
    spec = spec_from_options("gamma", rate="5/s", burstiness=4.0)
    shape, scale = GammaArrivals.shape_scale(spec)
    gaps = _gaps(spec, seed=11)
    cut = 1e-6
    f_cut = float(stats.gamma.cdf(cut, shape, scale=scale))
    below = float(np.mean(gaps < cut))
    assert below == pytest.approx(f_cut, abs=4 * np.sqrt(f_cut * (1 - f_cut) / len(gaps)))

    def conditional_cdf(x: np.ndarray) -> np.ndarray:
        return (stats.gamma.cdf(x, shape, scale=scale) - f_cut) / (1 - f_cut)

    assert stats.kstest(gaps[gaps >= cut], conditional_cdf).pvalue > ALPHA
    assert gaps.mean() == pytest.approx(1 / 5.0, rel=0.15)


def test_bursty_gamma_is_not_mistaken_for_poisson() -> None:
    # The KS check has teeth: gamma with cv=2 at the same mean rate fails the exponential.
    gaps = _gaps(spec_from_options("gamma", rate="20/s", burstiness=2.0), seed=1)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 20)).pvalue < 1e-6


def test_gamma_with_burstiness_one_is_poisson() -> None:
    gaps = _gaps(spec_from_options("gamma", rate="20/s", burstiness=1.0), seed=5)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 20)).pvalue > ALPHA


def test_constant_gaps_are_all_equal_and_start_at_zero() -> None:
    offsets = build_schedule(spec_from_options("constant", rate="8/s"), N + 1, None, seed=1)
    assert offsets[0] == 0.0
    gaps = np.diff(offsets)
    np.testing.assert_allclose(gaps, 1 / 8, rtol=0, atol=1e-9)
    assert offsets[-1] == pytest.approx(N / 8)


# ------------------------------------------------------------------ stages


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ramp_achieves_each_stage_rate_within_five_percent(seed: int) -> None:
    spec = spec_from_options(stages="5m:40/s,10m:100/s,2m:0/s,10m:1200/m")
    offsets = build_schedule(spec, None, None, seed=seed)
    edges = StagedArrivals.boundaries(spec)
    assert np.all(np.diff(offsets) >= 0)
    assert offsets[-1] < edges[-1]
    counts, _ = np.histogram(offsets, bins=edges)
    for stage, n in zip(spec.stages, counts, strict=True):
        achieved = n / stage.duration_s
        if stage.rate == 0:
            assert n == 0
        else:
            assert achieved == pytest.approx(stage.rate, rel=0.05)


def test_stage_gaps_are_exponential_within_a_stage() -> None:
    spec = spec_from_options(stages="2m:10/s,10m:20/s")
    offsets = build_schedule(spec, None, None, seed=4)
    inner = offsets[(offsets >= 120) & (offsets < 720)]
    assert stats.kstest(np.diff(inner), "expon", args=(0, 1 / 20)).pvalue > ALPHA


def test_parse_stages_reads_durations_and_rates_in_any_unit() -> None:
    assert parse_stages("1m:5/s, 5m:20/s ,1m:0/s") == (
        Stage(60.0, 5.0),
        Stage(300.0, 20.0),
        Stage(60.0, 0.0),
    )
    assert parse_stages("1h:3600/h,30:120/m") == (Stage(3600.0, 1.0), Stage(30.0, 2.0))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "expected DURATION:RATE"),
        ("1m:5/s,5m-20/s", "stage 2 '5m-20/s'"),
        ("1m:5/s,5m:fast", "stage 2"),
        ("0s:5/s", "duration must be > 0"),
        ("1m:-5/s", "stage 1"),
    ],
    ids=["empty", "no-colon", "bad-rate", "zero-duration", "negative-rate"],
)
def test_bad_stages_are_one_line_errors_naming_the_stage(text: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_stages(text)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ parsers


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("20/s", 20.0),
        ("300/m", 5.0),
        ("7200/h", 2.0),
        ("5", 5.0),
        ("0.5/sec", 0.5),
        ("30/min", 0.5),
        (" 12 / s ", 12.0),
        (3, 3.0),
    ],
)
def test_parse_rate(text: str | int, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("45", 45.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5m", 90.0),
        (12, 12.0),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fast", "20/d", "20/s/s", "-3/s", "", "nan"])
def test_bad_rate_says_what_was_expected(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_rate(text)
    assert repr(text) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["soon", "10x", "1h30", "", "-5m", "m"])
def test_bad_duration_says_what_was_expected(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_duration(text)
    assert repr(text) in str(err.value)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(["s", "m", "h"]))
def test_parse_rate_scales_by_unit(x: float, unit: str) -> None:
    per = {"s": 1, "m": 60, "h": 3600}[unit]
    assert parse_rate(f"{x!r}/{unit}") == pytest.approx(x / per)


@given(st.text(max_size=30))
def test_parsers_fail_only_with_input_errors(text: str) -> None:
    for parse in (parse_rate, parse_duration, parse_stages):
        try:
            parse(text)
        except InputError as exc:
            assert "\n" not in str(exc)


# ------------------------------------------------------------------ trace


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "day.csv"
    p.write_text(body, encoding="utf-8")
    return p


def test_trace_replays_offsets_with_or_without_header(tmp_path: Path) -> None:
    plain = _write(tmp_path, "0\n0.5\n# a comment\n\n2.25\n1.0\n")
    got = build_schedule(spec_from_options(trace=plain), None, None, seed=1)
    np.testing.assert_array_equal(got, [0.0, 0.5, 1.0, 2.25])
    named = tmp_path / "named.csv"
    named.write_text("call_id,offset_s\nA,3\nB,1.5\n", encoding="utf-8")
    got = build_schedule(spec_from_options(trace=named), None, None, seed=1)
    np.testing.assert_array_equal(got, [1.5, 3.0])


def test_trace_is_cut_by_count_and_duration(tmp_path: Path) -> None:
    p = _write(tmp_path, "offset\n" + "\n".join(str(i) for i in range(10)) + "\n")
    spec = spec_from_options(trace=p)
    assert len(build_schedule(spec, 3, None, seed=1)) == 3
    np.testing.assert_array_equal(build_schedule(spec, None, 4.0, seed=1), [0, 1, 2, 3])


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        ("offset\n1\n2\nsoon\n", 4, "'soon' is not a start offset"),
        ("0\n1\n-2\n", 3, "must be a finite number >= 0"),
        ("a,offset\nx,1\ny\n", 3, "missing column 2"),
    ],
    ids=["not-a-number", "negative", "short-row"],
)
def test_trace_errors_name_file_and_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    p = _write(tmp_path, body)
    with pytest.raises(InputError) as err:
        build_schedule(spec_from_options(trace=p), None, None, seed=1)
    assert f"{p}:{line}:" in str(err.value)
    assert needle in str(err.value)


def test_trace_missing_or_empty_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.csv: cannot read trace"):
        build_schedule(spec_from_options(trace=tmp_path / "nope.csv"), None, None, seed=1)
    with pytest.raises(InputError, match="day.csv: trace has no call start offsets"):
        build_schedule(spec_from_options(trace=_write(tmp_path, "offset\n")), None, None, 1)


# ------------------------------------------------------------------ bounds, seeds, shards


def test_schedule_stops_at_whichever_bound_comes_first() -> None:
    spec = spec_from_options(rate="10/s")
    assert len(build_schedule(spec, 50, 3600.0, seed=1)) == 50
    short = build_schedule(spec, 10_000, 5.0, seed=1)
    assert 20 < len(short) < 100 and short[-1] < 5.0
    only_duration = build_schedule(spec, None, 60.0, seed=1)
    assert len(only_duration) == pytest.approx(600, rel=0.15)
    assert only_duration[-1] < 60.0
    assert len(build_schedule(spec_from_options("constant", rate="4/s"), None, 2.0, 1)) == 8


def test_open_loop_without_bound_is_an_input_error() -> None:
    with pytest.raises(InputError, match="--count N or --duration D"):
        build_schedule(spec_from_options(rate="10/s"), None, None, seed=1)


@pytest.mark.parametrize(
    "spec",
    [
        ArrivalSpec("poisson", rate=15.0),
        ArrivalSpec("gamma", rate=15.0, burstiness=3.0),
        ArrivalSpec("stages", stages=parse_stages("30s:10/s,30s:20/s")),
    ],
    ids=["poisson", "gamma", "stages"],
)
def test_same_seed_same_schedule_different_seed_different(spec: ArrivalSpec) -> None:
    a = build_schedule(spec, 500, 60.0, seed=42)
    np.testing.assert_array_equal(a, build_schedule(spec, 500, 60.0, seed=42))
    assert not np.array_equal(a, build_schedule(spec, 500, 60.0, seed=43))


def test_schedule_is_identical_in_another_process() -> None:
    spec = "ArrivalSpec('gamma', rate=15.0, burstiness=2.0)"
    code = (
        "from simulator.driver.arrivals import *; "
        f"print(build_schedule({spec}, 200, None, 7).tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    here = build_schedule(ArrivalSpec("gamma", rate=15.0, burstiness=2.0), 200, None, 7)
    assert out == here.tobytes().hex()


@pytest.mark.parametrize("n_shards", [1, 2, 3, 7])
def test_split_schedule_shards_reproduce_the_schedule_exactly(n_shards: int) -> None:
    schedule = build_schedule(spec_from_options(rate="50/s"), 1001, None, seed=3)
    shards = split_schedule(schedule, n_shards)
    assert len(shards) == n_shards
    assert sum(len(s) for s in shards) == len(schedule)
    np.testing.assert_array_equal(np.sort(np.concatenate(shards), kind="stable"), schedule)
    for i, offset in enumerate(schedule):
        assert shards[i % n_shards][i // n_shards] == offset


def test_split_schedule_rejects_zero_workers() -> None:
    with pytest.raises(InputError, match="must be >= 1"):
        split_schedule(np.zeros(3), 0)


def test_warmup_count_counts_calls_starting_before_the_warmup() -> None:
    schedule = build_schedule(spec_from_options("constant", rate="2/s"), 20, None, seed=1)
    assert warmup_count(schedule, 3.0) == 6
    assert warmup_count(schedule, 0.0) == 0


# ------------------------------------------------------------------ specs


def test_closed_loop_has_no_schedule_but_a_concurrency() -> None:
    spec = spec_from_options(concurrency=50)
    assert spec.kind == "closed" and spec.closed_loop and spec.concurrency == 50
    assert not spec_from_options(rate="5/s").closed_loop
    with pytest.raises(InputError, match="no schedule"):
        build_schedule(spec, 100, None, seed=1)
    with pytest.raises(InputError, match="--concurrency N with N >= 1"):
        spec_from_options("closed", concurrency=0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"arrival": "weibull", "rate": "5/s"}, "known: closed, constant, gamma, poisson"),
        ({"arrival": "poisson"}, "needs a rate > 0"),
        ({"arrival": "constant", "rate": "5/s", "burstiness": 2.0}, "does not take burstiness"),
        ({"arrival": "gamma", "rate": "5/s", "burstiness": 0.0}, "bad burstiness"),
        ({"stages": "1m:5/s", "rate": "5/s"}, "does not take rate"),
        ({"arrival": "trace"}, "--trace FILE"),
    ],
    ids=["unknown", "no-rate", "constant-burstiness", "zero-burstiness", "stages-rate", "no-file"],
)
def test_bad_specs_are_one_line_input_errors(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError) as err:
        spec_from_options(**kwargs)  # type: ignore[arg-type]
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_describe_names_the_model_for_the_run_summary() -> None:
    assert spec_from_options("gamma", rate="20/s", burstiness=2).describe() == (
        "gamma 20/s burstiness 2"
    )
    assert spec_from_options(stages="1m:5/s,30s:0/s").describe() == "stages 60s:5/s,30s:0/s"
    assert spec_from_options(concurrency=8).describe() == "closed loop, 8 concurrent"
