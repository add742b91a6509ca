from __future__ import annotations

from pathlib import Path

import pytest

from simulator.degradation.profile import get_profile, load_profiles
from simulator.errors import ProfileError

BUILTINS = {"clean", "quiet_phone", "typical_call", "noisy", "hostile", "car", "cafe"}


def test_builtin_profiles_load_with_reference_numbers() -> None:
    profiles = load_profiles()
    assert BUILTINS <= set(profiles)
    assert profiles["typical_call"].asr.target_wer == (0.10, 0.15)
    assert profiles["hostile"].audio.clipping_fraction == (0.05, 0.20)
    # noisy extends typical_call: inherits what it does not override
    assert profiles["noisy"].tool_faults.malformed == profiles["typical_call"].tool_faults.malformed
    assert profiles["noisy"].audio.rt60_s == (0.3, 0.8)


def _write(d: Path, name: str, text: str) -> Path:
    p = d / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_user_profile_extends_and_overrides(tmp_path: Path) -> None:
    _write(tmp_path, "lobby", "extends: typical_call\nasr:\n  target_wer: [0.2, 0.3]\n"
                              "conversation:\n  barge_in: {rate: 0.5}\n")
    p = get_profile("lobby", tmp_path)
    assert p.asr.target_wer == (0.2, 0.3)
    assert p.conversation.barge_in.rate == 0.5
    assert p.conversation.barge_in.duration_s == (1.0, 5.0)  # deep-merged, not replaced
    assert p.tool_faults.timeout == get_profile("typical_call").tool_faults.timeout


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("asr:\n  target_wr: [0.1, 0.2]\n", "asr.target_wr"),
        ("tool_faults:\n  timeout: lots\n", "tool_faults.timeout"),
        ("conversation:\n  partial_input_rate: 1.5\n", "conversation.partial_input_rate"),
        ("asr:\n  target_wer: [0.3, 0.1]\n", "asr"),
        ("extends: nowhere\n", "extends"),
        ("colour: red\n", "colour"),
        ("audio:\n  sample_rate: 16000\n", "audio"),  # mu-law (the default) is 8 kHz only
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "reversed-band", "unknown-extends",
         "unknown-top-key", "wideband-g711"],
)
def test_invalid_profile_is_one_line_naming_file_and_field(
        tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, "bad", text)
    with pytest.raises(ProfileError) as exc:
        load_profiles(tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert f"'{field}'" in msg


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, "a", "extends: b\n")
    path_b = _write(tmp_path, "b", "extends: a\n")
    with pytest.raises(ProfileError, match="cycle") as exc:
        load_profiles(tmp_path)
    assert "\n" not in str(exc.value)
    assert str(path_b) in str(exc.value) or str(tmp_path / "a.yaml") in str(exc.value)


def test_unknown_profile_lists_known() -> None:
    with pytest.raises(ProfileError, match="typical_call"):
        get_profile("typcal_call")


def test_profiles_load_from_yml_files_too(tmp_path: Path) -> None:
    (tmp_path / "lobby.yml").write_text("extends: typical_call\n", encoding="utf-8")
    assert get_profile("lobby", tmp_path).asr == get_profile("typical_call").asr


def test_a_profile_named_empty_is_an_error_naming_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "blank", 'name: ""\n')
    with pytest.raises(ProfileError, match="'name'") as exc:
        load_profiles(tmp_path)
    assert str(path) in str(exc.value)


def test_a_profile_that_is_not_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken", "asr: [0.1\n")
    with pytest.raises(ProfileError, match="invalid YAML") as exc:
        load_profiles(tmp_path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_an_extends_cycle_names_the_chain(tmp_path: Path) -> None:
    _write(tmp_path, "a", "extends: b\n")
    _write(tmp_path, "b", "extends: a\n")
    with pytest.raises(ProfileError, match=r"cycle (a -> b -> a|b -> a -> b)"):
        load_profiles(tmp_path)


def test_a_line_rate_must_be_a_whole_8_or_16_khz() -> None:
    from simulator.degradation.profile import line_rate_problem

    assert line_rate_problem("pcm16", 16_000) is None
    assert line_rate_problem("mulaw", 8_000) is None
    for rate in (16_000.0, 11_025, True, "8000"):
        assert line_rate_problem("pcm16", rate) == (
            f"sample_rate: expected 8000 or 16000, got {rate!r}")
