"""The time a bot sees: the wall clock in production, a clock you move in the emulator and tests.

Everything in qbot that depends on the time of day or on time passing (WhatsApp's 24-hour
window, follow-ups, office hours, debounce) reads ``bot.clock`` instead of :func:`time.time`, and
waits with ``await bot.clock.sleep(...)`` instead of :func:`asyncio.sleep`. A
:class:`ManualClock` lets the emulator page and the test kit move time forward
(``chat.advance(hours=25)``): what waits on it wakes as if those hours had passed.

```python
from qbot.clock import ManualClock

clock = ManualClock()          # frozen at now; ManualClock(running=True) also follows real time
clock.advance(hours=25)        # sleepers whose deadline passed wake up
```
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from qbot._aio import LoopEvent, loop_event

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What qbot asks of a clock: seconds since the epoch, and a sleep that follows them."""

    def time(self) -> float:
        """Seconds since the epoch (UTC), like :func:`time.time`."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The wall clock: :func:`time.time` and :func:`asyncio.sleep`."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves when told to: the emulator's and the test kit's.

    Args:
        start: seconds since the epoch to start at (default: now).
        running: also follow real time (the emulator's page: time passes, and "skip ahead"
            adds to it); frozen otherwise (tests: nothing changes until :meth:`advance`).
    """

    def __init__(self, start: float | None = None, *, running: bool = False) -> None:
        self._base = time.time() if start is None else float(start)
        if not math.isfinite(self._base):
            raise ValueError(f"a clock must start at a finite time, got {start!r}")
        self._running = running
        self._started = time.monotonic()
        self._offset = 0.0
        self._moved: LoopEvent | None = None  # the event sleepers in the running loop wait on
        self._awake: set[asyncio.Task[Any]] = set()  # woke from a sleep, not asleep again yet

    def time(self) -> float:
        elapsed = time.monotonic() - self._started if self._running else 0.0
        return self._base + self._offset + elapsed

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    @property
    def running(self) -> bool:
        """Whether this clock also follows real time (else it is frozen between advances)."""
        return self._running

    @property
    def offset(self) -> float:
        """Seconds this clock has been moved forward in all."""
        return self._offset

    def advance(
        self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0, days: float = 0.0
    ) -> float:
        """Move forward; whatever sleeps on this clock and is now due wakes up.

        Returns the new time. Raises :class:`ValueError` for a negative step: time does not
        go back.
        """
        step = seconds + minutes * 60 + hours * 3600 + days * 86400
        if not math.isfinite(step):  # NaN would pass `step < 0` and freeze time at NaN
            raise ValueError(f"a clock moves by a finite step, got {step!r} s")
        if step < 0:
            raise ValueError(f"a clock only moves forward (asked to move {step:g} s)")
        self._offset += step
        self._wake()
        return self.time()

    def _wake(self) -> None:
        if self._moved is not None and not self._moved[0].is_closed():
            self._moved[1].set()
        self._moved = None

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._awake.discard(task)
        try:
            await self._sleep(seconds)
        finally:
            if task is not None and not task.done():
                self._awake.add(task)
                task.add_done_callback(self._awake.discard)

    async def _sleep(self, seconds: float) -> None:
        deadline = self.time() + max(0.0, seconds)
        while True:
            left = deadline - self.time()
            if left <= 0:
                return
            self._moved = loop_event(self._moved)
            moved = self._moved[1]
            timeout = left if self._running else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: it can lose a cancel on 3.11
                    await moved.wait()

    async def settled(self, timeout: float = 30.0) -> bool:  # noqa: ASYNC109 - a bound, not a deadline the caller races
        """Wait until every task that woke from a sleep on this clock has finished or sleeps
        on it again (what an :meth:`advance` set off is over).

        Returns:
            False when some were still busy after ``timeout`` real seconds (waiting on
            something else than this clock), True otherwise.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        current = asyncio.current_task()
        while True:
            await asyncio.sleep(0)
            busy = [t for t in self._awake if t is not current and not t.done()]
            if not busy:
                return True
            left = until - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(busy, timeout=min(left, 0.05))

    def __repr__(self) -> str:
        mode = "running" if self._running else "frozen"
        return f"ManualClock({self.now().isoformat()}, {mode}, moved {self._offset:g} s)"
