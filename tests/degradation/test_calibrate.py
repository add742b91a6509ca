from __future__ import annotations

import io

import pytest
from rich.console import Console

from simulator.degradation import calibrate, get_profile, render_calibration

ORDER = ["clean", "quiet_phone", "typical_call", "noisy", "hostile"]


# The rate checks are 99 % intervals, about sixty of them: on a few hundred calls a chance
# miss becomes likely (with seed 42, 300 calls give two), so the smaller sample, for the
# mutation run, is 500 calls (it passes at 500, 600 and 800 alike). The WER pass over 1000
# utterances is cheap; the calls are what take the time.
@pytest.mark.parametrize("calls", [pytest.param(2000, marks=pytest.mark.mutation_skip), 500])
def test_calibrate_hits_targets_and_rates(calls: int) -> None:
    profiles = [get_profile(n) for n in ORDER]
    results = calibrate(profiles, utterances=1000, seed=42, calls=calls)
    by = {r.profile: r for r in results}
    for name in ORDER:
        r = by[name]
        lo, hi = r.target_wer
        assert lo <= r.measured_wer <= hi, (name, r.measured_wer)
        assert abs(r.measured_wer - (lo + hi) / 2) <= 0.02, (name, r.measured_wer)
        for check in r.rates:
            assert check.ok, (name, check)
            # A configured rate is measured: it had chances (an empty count is "ok" too).
            assert check.chances > 0 or check.configured == 0, (name, check)
    wers = [by[n].measured_wer for n in ORDER]
    assert all(a < b for a, b in zip(wers, wers[1:], strict=False)), wers
    assert {c.name for c in by["typical_call"].rates if c.configured > 0} >= {
        "partial_input", "barge_in", "disfluency", "self_correction", "hesitation",
        "long_silence", "backchannel", "dtmf", "fault_timeout", "fault_http_5xx",
        "fault_malformed", "fault_empty", "fault_wrong"}
    out = io.StringIO()
    Console(file=out, width=200).print(render_calibration(results))
    assert "typical_call" in out.getvalue() and "10%-15%" in out.getvalue()


def test_the_calibration_utterances_follow_the_seed() -> None:
    from simulator.degradation.calibrate import _utterances

    a = _utterances(40, seed=1)
    assert len(a) == 40 and a == _utterances(40, seed=1)
    assert [t for t, _ in a] != [t for t, _ in _utterances(40, seed=2)]


def test_a_calibration_says_how_many_utterances_and_calls_it_measured() -> None:
    (result,) = calibrate([get_profile("quiet_phone")], utterances=30, seed=3, calls=4)
    assert (result.profile, result.utterances, result.calls) == ("quiet_phone", 30, 4)


def test_the_calibration_table_reads_each_profile_against_its_target() -> None:
    from simulator.degradation.calibrate import ProfileCalibration, RateCheck

    results = [
        ProfileCalibration("clean", (0.0, 0.05), 0.023, 1000, 500, (
            RateCheck("barge_in", 0.0, 0, 0, (0, 0)),)),
        ProfileCalibration("noisy", (0.18, 0.25), 0.3, 1000, 500, (
            RateCheck("barge_in", 0.1, 52, 500, (36, 65)),
            RateCheck("dtmf", 0.02, 30, 500, (3, 18)),
            RateCheck("long_silence", 0.004, 0, 500, (0, 6)),
            RateCheck("fault_wrong", 0.0, 0, 90, (0, 0)))),
    ]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(render_calibration(results))
    lines = out.getvalue().splitlines()
    assert "Noise profile calibration" in lines[0]
    header = next(ln for ln in lines if "profile" in ln and "target WER" in ln)
    assert [c.strip() for c in header.strip("│┃ ").split("┃")] == [
        "profile", "target WER", "measured", "ok",
        "perturbations and faults: observed / configured (99% ok)"]
    rows = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
            for ln in lines if ln.startswith("│")}
    # A profile with nothing configured and nothing seen shows a dash, not an empty cell.
    assert rows["clean"] == ["0%-5%", "2.3%", "yes", "-"]
    # Out of its band: NO; a rate outside its interval is marked; a configured one never
    # seen is shown (at 0), one neither configured nor seen is left out.
    assert rows["noisy"] == ["18%-25%", "30.0%", "NO",
                             "barge_in 0.104/0.100, dtmf 0.060/0.020 !, long_silence 0.000/0.004"]
    # The measured WER is right-aligned under its header, so the numbers line up.
    at = header.index("measured")
    clean = next(ln for ln in lines if ln.startswith("│ clean"))
    assert clean[at:at + len("measured")] == "    2.3%"
