"""The room leases a :class:`~qbot.runtime.Runtime` holds: renewed, released, refused.

A mixin of the runtime (the same object, split for size): the renewer extends the lease of every
room being worked on, the sweeper takes rooms whose replies a dead worker left pending, a room's
worker releases its lease when done, and a commit refused for a lapsed lease drops the room
unless a claim took it back meanwhile.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import structlog

from qbot import metrics
from qbot.errors import LeaseLostError, StorageError
from qbot.storage import room_lease_key

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher
    from qbot.inflight import Waiters
    from qbot.storage import InboxItem, Storage

__all__ = ["RoomLeases"]

log = structlog.get_logger("qbot.runtime")


class RoomLeases(ABC):
    """Lease keeping for the runtime's room workers (see :class:`~qbot.runtime.Runtime`)."""

    dispatcher: Dispatcher
    owner: str
    lease_ttl: float
    waiters: Waiters
    _tasks: dict[str, asyncio.Task[None]]
    _generation: dict[str, int]
    _lost: set[str]
    _lingering: dict[str, float]
    _retakes: dict[str, int]
    _reclaimed: set[str]
    _lock: asyncio.Lock
    _closing: bool

    @property
    def storage(self) -> Storage:
        """The bot's storage."""
        return self.dispatcher.storage

    @abstractmethod
    def _ensure_worker(self, room: str) -> None:
        """Start ``room``'s worker, if it has none (the runtime's)."""

    async def _release(self, room: str) -> None:
        try:
            await self.storage.lease_release(room_lease_key(room), self.owner)
        except StorageError as e:  # it expires on its own
            log.warning("runtime.release_failed", room_id=room, error=str(e))
            metrics.storage_failed("release", e)

    def _refused(
        self, item: InboxItem, error: LeaseLostError, retakes: int | None, reason: str
    ) -> bool:
        """The commit of ``item`` was refused: the room's lease is another's. Unless a claim
        took the room back meanwhile (Redis: its answer came first), the room is dropped. If
        one did, the queue is kept: the item is processed again (False) if that claim gave it
        again, else skipped (True: the owner in between processed it)."""
        room = item.room_id
        if self._retakes.get(room) == retakes:
            log.warning("runtime.lease_lost", room_id=room, reason=reason)
            self._lost.add(room)
            self.waiters.resolve(item.id, error=error)
            return True
        again = item.id in self._reclaimed
        log.info("runtime.lease_retaken", room_id=room, reason=reason, again=again)
        if not again:
            self.waiters.resolve(item.id, error=error)
            return True
        self.dispatcher.outbox.recheck(room)
        return False

    async def _renew(self) -> None:
        """Renew the lease of every room being worked on; raise the first storage error."""
        failure: StorageError | None = None
        for room in list(self._tasks):
            if room in self._lingering:
                # Its lease, set or renewed at most lease_ttl / 3 before the linger began,
                # outlives the linger (under lease_ttl / 2) without a renewal. A worker busy
                # with anything else (an item, or flushing a dead worker's pending replies
                # with an empty queue) is renewed.
                continue
            generation = self._generation.get(room)
            try:
                held = await self.storage.lease_renew(
                    room_lease_key(room), self.owner, self.lease_ttl
                )
            except StorageError as e:  # the other rooms are still renewed
                failure = failure or e
                continue
            if not held and room in self._tasks and self._generation.get(room) == generation:
                log.warning("runtime.lease_lost", room_id=room, reason="renewal refused")
                self._lost.add(room)
        if failure is not None:
            raise failure

    async def _sweep(self) -> None:
        """Take the rooms whose replies are pending with nobody working on them, and flush them."""
        outbox = self.dispatcher.outbox
        for room in await outbox.rooms_waiting():
            async with self._lock:
                if room in self._tasks or self._closing:
                    continue
                key = room_lease_key(room)
                if not await self.storage.lease_acquire(key, self.owner, self.lease_ttl):
                    continue  # its worker is alive and flushes it itself
                outbox.note_waiting([room])
                self._ensure_worker(room)
