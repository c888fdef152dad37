"""The clock bots read: the wall clock, and one the emulator and tests move forward."""

from __future__ import annotations

import asyncio
import time

import pytest

from qbot import Bot
from qbot.clock import Clock, ManualClock, SystemClock


def test_system_clock_is_the_wall_clock() -> None:
    assert abs(SystemClock().time() - time.time()) < 1
    assert isinstance(SystemClock(), Clock)


def test_bot_uses_the_wall_clock_unless_given_one() -> None:
    assert isinstance(Bot().clock, SystemClock)
    clock = ManualClock(start=1_000_000.0)
    bot = Bot(clock=clock)
    assert bot.clock is clock
    assert bot.dispatcher.clock is clock


def test_a_frozen_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=1_000_000.0)
    assert clock.time() == 1_000_000.0
    assert clock.advance(hours=25) == 1_000_000.0 + 25 * 3600
    assert clock.advance(minutes=1, seconds=30) == 1_000_000.0 + 25 * 3600 + 90
    assert clock.offset == 25 * 3600 + 90
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_a_clock_refuses_a_step_that_is_not_a_number_and_keeps_its_time() -> None:
    clock = ManualClock(start=1_000_000.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            clock.advance(bad)
        with pytest.raises(ValueError, match="finite"):
            clock.advance(hours=bad)
    with pytest.raises(ValueError, match="finite"):
        ManualClock(start=float("nan"))
    assert clock.time() == 1_000_000.0


def test_a_running_clock_follows_real_time_plus_what_it_was_moved() -> None:
    clock = ManualClock(running=True)
    clock.advance(days=1)
    assert abs(clock.time() - (time.time() + 86400)) < 1


async def test_a_sleeper_wakes_when_the_clock_passes_its_deadline() -> None:
    clock = ManualClock(start=0.0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(3600)
        woke.append(clock.time())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.01)
    clock.advance(minutes=30)
    await asyncio.sleep(0.01)
    assert woke == []  # not due yet: still asleep
    clock.advance(minutes=31)
    await asyncio.wait_for(task, 1)
    assert woke == [61 * 60]


async def test_a_running_clock_also_wakes_sleepers_by_real_time() -> None:
    clock = ManualClock(running=True)
    await asyncio.wait_for(clock.sleep(0.05), 2)


def test_a_manual_clock_outlives_an_event_loop_that_left_a_sleeper() -> None:
    # A sleeper cancelled with its loop left the clock's wake event bound to that loop: the
    # next loop's sleeps raised RuntimeError ("bound to a different event loop") at once.
    clock = ManualClock(start=0.0)

    async def leave_a_sleeper() -> None:
        asyncio.create_task(clock.sleep(3600))  # noqa: RUF006 - asyncio.run cancels it
        await asyncio.sleep(0)

    async def sleep_and_advance() -> bool:
        task = asyncio.create_task(clock.sleep(60))
        await asyncio.sleep(0.01)
        asleep = not task.done()
        clock.advance(seconds=61)
        await asyncio.wait_for(task, 10)
        return asleep

    asyncio.run(leave_a_sleeper())
    assert asyncio.run(sleep_and_advance())
