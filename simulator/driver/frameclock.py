"""Waking audio senders on time: a frame clock with sub-millisecond deadlines.

An event loop's timers are millisecond timers: uvloop rounds a delay to the nearest
millisecond and reads its own clock once per loop pass, so a task sleeping until a 20 ms
frame deadline wakes anywhere from about 1 ms early to 1.5 ms late on an idle loop. For a
caller that must put a frame on the wire every 20 ms, that alone is the frame jitter.

:class:`FrameClock` keeps the event loop and gives it one more file descriptor: a Linux
``timerfd`` armed, in nanoseconds of ``CLOCK_MONOTONIC`` (the clock of
``time.perf_counter_ns``), for the earliest deadline any sender waits for. When it fires,
the loop releases every waiter whose deadline has come. Senders put their deadlines on a
shared grid of :data:`SLOT_NS` (see :func:`grid_start`), so one wake-up releases all the
calls due in that slot and the wake-ups per second stay bounded by the slots, not the
calls.

Where there is no ``timerfd`` (not Linux), :func:`frame_clock` returns None and senders
sleep on the loop's own timers, as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import heapq
import os
import sys
import time
import weakref
from typing import Any

#: Frame deadlines fall on this grid (ns): calls due in the same millisecond share one
#: wake-up of the clock, and are sent in turn, tens of microseconds apart. A finer grid
#: wakes both ends more often: at half a millisecond, 150 Twilio calls cost the caller and
#: the agent about 8 points more CPU each (docs/benchmarks.md).
SLOT_NS = 1_000_000
_EARLY_NS = 20_000  # release a waiter this close to its deadline rather than re-arm

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                        ctypes.c_void_p]
    settime.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def grid_start(now_ns: int, step_ns: int, phase_ns: int) -> int:
    """The first deadline at or after ``now_ns`` of a frame clock ticking every ``step_ns``
    at ``phase_ns`` into each step (phase rounded down to the slot grid). All calls' clocks
    share one origin, so deadlines of different calls coincide to the slot."""
    phase = (phase_ns % step_ns) // SLOT_NS * SLOT_NS
    t = now_ns - now_ns % step_ns + phase
    return t if t >= now_ns else t + step_ns


class FrameClock:
    """Sub-millisecond deadlines for one event loop (see the module's text)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        # the distinct deadlines waited for, and who waits for each (senders share a few:
        # their deadlines lie on the slot grid)
        self._heap: list[int] = []
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._armed = 0  # the deadline the timer is set for; 0: none
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        loop.add_reader(fd, self._fire)
        # The clock lives as long as its loop (the loop holds it, as its reader; the clock
        # does not hold the loop): the timer is closed when the loop is collected.
        weakref.finalize(loop, os.close, fd)

    def wait_until(self, due_ns: int) -> asyncio.Future[None]:
        """A future that completes at ``due_ns`` (``perf_counter_ns`` time)."""
        fut = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(due_ns)
        if waiters is None:
            self._waiters[due_ns] = [fut]
            heapq.heappush(self._heap, due_ns)
            if not self._armed or due_ns < self._armed:
                self._arm(due_ns)
        else:
            waiters.append(fut)
        return fut

    def _arm(self, due_ns: int) -> None:
        self._armed = due_ns
        v = self._spec.it_value
        v.tv_sec, v.tv_nsec = divmod(due_ns, 1_000_000_000)
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass
        heap = self._heap
        limit = time.perf_counter_ns() + _EARLY_NS
        while heap and heap[0] <= limit:
            for fut in self._waiters.pop(heapq.heappop(heap)):
                if not fut.done():  # a sender cancelled while it waited
                    fut.set_result(None)
        if heap:
            self._arm(heap[0])
        else:
            self._armed = 0


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameClock] = (
    weakref.WeakKeyDictionary())


def frame_clock() -> FrameClock | None:
    """The running loop's frame clock (made on first use), or None where there is no
    ``timerfd``: then sleep on the loop's timers."""
    if _LIBC is None:
        return None
    loop = asyncio.get_running_loop()
    clock = _CLOCKS.get(loop)
    if clock is None:
        try:
            clock = _CLOCKS[loop] = FrameClock(loop)
        except (OSError, NotImplementedError, RuntimeError):
            return None
    return clock
