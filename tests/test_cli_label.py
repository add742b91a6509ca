"""``callsim run --label``: a label that cannot name a run in a table is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.cli import main


@pytest.mark.parametrize(("label", "says"), [
    ("   ", "--label: empty"),
    ("x" * 41, "--label: 41 characters; at most 40"),
], ids=["blank", "too-long"])
def test_bad_labels_exit_2_with_one_line(tmp_path: Path, label: str, says: str) -> None:
    res = CliRunner().invoke(main, ["run", "--target", "http://127.0.0.1:9/v1", "--count", "1",
                                    "--runs-dir", str(tmp_path), "--label", label])
    assert res.exit_code == 2, res.output
    assert says in res.output
    assert not list(tmp_path.iterdir())          # refused before a run was started
