from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from simulator.errors import RubricError
from simulator.gate.rubric import load_rubric

from ._helpers import EXAMPLE, rubric_data


def test_example_rubric_loads_with_sha_of_its_bytes() -> None:
    rubric, sha = load_rubric(EXAMPLE)
    assert sha == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert rubric.sha256 == sha
    assert rubric.numbers.p95_ttft_ms.relative is True
    assert rubric.guards["error_rate"].max == 0.05


def test_editing_the_rubric_changes_its_sha(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_bytes(EXAMPLE.read_bytes())
    _, before = load_rubric(p)
    p.write_bytes(EXAMPLE.read_bytes().replace(b"win_margin: 0.05", b"win_margin: 0.04", 1))
    _, after = load_rubric(p)
    assert before != after


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _bad_number(field: str, value: object) -> dict[str, object]:
    data = rubric_data()
    data["numbers"]["refusal_rate"][field] = value
    return data


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (rubric_data(confidence="high"), "confidence"),
        (rubric_data(min_calls_per_arm=0), "min_calls_per_arm"),
        (rubric_data(bogus=1), "bogus"),
        (_bad_number("win_margin", -0.1), "numbers.refusal_rate.win_margin"),
        (_bad_number("margin", 0.1), "numbers.refusal_rate.margin"),
        (_bad_number("direction", "lower"), "refusal_rate.direction must be 'higher'"),
        (rubric_data(guards={"error_rate": {}}), "guards.error_rate"),
        ({k: v for k, v in rubric_data().items() if k != "numbers"}, "numbers"),
    ],
    ids=["wrong-type", "below-minimum", "unknown-key", "negative-margin",
         "unknown-number-key", "wrong-direction", "guard-without-limit", "missing-numbers"],
)
def test_malformed_rubric_is_one_line_naming_file_and_field(
    tmp_path: Path, data: object, needle: str
) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(RubricError) as exc:
        load_rubric(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(p) in msg
    assert needle in msg


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("confidence: 0.95\nnumbers: [unclosed\n")
    with pytest.raises(RubricError, match=r"broken\.yaml: line \d+: invalid YAML"):
        load_rubric(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="cannot read rubric"):
        load_rubric(tmp_path / "nope.yaml")


def test_each_unreadable_rubric_is_one_exact_line(tmp_path: Path) -> None:
    from simulator.gate.rubric import rubric_from_dict

    missing = tmp_path / "nope.yaml"
    with pytest.raises(RubricError) as exc:
        load_rubric(missing)
    assert str(exc.value) == f"{missing}: cannot read rubric: No such file or directory"
    with pytest.raises(RubricError) as exc:
        load_rubric(tmp_path)       # a directory
    assert str(exc.value) == f"{tmp_path}: cannot read rubric: Is a directory"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RubricError) as exc:
        load_rubric(latin)
    assert str(exc.value) == f"{latin}: rubric is not UTF-8 text"
    broken = tmp_path / "broken.yaml"
    broken.write_text("confidence: 0.95\nseed: 1\nnumbers: [unclosed\n")
    with pytest.raises(RubricError) as exc:
        load_rubric(broken)
    assert str(exc.value) == (f"{broken}: line 4: invalid YAML: expected ',' or ']', "
                              "but got '<stream end>'")
    tab = tmp_path / "tab.yaml"
    tab.write_text("confidence:\t0.95\n\tseed: 1\n")
    with pytest.raises(RubricError) as exc:
        load_rubric(tab)
    assert str(exc.value) == (f"{tab}: line 1: invalid YAML: found character '\\t' that "
                              "cannot start any token")
    bell = tmp_path / "bell.yaml"      # a reader error: no line mark, no 'problem'
    bell.write_text("seed: 1\x07\n")
    with pytest.raises(RubricError) as exc:
        load_rubric(bell)
    assert str(exc.value) == (f"{bell}: invalid YAML: unacceptable character #x0007: "
                              "special characters are not allowed")
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(RubricError) as exc:
        load_rubric(listed)
    assert str(exc.value) == f"{listed}: a rubric is a mapping, got list"
    with pytest.raises(RubricError) as exc:
        rubric_from_dict(None)
    assert str(exc.value) == "<rubric>: a rubric is a mapping, got NoneType"
    with pytest.raises(RubricError, match=r"^<rubric>: .*numbers"):
        rubric_from_dict({})


def test_sha_is_set_only_by_loading_the_file(tmp_path: Path) -> None:
    from simulator.gate.rubric import rubric_from_dict

    assert rubric_from_dict(rubric_data()).sha256 is None
    assert rubric_from_dict(rubric_data(), sha256="ab").sha256 == "ab"
    p = tmp_path / "r.yaml"
    p.write_text("# café\n" + EXAMPLE.read_text())
    rubric, sha = load_rubric(p)
    assert sha == rubric.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert rubric.numbers.rule("refusal_rate").win_margin == 0.03
    assert rubric.numbers.rule("p95_ttft_ms").relative is True
    with pytest.raises(AttributeError):
        rubric.numbers.rule("nonsense")
