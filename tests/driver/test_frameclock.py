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


def test_waiters_are_released_in_deadline_order_and_never_before_their_deadline() -> None:
    if frameclock._LIBC is None:
        pytest.skip("no timerfd here: senders use the loop's timers")

    async def go() -> list[tuple[int, int, int]]:
        clock = frame_clock()
        assert clock is not None and frame_clock() is clock  # one per loop
        now = time.perf_counter_ns()
        dues = [now + d for d in (9_000_000, 1_000_000, 5_000_000, 3_000_000, 1_000_000)]
        woke: list[tuple[int, int, int]] = []

        async def waiter(i: int, due: int) -> None:
            await clock.wait_until(due)
            woke.append((due, i, time.perf_counter_ns()))

        cancelled = asyncio.ensure_future(clock.wait_until(now + 2_000_000))
        tasks = [asyncio.create_task(waiter(i, d)) for i, d in enumerate(dues)]
        await asyncio.sleep(0)
        cancelled.cancel()  # a sender stopped while it waited: the others still wake
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return woke

    woke = asyncio.run(go())
    assert [d for d, _, _ in woke] == sorted(d for d, _, _ in woke)
    assert all(t >= due - 20_000 for due, _, t in woke)


def test_without_a_timerfd_senders_sleep_on_the_loops_timers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameclock, "_LIBC", None)

    async def go() -> object:
        return frame_clock()

    assert asyncio.run(go()) is None
