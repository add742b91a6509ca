"""`calibrate --audio`: the ordering check over profiles, and a small closed-loop run."""

from __future__ import annotations

import pytest

from simulator.audio import asr, reference_voice, tts
from simulator.audio.calibrate_audio import (
    AudioCalibration,
    band_pairs,
    calibrate_audio,
    order_metric,
    order_violations,
)
from simulator.degradation import get_profile
from simulator.errors import InputError

ASR_OK, ASR_WHY = asr.asr_available()
TTS_OK, TTS_WHY = tts.tts_available()
REF_OK, REF_WHY = reference_voice.reference_voice_available()
needs_loop = pytest.mark.skipif(
    not (ASR_OK and TTS_OK),
    reason=f"needs pocketsphinx ({ASR_WHY}) and TTS ({TTS_WHY})",
)


def _result(name: str, band: tuple[float, float], wer: float, heard: float,
            floor: float = 0.5) -> AudioCalibration:
    return AudioCalibration(profile=name, target_wer=band, utterances=10, words=100,
                            errors=round(wer * 100), wer=wer, hit_rate=heard,
                            floor_wer=floor, floor_hit_rate=0.5, seconds_audio=30.0,
                            seconds_cpu=3.0)


def test_only_profiles_with_disjoint_bands_are_ordered() -> None:
    rs = [_result("hostile", (0.30, 0.50), 0.9, 0.1), _result("car", (0.12, 0.20), 0.6, 0.4),
          _result("cafe", (0.15, 0.25), 0.7, 0.3), _result("clean", (0.0, 0.05), 0.4, 0.6)]
    pairs = {(a.profile, b.profile) for a, b in band_pairs(rs)}
    assert pairs == {("clean", "car"), ("clean", "cafe"), ("clean", "hostile"),
                     ("car", "hostile"), ("cafe", "hostile")}


@pytest.mark.parametrize(
    ("floor", "metric", "expected"),
    [(0.5, "wer", ["clean WER 70.0% >= typical 60.0% (by 10.0%)"]),
     (0.9, "words heard", [])],
    ids=["low-floor-orders-by-wer", "high-floor-orders-by-words-heard"],
)
def test_the_order_uses_wer_once_the_floor_allows_it(floor: float, metric: str,
                                                     expected: list[str]) -> None:
    # clean has the higher WER but hears more words: out of order by WER only
    rs = [_result("clean", (0.0, 0.05), 0.7, 0.6, floor),
          _result("typical", (0.10, 0.15), 0.6, 0.4, floor),
          _result("hostile", (0.30, 0.50), 0.95, 0.05, floor)]
    assert order_metric(rs) == metric
    assert order_violations(rs) == expected


def test_the_domain_lms_own_seed_is_refused() -> None:
    from simulator.audio.lm import LM_SEED

    with pytest.raises(InputError, match="training data"):
        calibrate_audio([get_profile("clean")], utterances=1, seed=LM_SEED,
                        config=asr.RecogniserConfig(lm="domain"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> list[AudioCalibration]:
    """clean, quiet_phone, typical_call and hostile over 20 utterances in the reference
    voice, domain LM (~30 s CPU)."""
    tmp = tmp_path_factory.mktemp("calibrate-audio")
    config = asr.RecogniserConfig(lm="domain", lm_cache_dir=str(tmp / "lm"))
    profiles = [get_profile(n) for n in ("clean", "quiet_phone", "typical_call", "hostile")]
    return calibrate_audio(profiles, utterances=20, seed=1, cache_dir=str(tmp / "tts"),
                           config=config, speech="piper")


@needs_loop
@pytest.mark.skipif(not REF_OK, reason=f"needs the reference voice ({REF_WHY})")
def test_a_small_run_orders_the_lines_by_wer(small_run: list[AudioCalibration]) -> None:
    clean, quiet, typical, hostile = small_run
    # measured (20 utterances, 166 words): floor 6.0%, clean 5.4%, quiet_phone 10.8%,
    # typical_call 19.9%, hostile 97.0% WER
    assert clean.speech == "piper" and clean.floor_wer < 0.15
    assert order_metric(small_run) == "wer"
    assert order_violations(small_run) == []
    assert clean.wer < quiet.wer < typical.wer < hostile.wer
    assert hostile.hit_rate < 0.25 * typical.hit_rate


def test_asking_for_the_reference_voice_without_it_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    why = "reference voice: piper-tts is not installed: pip install 'callsim[asr]'"
    monkeypatch.setattr(reference_voice, "reference_voice_available", lambda: (False, why))
    res = CliRunner().invoke(main, ["calibrate", "--audio", "--speech", "piper"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].endswith(f"--speech piper: {why}")


def test_an_unknown_probe_speech_is_refused_before_anything_renders() -> None:
    with pytest.raises(InputError, match="speech: expected one of piper, espeak, got 'festival'"):
        calibrate_audio([get_profile("clean")], utterances=1, seed=1,
                        speech="festival")  # type: ignore[arg-type]


def test_asking_for_more_audio_utterances_than_the_cap_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import simulator.audio.calibrate_audio as cal
    from simulator.cli import AUDIO_UTTERANCES_MAX, main

    asked: list[int] = []

    def record(profiles: list[object], utterances: int, **kwargs: object) -> list[object]:
        asked.append(utterances)
        return []

    monkeypatch.setattr(cal, "calibrate_audio", record)
    runner = CliRunner()
    capped = runner.invoke(main, ["calibrate", "--audio", "--speech", "espeak",
                                  "--utterances", "300"])
    default = runner.invoke(main, ["calibrate", "--audio", "--speech", "espeak"])
    assert capped.exit_code == default.exit_code == 0, capped.output
    assert asked == [AUDIO_UTTERANCES_MAX, AUDIO_UTTERANCES_MAX]
    assert f"--utterances 300 capped at {AUDIO_UTTERANCES_MAX}" in capped.output
    assert "capped" not in default.output  # the default (1000) is the text calibration's


@pytest.mark.skipif(not (ASR_OK and REF_OK), reason=f"needs pocketsphinx ({ASR_WHY}) and "
                                                    f"the reference voice ({REF_WHY})")
def test_calibrate_listener_prints_the_listeners_wer_per_line(tmp_path: object) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    res = CliRunner().invoke(main, ["calibrate", "--listener", "--utterances", "10",
                                    "--seed", "2", "--workers", "1"])
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if x.startswith("listener WER")]
    assert [x.split("(")[1].split(")")[0] for x in lines] == [
        "pocketsphinx, piper, clean", "pocketsphinx, piper, typical_call"]
    wers = [float(x.split(": ")[1].split("%")[0]) for x in lines]
    # Natural agent speech on a clean line is heard within the target; the typical line
    # costs words.
    assert wers[0] <= 15.0 and wers[1] >= wers[0]


def test_the_listener_lms_own_seed_is_refused() -> None:
    from simulator.audio.listener import listener_config
    from simulator.audio.lm import LM_SEED

    with pytest.raises(InputError, match="listener LM"):
        calibrate_audio([get_profile("clean")], utterances=1, seed=LM_SEED,
                        config=listener_config(), source="agent")
