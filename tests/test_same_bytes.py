"""`callsim generate` and `callsim degrade` write the same bytes for the same seed as they
did before the code was reorganised: the hashes below were taken from the commands' output
before the move (and must only change with a deliberate change to generation or noise)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

CALLSIM = [sys.executable, "-m", "simulator"]

GENERATED = "b8d41a3176f1d8dd2a94cebe0a5cfdc335034eb1feead3849c745ae9d2b96b3e"
DEGRADED = {
    "clean": "6b2d8a3abbe61f6a0b30c7075ea179196ee80882481363428e993ed3b9efb929",
    "typical_call": "ec6bd606701d9e848cc22f06545253664ed691093bf07686cb4301415f746937",
    "noisy": "878cc71eacbd5b9bc434b01f85d6476e99f27ec45b6788a506dcb95e542a1dfe",
    "hostile": "8288ede42e4d19e65afde526bbdad177e964931af08a74116abdcbd596c7361c",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bytes") / "calls.jsonl"
    subprocess.run([*CALLSIM, "generate", "--count", "40", "--seed", "1234", "-o", str(out)],
                   check=True, capture_output=True)
    return out


def test_generate_writes_the_recorded_bytes(generated: Path) -> None:
    assert _sha(generated) == GENERATED


@pytest.mark.parametrize("profile", sorted(DEGRADED), ids=sorted(DEGRADED))
def test_degrade_writes_the_recorded_bytes(generated: Path, tmp_path: Path, profile: str) -> None:
    out = tmp_path / f"{profile}.jsonl"
    subprocess.run([*CALLSIM, "degrade", str(generated), "--profile", profile, "--seed", "99",
                    "-o", str(out)], check=True, capture_output=True)
    assert _sha(out) == DEGRADED[profile]
