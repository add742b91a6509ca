"""pytest plugin for mutation runs (``-p tests._fast_first``, set in ``[tool.mutmut]``).

- Leave out the tests marked ``mutation_skip``: slow ones whose smaller variant runs here
  instead (the full calibration, the fabricating agent and LLM judge over a few hundred
  calls), and ones that exercise the code only in child processes, which mutmut never
  selects for a mutant but would still run in its start-up. ``make test`` runs them all.
- Run the selected tests fastest first, by the durations mutmut recorded, so that a mutant
  stops at the first quick test that fails it (mutmut runs with ``-x``) instead of behind a
  slow one.
- Start every mutant's tests with empty caches. mutmut runs the tests once unmutated in its
  own process and forks each mutant's worker from it, so the worker inherits the
  memoised results of the unmutated code: a mutant in a function only reached through a
  cached one (the detail extractor, the phonetic index, a compiled persona pack) is never
  called, and survives whatever the tests check. Clearing the caches makes each mutant run as
  in a fresh process.
- Empty them before every test of mutmut's stats pass as well. That pass records which tests
  reach which function, in one process: a cached function is otherwise recorded only for
  the first test that filled its cache, and a mutant in it is then never run against the
  tests written for it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skipped = [item for item in items if item.get_closest_marker("mutation_skip")]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if not item.get_closest_marker("mutation_skip")]
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


#: Module-level memos that are not functools caches: (module, name) -> emptied like a cache.
#: A memo added to a mutated module belongs here.
MEMOS = {
    "simulator.personas.generator": ("_PLANS", "_TABLES"),
    "simulator.degradation.faults": ("_THRESHOLDS",),
    "simulator.degradation.asr_noise": ("_TOKENS",),
}


def clear_caches() -> int:
    """Empty every functools cache, module-level ``*_CACHE`` dict and listed memo of the
    loaded ``simulator`` modules; return how many were cleared."""
    cleared = 0
    for name, attrs in MEMOS.items():
        module = sys.modules.get(name)
        for attr in attrs if module is not None else ():
            getattr(module, attr).clear()
            cleared += 1
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "simulator" or name.startswith("simulator.")):
            continue
        for attr, value in list(vars(module).items()):
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
                cleared += 1
            elif attr.endswith("_CACHE") and isinstance(value, dict):
                value.clear()
                cleared += 1
    return cleared


def pytest_sessionstart(session: pytest.Session) -> None:
    clear_caches()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # mutmut names the mutant under test in this variable; "stats" is its recording pass.
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        clear_caches()
