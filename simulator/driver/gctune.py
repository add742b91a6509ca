"""Garbage-collector settings for a load run.

A streaming call allocates many short-lived objects (chunks, dicts, futures); with the
default thresholds CPython runs a full (generation 2) collection every few seconds at 1,000
calls, pausing the event loop for tens of milliseconds — measured: loop-lag p99 16-31 ms and
first-token error p99 47-65 ms at 1,000 calls, against 3.4 ms and 1.5 ms with this tuning
(``scripts/bench_driver.py capacity``). During a run the start-up heap is frozen out of the
collector's view and young collections run less often; both are restored afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

LOAD_THRESHOLDS = (50_000, 20, 1_000)
# How long another thread (the store's writer serialising a call) may hold the GIL while the
# event loop waits for it: 0.5 ms instead of CPython's 5 ms, or one JSON dump of a long
# call is a 5 ms hole in every call's frames and first-token stamps.
LOAD_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def load_gc() -> Iterator[None]:
    """Tune the collector for a load run (nests safely: only the outermost call acts)."""
    if getattr(load_gc, "_depth", 0):
        load_gc._depth += 1  # type: ignore[attr-defined]
        try:
            yield
        finally:
            load_gc._depth -= 1  # type: ignore[attr-defined]
        return
    old = gc.get_threshold()
    old_switch = sys.getswitchinterval()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*LOAD_THRESHOLDS)
    sys.setswitchinterval(LOAD_SWITCH_INTERVAL_S)
    load_gc._depth = 1  # type: ignore[attr-defined]
    try:
        yield
    finally:
        load_gc._depth = 0  # type: ignore[attr-defined]
        gc.set_threshold(*old)
        sys.setswitchinterval(old_switch)
        gc.unfreeze()
