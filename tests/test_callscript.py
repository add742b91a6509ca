from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.callscript import load_calls
from simulator.errors import CallFileError

GOOD = {
    "schema_version": 1, "call_id": "c1", "pack": "healthcare", "intent": "book", "seed": 1,
    "persona": {"name": "Ann Lee"}, "record_exists": True, "slots": {"name": "Ann Lee"},
    "turns": [{"index": 0, "kind": "opening", "text": "Hi"}],
    "expected_tool_calls": [{"name": "lookup", "arguments": {"name": "Ann Lee"}}],
    "expected_outcome": "completed",
}


def test_bad_line_is_named_with_file_line_and_field(tmp_path: Path) -> None:
    bad = dict(GOOD, turns=[{"index": 0, "kind": "opening"}])
    p = tmp_path / "calls.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(CallFileError) as exc:
        load_calls(p)
    msg = str(exc.value)
    assert f"{p}:3" in msg and "turns.0.text" in msg and "\n" not in msg


def test_invalid_json_and_unknown_version_are_one_line(tmp_path: Path) -> None:
    p = tmp_path / "calls.jsonl"
    p.write_text('{"schema_version": 1,\n')
    with pytest.raises(CallFileError, match=r"calls.jsonl:1: invalid JSON"):
        load_calls(p)
    p.write_text(json.dumps(dict(GOOD, schema_version=9)) + "\n")
    with pytest.raises(CallFileError, match="schema_version.*unsupported version 9"):
        load_calls(p)


def test_round_trip_is_byte_stable(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps(GOOD) + "\n")
    a = load_calls(p)[0].to_json()
    p.write_text(a + "\n")
    assert load_calls(p)[0].to_json() == a
