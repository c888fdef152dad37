"""In-process storage: fast, for tests and ``qbot shell``; everything is lost on exit.

Every method runs without awaiting in between, so each is atomic under asyncio. Values are kept
as JSON text, so what you read back is a copy, exactly as with the durable backends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from qbot._aio import LoopEvent, loop_event
from qbot.storage.base import ReplyRow, StateRow, Storage, check_ttl, lease_lost
from qbot.storage.keys import room_lease_key
from qbot.storage.memory_schedule import MemorySchedules
from qbot.storage.records import (
    DEFAULT_OUTBOX_RETENTION,
    Claim,
    Clock,
    Handoff,
    InboxItem,
    OutboxItem,
    OutboxStatus,
    loads,
)

_SWEEP_EVERY = 60.0


@dataclass(slots=True)
class _Queued:
    id: str
    payload: str
    received_at: float
    delivered_to: str | None = None


@dataclass(slots=True)
class _Reply:
    room_id: str
    payload: str
    status: OutboxStatus
    created_at: float
    done_at: float = 0.0


class MemoryStorage(MemorySchedules, Storage):
    """Storage in this process's memory (``memory://``).

    Args:
        clock: time source for every expiry; tests pass a controllable one.
        outbox_retention: seconds a sent or failed reply is remembered.
    """

    def __init__(
        self, *, clock: Clock | None = None, outbox_retention: float = DEFAULT_OUTBOX_RETENTION
    ) -> None:
        super().__init__(clock=clock)
        self._retention = check_ttl(outbox_retention, "outbox_retention")
        self._dedupe: dict[str, float] = {}
        self._state: dict[str, tuple[str, float | None]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        # Insertion order is the order rooms got their oldest pending item: fair and in order.
        self._rooms: dict[str, list[_Queued]] = {}
        self._ids = itertools.count(1)
        self._replies: dict[str, _Reply] = {}
        self._pending: dict[str, None] = {}
        self._done: dict[str, float] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._arrived: LoopEvent | None = None  # see _arrival
        self._next_sweep = 0.0

    def _sweep(self, now: float) -> None:
        # Expired records are ignored on read; this only bounds memory for idle keys.
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        self._dedupe = {k: t for k, t in self._dedupe.items() if t > now}
        self._state = {k: v for k, v in self._state.items() if v[1] is None or v[1] > now}
        self._leases = {k: v for k, v in self._leases.items() if v[1] > now}

    @property
    def durable(self) -> bool:
        """False: everything is lost when the process exits."""
        return False

    # -- dedupe --------------------------------------------------------------------------------

    def _claim(self, key: str, ttl: float, now: float) -> bool:
        expires = self._dedupe.get(key)
        if expires is not None and expires > now:
            return False
        self._dedupe[key] = now + ttl
        return True

    # -- state ---------------------------------------------------------------------------------

    def _live_state(self, key: str, now: float) -> str | None:
        found = self._state.get(key)
        if found is None or (found[1] is not None and found[1] <= now):
            return None
        return found[0]

    async def _do_get_state(self, key: str) -> str | None:
        return self._live_state(key, self._clock())

    async def _do_commit(
        self,
        owner: str,
        ack: Sequence[InboxItem],
        states: Sequence[StateRow],
        replies: Sequence[ReplyRow],
    ) -> None:
        now = self._clock()
        for item in ack:
            holder = self._holder(room_lease_key(item.room_id), now)
            if holder != owner:
                raise lease_lost(owner, item.room_id, holder)
        for key, text, ttl in states:
            if text is None:
                self._state.pop(key, None)
            else:
                self._state[key] = (text, None if ttl is None else now + ttl)
        self._forget_done(now)
        for item_id, room, text, status in replies:
            found = self._replies.get(item_id)
            if found is None:
                self._replies[item_id] = _Reply(room, text, "pending", now)
                self._pending[item_id] = None
            if status != "pending":
                self._mark(item_id, cast("Literal['sent', 'failed']", status), now)
        for item in ack:
            queue = self._rooms.get(item.room_id, [])
            queue[:] = [q for q in queue if q.id != item.id]
            if not queue:
                self._rooms.pop(item.room_id, None)

    def _forget_done(self, now: float) -> None:
        # _done is ordered by marking time, so expired records are at its front.
        done = self._done
        while done:
            item_id = next(iter(done))
            if done[item_id] + self._retention > now:
                return
            del done[item_id]
            self._replies.pop(item_id, None)

    async def _do_load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str]
    ) -> tuple[Handoff | None, list[str | bytes | None], list[OutboxItem | None]]:
        now = self._clock()
        states: list[str | bytes | None] = []
        for key in keys:
            found = self._state.get(key)
            live = found is not None and (found[1] is None or found[1] > now)
            states.append(found[0] if found is not None and live else None)
        self._forget_done(now)
        replies: list[OutboxItem | None] = []
        for item_id in outbox_ids:
            r = self._replies.get(item_id)
            replies.append(None if r is None else self._reply(item_id, r))
        return self._live_handoff(room_id, now), states, replies

    # -- leases --------------------------------------------------------------------------------

    def _holder(self, key: str, now: float) -> str | None:
        found = self._leases.get(key)
        if found is None or found[1] <= now:
            return None
        return found[0]

    async def _do_lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        if self._holder(key, now) not in (None, owner):
            return False
        self._leases[key] = (owner, now + ttl)
        return True

    async def _do_lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        if self._holder(key, now) != owner:
            return False
        self._leases[key] = (owner, now + ttl)
        return True

    async def _do_lease_release(self, key: str, owner: str) -> bool:
        if self._holder(key, self._clock()) != owner:
            return False
        del self._leases[key]
        return True

    # -- inbox ---------------------------------------------------------------------------------

    async def _do_inbox_put(
        self, room_id: str, text: str, dedupe_key: str | None, dedupe_ttl: float
    ) -> InboxItem | None:
        now = self._clock()
        self._sweep(now)
        if dedupe_key is not None and not self._claim(dedupe_key, dedupe_ttl, now):
            return None
        queued = _Queued(str(next(self._ids)), text, now)
        self._rooms.setdefault(room_id, []).append(queued)
        self._arrival().set()
        return InboxItem.stored(queued.id, room_id, text, now)

    async def _do_inbox_put_held(
        self,
        room_id: str,
        text: str,
        dedupe_key: str | None,
        dedupe_ttl: float,
        owner: str,
        lease_ttl: float,
    ) -> tuple[InboxItem | None, bool]:
        now = self._clock()
        key = room_lease_key(room_id)
        queue = self._rooms.get(room_id, [])
        if self._holder(key, now) != owner or any(q.delivered_to is None for q in queue):
            return await self._do_inbox_put(room_id, text, dedupe_key, dedupe_ttl), False
        self._sweep(now)
        if dedupe_key is not None and not self._claim(dedupe_key, dedupe_ttl, now):
            return None, False
        queued = _Queued(str(next(self._ids)), text, now)
        queued.delivered_to = owner
        self._rooms.setdefault(room_id, []).append(queued)
        self._leases[key] = (owner, now + lease_ttl)
        return InboxItem.stored(queued.id, room_id, text, now), True

    async def _do_inbox_claim(self, owner: str, lease_ttl: float, limit: int) -> Claim:
        now = self._clock()
        out: list[InboxItem] = []
        rooms: list[str] = []
        redelivered: set[str] = set()
        for room_id, queue in self._rooms.items():
            if len(out) >= limit:
                break
            key = room_lease_key(room_id)
            holder = self._holder(key, now)
            if holder is None:  # newly taken: everything unacked is ours to redo
                for q in queue:
                    if q.delivered_to is not None:
                        redelivered.add(room_id)
                    q.delivered_to = None
            elif holder != owner:
                continue
            fresh = [q for q in queue if q.delivered_to is None][: limit - len(out)]
            if not fresh:
                continue
            self._leases[key] = (owner, now + lease_ttl)
            rooms.append(room_id)
            for q in fresh:
                q.delivered_to = owner
                out.append(InboxItem.stored(q.id, room_id, q.payload, q.received_at))
        again = frozenset(room for room in rooms if room in redelivered)
        if not self._pending:
            return Claim(out, redelivered=again)
        waiting = {self._replies[item_id].room_id for item_id in self._pending}
        return Claim(out, frozenset(room for room in rooms if room in waiting), again)

    def _arrival(self) -> asyncio.Event:
        """What wakes :meth:`inbox_wait` on a put, made anew in each event loop it serves."""
        self._arrived = loop_event(self._arrived)
        return self._arrived[1]

    async def _do_inbox_wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can hang when cancelled here.
        try:
            async with asyncio.timeout(seconds):
                await self._arrival().wait()
        except TimeoutError:
            return
        self._arrival().clear()

    async def _do_inbox_size(self) -> int:
        return sum(len(q) for q in self._rooms.values())

    # -- outbox --------------------------------------------------------------------------------

    def _reply(self, item_id: str, r: _Reply) -> OutboxItem:
        return OutboxItem(item_id, r.room_id, loads(r.payload), r.status, r.created_at)

    async def _do_outbox_pending(self, room_id: str | None, limit: int) -> list[OutboxItem]:
        out: list[OutboxItem] = []
        for item_id in self._pending:
            r = self._replies[item_id]
            if room_id is None or r.room_id == room_id:
                out.append(self._reply(item_id, r))
                if len(out) >= limit:
                    break
        return out

    async def _do_outbox_get(self, item_id: str) -> OutboxItem | None:
        self._forget_done(self._clock())
        r = self._replies.get(item_id)
        return None if r is None else self._reply(item_id, r)

    async def _do_outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        return self._mark(item_id, status, self._clock())

    def _mark(self, item_id: str, status: Literal["sent", "failed"], now: float) -> bool:
        r = self._replies.get(item_id)
        if r is None or r.status != "pending":
            return False
        r.status = status
        r.done_at = now
        del self._pending[item_id]
        self._done[item_id] = r.done_at
        return True

    # -- handoff -------------------------------------------------------------------------------

    async def _do_handoff_start(self, room_id: str, reason: str, ttl: float | None) -> Handoff:
        now = self._clock()
        h = Handoff(room_id, reason, now, None if ttl is None else now + ttl)
        self._handoffs.pop(room_id, None)  # re-insert so listing stays in start order
        self._handoffs[room_id] = h
        return h

    def _live_handoff(self, room_id: str, now: float) -> Handoff | None:
        h = self._handoffs.get(room_id)
        if h is not None and h.expires_at is not None and h.expires_at <= now:
            del self._handoffs[room_id]
            return None
        return h

    async def _do_handoff_get(self, room_id: str) -> Handoff | None:
        return self._live_handoff(room_id, self._clock())

    async def _do_handoff_end(self, room_id: str) -> bool:
        if self._live_handoff(room_id, self._clock()) is None:
            return False
        del self._handoffs[room_id]
        return True

    async def _do_handoff_list(self) -> list[Handoff]:
        now = self._clock()
        return [h for room in list(self._handoffs) if (h := self._live_handoff(room, now))]
