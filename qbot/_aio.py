"""Small asyncio helpers shared by qbot's background work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["LoopEvent", "Shared", "cancel_and_wait", "first_done", "loop_event"]

T = TypeVar("T")
LoopEvent = tuple[asyncio.AbstractEventLoop, asyncio.Event]
"""An event with the loop it was made in: an :class:`asyncio.Event` serves one loop only."""

AGAIN = 0.1
"""Seconds a cancelled task has to end before it is cancelled again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again those that go on.

    A task can miss its cancellation: on Python 3.11 ``asyncio.wait_for`` returns the awaited
    result instead of raising when the cancel comes as that result arrives (CPython gh-86296,
    fixed in 3.12), and libraries call it (redis-py does on every command), so a loop cancelled
    at that moment runs on as if nothing was asked. One still running after :data:`AGAIN`
    seconds is cancelled again, until it ends. As ``gather(..., return_exceptions=True)``, what
    a task raised counts as seen (asyncio logs no "exception was never retrieved" for it); the
    caller can still read it from the task.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=AGAIN)
    for task in tasks:
        if not task.cancelled():
            task.exception()


def loop_event(held: LoopEvent | None) -> LoopEvent:
    """``held`` if it was made in the running loop, else a new event for this loop.

    An object that outlives its event loop (a module's bot run by one ``asyncio.run`` after
    another, a test suite) must not wait on an event from the old loop: the wait raises at once
    and a loop waiting on it spins.
    """
    loop = asyncio.get_running_loop()
    if held is None or held[0] is not loop:
        return loop, asyncio.Event()
    return held


async def first_done(*aws: Awaitable[Any]) -> None:
    """Wait until the first of ``aws`` is done; cancel the others and wait for them to end."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(tasks)


class Shared(Generic[T]):
    """One run of a coroutine that concurrent callers all wait for (a bot's start).

    A caller cancelled while it waits stops waiting; the run goes on for the others (awaiting
    the task itself would cancel it, and every other caller would get a ``CancelledError`` it
    was never sent). When the last caller waiting is cancelled, the run is cancelled too, and
    waited for: nothing is left running that nobody waits for. A run that ended (done, failed
    or cancelled) is forgotten: the next call starts a new one. A call that comes while a
    cancelled run winds down waits for it to end, then has its result, or a new run if it ended
    cancelled (joining it would give the caller a ``CancelledError`` it was never sent).
    """

    def __init__(self) -> None:
        self._task: asyncio.Future[T] | None = None
        self._ending: asyncio.Future[T] | None = None  # a run being cancelled, not ended yet
        self._waiting = 0

    async def run(self, start: Callable[[], Awaitable[T]]) -> T:
        """Join the run in progress, or begin one with ``start()``; its result."""
        while self._task is None and self._ending is not None:
            ending = self._ending
            await asyncio.wait([ending])
            if self._ending is ending:
                self._ending = None
            if not ending.cancelled():
                return ending.result()
        if self._task is None:
            self._task = asyncio.ensure_future(start())
        task = self._task
        self._waiting += 1
        try:
            return await asyncio.shield(task)
        finally:
            self._waiting -= 1
            if not self._waiting and not task.done():
                self._task, self._ending = None, task
                try:
                    await cancel_and_wait([task])
                finally:
                    if self._ending is task and task.done():
                        self._ending = None
            if task.done() and self._task is task:
                self._task = None
