from __future__ import annotations

import pytest

from simulator.personas.pack import Pack, load_packs


@pytest.fixture(scope="session")
def packs() -> dict[str, Pack]:
    return load_packs()
