"""Where a finished call is graded: on the run's event loop, or in a grading process.

Grading a call (tool arguments, refusal, the details its agent asserted, cost) takes a
millisecond or two of CPU. On the loop that paces calls and stamps bytes, that is a
millisecond or two every other call waits for, and calls started together end together:
a thousand paced calls finishing within a few seconds held the loop for a third of each
second, and every timestamp taken then was late. In a grading process at the lowest CPU
priority (Linux's SCHED_IDLE, else nice 19) the loop always gets the CPU first, on one core
as on many; grading catches up in the gaps. A call is stored once graded, so a run killed
while calls wait for their grades re-runs those calls on ``--resume`` (nothing stored is
lost).

The process is ``python -m simulator.driver.grader``, spoken to over its stdin and stdout
by the loop itself (length-prefixed pickles): no helper thread in the run's process
competes with the loop for the interpreter.

``--grading auto`` (the default) grades in a process when the run keeps many calls in flight
(:data:`AUTO_MIN_IN_FLIGHT`), else on the loop (a small run does not pay for the process's
start-up); ``loop`` and ``process`` choose. The grades are the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

from simulator.metrics.grading import grade_call
from simulator.results import CallOutcome

GRADING_MODES = ("auto", "loop", "process")
#: ``auto`` grades in a process from this many calls in flight (the run's concurrency, or
#: its open-loop cap or rate hint).
AUTO_MIN_IN_FLIGHT = 50
_LEN = struct.Struct("!I")
Graded = tuple[CallOutcome, dict[str, Any]]


class Grader:
    """Grades finished calls; :meth:`start` before the clock starts, :meth:`close` at the
    end of the run."""

    def __init__(self, mode: str, in_flight: int) -> None:
        if mode not in GRADING_MODES:
            raise ValueError(f"unknown grading mode {mode!r}")
        self.in_process = mode == "process" or (mode == "auto" and in_flight >= AUTO_MIN_IN_FLIGHT)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Graded]] = {}
        self._seq = 0
        self._broken = False
        self._closing = False

    @property
    def where(self) -> str:
        return "process" if self._proc is not None and not self._broken else "loop"

    async def start(self) -> None:
        """Start the grading process (it loads the graders while connections warm)."""
        if not self.in_process or self._proc is not None:
            return
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator.driver.grader",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())

    def pid(self) -> int | None:
        """The grading process's pid (None when grading on the loop)."""
        return None if self._proc is None or self._broken else self._proc.pid

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        try:
            while True:
                n = _LEN.unpack(await out.readexactly(_LEN.size))[0]
                seq, ok, value = pickle.loads(await out.readexactly(n))
                fut = self._pending.pop(seq, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError):
            pass
        self._broken_now()

    def _broken_now(self) -> None:
        if not self._broken and not self._closing:
            self._broken = True
            print("callsim: note: the grading process ended; grading on the run's loop "
                  "from here", file=sys.stderr, flush=True)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BrokenPipeError("the grading process ended"))
        self._pending.clear()

    async def grade(self, *args: Any, **kwargs: Any) -> Graded:
        """:func:`~simulator.metrics.grading.grade_call` with these arguments."""
        proc = self._proc
        if proc is None or self._broken or proc.stdin is None:
            return grade_call(*args, **kwargs)
        self._seq += 1
        seq = self._seq
        body = pickle.dumps((seq, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        fut: asyncio.Future[Graded] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut
        try:
            proc.stdin.write(_LEN.pack(len(body)) + body)
            return await fut
        except (BrokenPipeError, ConnectionError):
            self._pending.pop(seq, None)
            self._broken_now()
            return grade_call(*args, **kwargs)

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._closing = True
        if proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader


def _lowest_priority() -> None:
    """Run only on CPU time nobody else wants. Linux's SCHED_IDLE: any ordinary task that
    wakes (the run's loop, at its next frame) takes the CPU at once. At nice 19 the
    scheduler may first let the grader finish its time slice, a millisecond or more that
    every frame due then waits for. Elsewhere, nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError, AttributeError):
            os.nice(19)


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    """The grading process: frames in, graded calls (or the exception) out, until EOF."""
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        seq, args, kwargs = pickle.loads(inp.read(_LEN.unpack(head)[0]))
        reply: tuple[int, bool, Any]
        try:
            reply = (seq, True, grade_call(*args, **kwargs))
        except Exception as exc:  # the run's loop re-raises it where the call is graded
            reply = (seq, False, exc)
        body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LEN.pack(len(body)) + body)
        out.flush()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    _lowest_priority()
    _serve(sys.stdin.buffer, sys.stdout.buffer)
