"""Where a finished call is graded: on the run's event loop, or in a grading process.

Grading a call (tool arguments, refusal, the details its agent asserted, cost) takes a
millisecond or two of CPU. On the loop that paces calls and stamps bytes, that is a
millisecond or two every other call waits for, and calls started together end together:
a thousand paced calls finishing within a few seconds held the loop for hundreds of
milliseconds a second, and every timestamp taken then was late. In a grading process at
the lowest CPU priority (nice 19) the loop always gets the CPU first, on one core as on
many; grading catches up in the gaps. A call is stored once graded, so a run killed while
calls wait for their grades re-runs those calls on ``--resume`` (nothing stored is lost).

``--grading auto`` (the default) grades in a process when the run keeps many calls in flight
(:data:`AUTO_MIN_IN_FLIGHT`), else on the loop (a small run does not pay for the process's
start-up); ``loop`` and ``process`` choose. The grades are the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from simulator.metrics.grading import grade_call
from simulator.results import CallOutcome

GRADING_MODES = ("auto", "loop", "process")
#: ``auto`` grades in a process from this many calls in flight (the run's concurrency, or
#: its open-loop cap or rate hint).
AUTO_MIN_IN_FLIGHT = 50


def _init() -> None:
    """In the grading process: lowest CPU priority; Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(19)


def _ready() -> int:
    return os.getpid()


class Grader:
    """Grades finished calls; :meth:`start` before the clock starts, :meth:`close` at the
    end of the run."""

    def __init__(self, mode: str, in_flight: int) -> None:
        if mode not in GRADING_MODES:
            raise ValueError(f"unknown grading mode {mode!r}")
        self.in_process = mode == "process" or (mode == "auto" and in_flight >= AUTO_MIN_IN_FLIGHT)
        self._pool: ProcessPoolExecutor | None = None
        self._pid: Any = None  # the grading process's pid, once it has started

    @property
    def where(self) -> str:
        return "process" if self._pool is not None else "loop"

    def start(self) -> None:
        """Start the grading process (not waited for: it loads while connections warm)."""
        if self.in_process and self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init)
            self._pid = self._pool.submit(_ready)
            self._pid.add_done_callback(lambda f: None if f.cancelled() else f.exception())

    async def pid(self) -> int | None:
        """The grading process's pid once it runs (None when grading on the loop)."""
        if self._pid is None or self._pool is None:
            return None
        return int(await asyncio.wrap_future(self._pid))

    async def grade(self, *args: Any, **kwargs: Any) -> tuple[CallOutcome, dict[str, Any]]:
        """:func:`~simulator.metrics.grading.grade_call` with these arguments."""
        pool = self._pool
        if pool is None:
            return grade_call(*args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, functools.partial(grade_call, *args, **kwargs))
        except BrokenProcessPool:
            # The process died (killed, out of memory): the run goes on, graded on the loop.
            if self._pool is pool:
                self._pool = None
                print("callsim: note: the grading process ended; grading on the run's loop "
                      "from here", file=sys.stderr, flush=True)
            return grade_call(*args, **kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
