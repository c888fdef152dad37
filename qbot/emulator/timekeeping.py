"""Waiting for a bot to be idle after its clock moved (the test kit's and the page's skip ahead).

A :class:`~qbot.clock.ManualClock` moved forward wakes what sleeps on it (a follow-up's timer,
a debounce); those tasks then post replies, which the emulator stores and may deliver on. `settle`
runs the event loop until all of that is over: the tasks the clock woke have finished or sleep
again (`ManualClock.settled`), every hook (a scheduler running its due jobs) returned without
doing work, the emulator has no delivery in flight, and no API call reached it meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from qbot.clock import ManualClock
from qbot.emulator.core import Emulator

__all__ = ["settle"]

_TICKS = 5
"""Event-loop turns given to woken tasks before each check (a wake, a reply, its record)."""


async def settle(
    emulator: Emulator,
    hooks: Sequence[Callable[[], Awaitable[Any]]],
    rounds: int = 50,
    clock: ManualClock | None = None,
) -> None:
    """Run the loop until the emulator and ``hooks`` are quiet (at most ``rounds`` rounds).

    With ``clock``, each round first waits for the tasks it woke (`ManualClock.settled`).
    """
    for _ in range(max(1, rounds)):
        before = len(emulator.calls)
        for _ in range(_TICKS):
            await asyncio.sleep(0)
        if clock is not None:
            await clock.settled()
        worked = False
        for hook in hooks:
            worked = bool(await hook()) or worked
        await emulator.drain()
        for _ in range(_TICKS):
            await asyncio.sleep(0)
        if not worked and len(emulator.calls) == before:
            return
