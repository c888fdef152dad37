"""What a runtime keeps about the updates in flight in this process.

- :class:`Waiters`: the callers of :meth:`Runtime.run` (``bot.feed_update``: tests, shell,
  emulator) waiting for their update's :class:`~qbot.handlers.Outcome`, by inbox item id; a
  webhook's item has none.
- :class:`ParsedUpdates`: the updates this process accepted, by room and item id, so the worker
  that claims one here need not parse the stored body again. Bounded: items another replica
  claims are never looked up here, and a miss only costs a parse.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from qbot.handlers import Outcome
from qbot.models.webhook import Update

__all__ = ["PARSED_CACHE", "ParsedUpdates", "Waiters"]

PARSED_CACHE = 4096


class Waiters:
    """Futures given an update's outcome (or error) once its item is processed here."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Outcome]] = {}

    def expect(self, item_id: str) -> asyncio.Future[Outcome]:
        """A future for ``item_id``'s outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._futures[item_id] = future
        return future

    def add(self, item_id: str, future: asyncio.Future[Outcome]) -> None:
        """Give ``future`` the outcome of ``item_id``."""
        self._futures[item_id] = future

    def resolve(
        self, item_id: str, outcome: Outcome | None = None, *, error: BaseException | None = None
    ) -> None:
        """Hand the waiter of ``item_id`` its outcome or error (no-op when none waits)."""
        future = self._futures.pop(item_id, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome or Outcome())

    def fail_all(self, error: BaseException) -> None:
        """Every waiter left gets ``error`` (the runtime stopped)."""
        for item_id in list(self._futures):
            self.resolve(item_id, error=error)


class ParsedUpdates:
    """The last :data:`PARSED_CACHE` updates accepted here, by ``(room, item id)``."""

    def __init__(self, size: int = PARSED_CACHE) -> None:
        self._size = size
        self._updates: OrderedDict[tuple[str, str], Update] = OrderedDict()

    def keep(self, room: str, item_id: str, update: Update) -> None:
        self._updates[(room, item_id)] = update
        if len(self._updates) > self._size:
            self._updates.popitem(last=False)

    def peek(self, room: str, item_id: str) -> Update | None:
        """The update stored as ``item_id``, left in place (None when not kept here)."""
        return self._updates.get((room, item_id))

    def take(self, room: str, item_id: str) -> Update | None:
        """The update stored as ``item_id``, once (None when not kept here)."""
        return self._updates.pop((room, item_id), None)
