"""pytest plugin for mutation runs (``-p tests._fast_first``, set in ``[tool.mutmut]``): run
the selected tests fastest first, by the durations mutmut recorded, so that a mutant stops at
the first quick test that fails it (mutmut runs with ``-x``) instead of behind a slow one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
