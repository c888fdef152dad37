"""Waiting for a bot to be idle after its clock moved (the test kit's and the page's skip ahead).

A :class:`~qbot.clock.ManualClock` moved forward wakes what sleeps on it (a follow-up's timer,
a debounce); those tasks then post replies, which the emulator stores and may deliver on. `settle`
runs the event loop until all of that is over: a round in which no API call reached the emulator,
every hook (a scheduler running its due jobs) returned without doing work, and the emulator has
no delivery in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from qbot.emulator.core import Emulator

__all__ = ["settle"]

_TICKS = 5
"""Event-loop turns given to woken tasks before each check (a wake, a reply, its record)."""


async def settle(
    emulator: Emulator, hooks: Sequence[Callable[[], Awaitable[Any]]], rounds: int = 50
) -> None:
    """Run the loop until the emulator and ``hooks`` are quiet (at most ``rounds`` rounds)."""
    for _ in range(max(1, rounds)):
        before = len(emulator.calls)
        for _ in range(_TICKS):
            await asyncio.sleep(0)
        worked = False
        for hook in hooks:
            worked = bool(await hook()) or worked
        await emulator.drain()
        for _ in range(_TICKS):
            await asyncio.sleep(0)
        if not worked and len(emulator.calls) == before:
            return
