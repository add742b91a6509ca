"""Waking audio senders on time: a frame clock with sub-millisecond deadlines.

An event loop's timers are millisecond timers: uvloop rounds a delay to the nearest
millisecond and reads its own clock once per loop pass, so a task sleeping until a 20 ms
frame deadline wakes anywhere from about 1 ms early to 1.5 ms late on an idle loop. For a
caller that must put a frame on the wire every 20 ms, that alone is the frame jitter.

:class:`FrameClock` keeps the event loop and gives it one more file descriptor: a Linux
``timerfd`` armed, in nanoseconds of ``CLOCK_MONOTONIC`` (the clock of
``time.perf_counter_ns``), for the earliest deadline any sender waits for. When it fires,
the clock calls, there and then, every sender whose deadline has come: a sender is a
callback that puts its frame on the wire, not a task woken to do so, so a frame does not
queue behind the task steps that woke in the same loop pass, and a frame costs no task
switch. Senders put their deadlines on a shared grid of :data:`SLOT_NS` (see
:func:`grid_start`), so one wake-up serves all the calls due in that slot and the wake-ups
per second stay bounded by the slots, not the calls; a new call takes the emptiest slot
(:class:`_Slots`).

Where there is no ``timerfd`` (not Linux), :func:`frame_clock` gives :class:`LoopTimers`:
the same interface on the loop's own timers.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import heapq
import inspect
import os
import sys
import time
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
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


class _Slots:
    """How many calls tick in each slot of a step, so a new call takes the emptiest.

    Phases drawn at random pile up: 150 calls over the 20 slots of a 20 ms step put 14 or
    more in some slot while others hold 2, and the last frame of a crowded slot waits for
    all the sends before it. Taking the emptiest slot (the seeded phase's own slot when it
    is among them, else the next such slot after it) keeps every slot within one call of
    the others."""

    def __init__(self) -> None:
        self._used: dict[int, list[int]] = {}  # step -> calls per slot

    def take(self, step_ns: int, phase_ns: int) -> int:
        """A phase (ns into the step, on the slot grid) for a call whose seeded phase is
        ``phase_ns``; give it back with :meth:`give_back`."""
        n = max(1, step_ns // SLOT_NS)
        used = self._used.setdefault(step_ns, [0] * n)
        want = (phase_ns % step_ns) // SLOT_NS % n
        least = min(used)
        slot = next(s % n for s in range(want, want + n) if used[s % n] == least)
        used[slot] += 1
        return slot * SLOT_NS

    def give_back(self, step_ns: int, phase_ns: int) -> None:
        used = self._used.get(step_ns)
        if used is not None:
            slot = phase_ns // SLOT_NS % len(used)
            used[slot] = max(0, used[slot] - 1)


class LoopTimers(_Slots):
    """The same interface on the event loop's own (millisecond) timers: used where there
    is no ``timerfd``."""

    def call_at(self, due_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at ``due_ns`` (``perf_counter_ns`` time), to the loop's
        millisecond."""
        delay = (due_ns - time.perf_counter_ns()) / 1e9
        asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class FrameClock(_Slots):
    """Sub-millisecond deadlines for one event loop (see the module's text)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        # the distinct deadlines due, and what is called at each (senders share a few:
        # their deadlines lie on the slot grid)
        self._heap: list[int] = []
        self._due: dict[int, list[Callable[[], None]]] = {}
        self._armed = 0  # the deadline the timer is set for; 0: none
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        loop.add_reader(fd, self._fire)
        # The clock lives as long as its loop (the loop holds it, as its reader; the clock
        # does not hold the loop): the timer is closed when the loop is collected.
        weakref.finalize(loop, os.close, fd)

    def call_at(self, due_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at ``due_ns`` (``perf_counter_ns`` time), straight from the
        clock's wake-up: not as a task step queued behind what else woke in that pass."""
        callbacks = self._due.get(due_ns)
        if callbacks is None:
            self._due[due_ns] = [callback]
            heapq.heappush(self._heap, due_ns)
            if not self._armed or due_ns < self._armed:
                self._arm(due_ns)
        else:
            callbacks.append(callback)

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
            for callback in self._due.pop(heapq.heappop(heap)):
                try:
                    callback()
                except Exception as exc:  # one sender's bug must not stop the others
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "frame clock callback failed", "exception": exc})
        if heap:
            self._arm(heap[0])
        else:
            self._armed = 0


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameClock | LoopTimers] = (
    weakref.WeakKeyDictionary())


def frame_clock() -> FrameClock | LoopTimers:
    """The running loop's frame clock (made on first use): a :class:`FrameClock`, or
    :class:`LoopTimers` where there is no ``timerfd``."""
    loop = asyncio.get_running_loop()
    clock = _CLOCKS.get(loop)
    if clock is None:
        try:
            if _LIBC is None:
                raise OSError("no timerfd")
            clock = FrameClock(loop)
        except (OSError, NotImplementedError, RuntimeError):
            clock = LoopTimers()
        _CLOCKS[loop] = clock
    return clock


def run_now(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run ``coro`` (a line's ``send_audio``) from a clock callback up to its first
    suspension: None when it finished there, which a send does unless the socket pushes
    back; else a task that finishes it. Its exceptions up to that point are raised here.
    Before it suspends it runs outside any task, as the first step of an eager task does
    (so it must not need ``asyncio.current_task()``, e.g. for ``asyncio.timeout``)."""
    if not inspect.iscoroutine(coro):  # an awaitable that is not a coroutine: just await it
        return asyncio.ensure_future(coro)
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    task = asyncio.ensure_future(_finish(coro, yielded))
    task.add_done_callback(lambda _: _cancel_if_suspended(coro))
    return task


def _cancel_if_suspended(coro: Coroutine[Any, Any, None]) -> None:
    """A task cancelled before its first step never enters :func:`_finish`: tell the
    coroutine it waited for, so its own ``except CancelledError``/``finally`` run."""
    if inspect.getcoroutinestate(coro) != inspect.CORO_SUSPENDED:
        return
    try:
        coro.throw(asyncio.CancelledError())
    except (asyncio.CancelledError, StopIteration):
        return
    except Exception as exc:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "a held-back send failed as it was cancelled", "exception": exc})
        return
    coro.close()  # it awaited again after the cancellation: stop it there


@types.coroutine
def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine that suspended on ``yielded``, run by a task (what ``await``
    would have done had a task run it from the start)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancelled: pass it in
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return
