"""Persona packs: the built-ins load, bad packs fail with one line naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.errors import PackError
from simulator.personas.pack import Pack, builtin_pack_dir, load_packs

BUILTIN = ["after_hours", "healthcare", "real_estate", "salon"]


def test_builtin_packs_load_with_enough_utterances(packs: dict[str, Pack]) -> None:
    assert sorted(packs) == BUILTIN
    for pack in packs.values():
        assert sum(len(i.openings) for i in pack.intents.values()) >= 20
        assert pack.missing_record_share == 0.15
        for tool in pack.tool_schemas():
            assert tool["type"] == "function" and tool["function"]["parameters"]["type"] == "object"


def test_after_hours_urgent_calls_transfer(packs: dict[str, Pack]) -> None:
    urgent = packs["after_hours"].intents["urgent_issue"]
    assert urgent.outcome == "transferred"
    assert packs["after_hours"].backend[urgent.action.tool].op == "transfer"  # type: ignore[union-attr]


def _copy_pack(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load((builtin_pack_dir() / "salon.yaml").read_text())
    data["name"] = "my_salon"
    edit(data)  # type: ignore[operator]
    path = tmp_path / "my_salon.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_pack_directory_adds_a_pack(tmp_path: Path) -> None:
    _copy_pack(tmp_path, lambda d: None)
    packs = load_packs(tmp_path)
    assert sorted(packs) == sorted([*BUILTIN, "my_salon"])


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["slots"]["phone"].update(colour="red"), "slots.phone.colour"),
        (lambda d: d["intents"]["book_service"].update(weight=-1), "intents.book_service.weight"),
        (lambda d: d["slots"]["date"].update(type="weekday"), "slots.date.type"),
        (
            lambda d: d["intents"]["cancel_booking"].update(slots=["phone", "shoe_size"]),
            "intents.cancel_booking.slots",
        ),
        (
            lambda d: d["intents"]["book_service"]["action"].update(tool="book_yacht"),
            "intents.book_service.action.tool",
        ),
    ],
    ids=["extra-field", "bad-weight", "bad-slot-type", "unknown-slot", "unknown-tool"],
)
def test_malformed_pack_is_one_line_naming_file_and_field(
    tmp_path: Path, edit: object, field: str
) -> None:
    path = _copy_pack(tmp_path, edit)
    with pytest.raises(PackError) as info:
        load_packs(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and f"'{field}'" in msg


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: x\nslots: [a\n")
    with pytest.raises(PackError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_packs(tmp_path)
