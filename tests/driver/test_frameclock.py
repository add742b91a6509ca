"""The frame clock: audio senders' deadlines on a shared slot grid, released in order and
never early (tests of order and bounds, not of timing precision)."""

from __future__ import annotations

import asyncio
import time

import pytest

from simulator.driver import frameclock
from simulator.driver.frameclock import SLOT_NS, frame_clock, grid_start

STEP = 20_000_000


@pytest.mark.parametrize("now", [0, 1, 19_999_999, 123_456_789_012, 5 * STEP])
@pytest.mark.parametrize("phase", [0, 1, SLOT_NS - 1, SLOT_NS, 7_654_321, STEP - 1, 3 * STEP + 5])
def test_a_calls_first_deadline_is_the_next_tick_of_its_phase_on_the_grid(now: int,
                                                                         phase: int) -> None:
    t = grid_start(now, STEP, phase)
    assert now <= t < now + STEP
    assert t % SLOT_NS == 0  # calls in the same slot share one wake-up
    assert t % STEP == (phase % STEP) // SLOT_NS * SLOT_NS  # its own phase, rounded down


def test_calls_with_phases_in_one_slot_fall_due_together_and_others_apart() -> None:
    now = 987_654_321
    a, b, c = (grid_start(now, STEP, p) for p in (2 * SLOT_NS + SLOT_NS // 10, 3 * SLOT_NS - 1,
                                               3 * SLOT_NS + SLOT_NS // 10))
    assert a == b != c and (c - a) % STEP == SLOT_NS


def test_callbacks_run_in_deadline_order_and_never_before_their_deadline() -> None:
    if frameclock._LIBC is None:
        pytest.skip("no timerfd here: senders use the loop's timers")

    async def go() -> list[tuple[int, int, int]]:
        clock = frame_clock()
        assert isinstance(clock, frameclock.FrameClock) and frame_clock() is clock  # one a loop
        now = time.perf_counter_ns()
        dues = [now + d for d in (9_000_000, 1_000_000, 5_000_000, 3_000_000, 1_000_000)]
        woke: list[tuple[int, int, int]] = []
        done = asyncio.get_running_loop().create_future()

        def callback(i: int, due: int) -> None:
            woke.append((due, i, time.perf_counter_ns()))
            if len(woke) == len(dues):
                done.set_result(None)

        def broken() -> None:
            raise RuntimeError("a sender's bug")

        clock.call_at(now + 2_000_000, broken)  # reported; the others still run
        for i, d in enumerate(dues):
            clock.call_at(d, lambda i=i, d=d: callback(i, d))
        await asyncio.wait_for(done, 5)
        return woke

    woke = asyncio.run(go())
    assert [d for d, _, _ in woke] == sorted(d for d, _, _ in woke)
    assert all(t >= due - 20_000 for due, _, t in woke)


def test_a_new_call_takes_the_emptiest_slot_starting_from_its_seeded_one() -> None:
    slots = frameclock._Slots()
    n = STEP // SLOT_NS
    # 150 calls whose seeded phases all fall in one slot still spread over every slot
    phases = [slots.take(STEP, 3 * SLOT_NS + 17) for _ in range(150)]
    per_slot = [phases.count(s * SLOT_NS) for s in range(n)]
    assert max(per_slot) - min(per_slot) <= 1
    assert phases[:3] == [3 * SLOT_NS, 4 * SLOT_NS, 5 * SLOT_NS]
    # a call that ends frees its slot, and the next call takes it
    emptiest = min(range(n), key=lambda s: (per_slot[s], s))
    slots.give_back(STEP, emptiest * SLOT_NS)
    assert slots.take(STEP, 0) == emptiest * SLOT_NS
    # each step has its own slots
    assert slots.take(100_000_000, 7 * SLOT_NS) == 7 * SLOT_NS


def test_a_send_runs_at_once_and_one_the_socket_holds_back_finishes_in_a_task() -> None:
    async def go() -> tuple[list[str], list[str]]:
        log: list[str] = []
        release = asyncio.get_running_loop().create_future()

        async def quick() -> None:
            log.append("quick")

        async def held() -> None:
            log.append("held: written")
            await release  # a full socket buffer: drain
            log.append("held: drained")

        async def failing() -> None:
            raise ConnectionResetError("peer reset")

        assert frameclock.run_now(quick()) is None and log == ["quick"]
        pending = frameclock.run_now(held())
        assert pending is not None and log[-1] == "held: written" and not pending.done()
        release.set_result(None)
        await asyncio.wait_for(pending, 5)
        with pytest.raises(ConnectionResetError):
            frameclock.run_now(failing())
        cancelled_log: list[str] = []

        async def stuck() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled_log.append("cancelled")
                raise

        stuck_task = frameclock.run_now(stuck())
        assert stuck_task is not None
        stuck_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck_task
        return log, cancelled_log

    log, cancelled = asyncio.run(go())
    assert log == ["quick", "held: written", "held: drained"]
    assert cancelled == ["cancelled"]


def test_without_a_timerfd_senders_use_the_loops_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameclock, "_LIBC", None)

    async def go() -> tuple[object, int, int]:
        clock = frame_clock()
        due = time.perf_counter_ns() + 3_000_000
        done = asyncio.get_running_loop().create_future()
        clock.call_at(due, lambda: done.set_result(time.perf_counter_ns()))
        return clock, due, await asyncio.wait_for(done, 5)

    clock, due, t = asyncio.run(go())
    assert isinstance(clock, frameclock.LoopTimers)
    assert t >= due - 1_500_000  # the loop's timers: to its millisecond
