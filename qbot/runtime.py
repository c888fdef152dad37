"""Inbox → workers → outbox, on the bot's storage: the same path for memory, SQLite and Redis.

```
submit(update)  ── inbox_put (deduped) ──▶ storage inbox         (then the server answers 200)
claim loop      ── inbox_claim(owner) ──▶ whole rooms, each under this process's room lease
room worker     ── one item at a time ──▶ dispatcher.process(update, ack=item): handler, replies
                                          via the outbox, state + ack in one commit
renewer         ── every lease_ttl / 3 ──▶ lease_renew of every room being worked on
sweeper         ── every sweep_every s ──▶ rooms with pending (orphaned) replies
                                          (bot.outbox.rooms_waiting): take the room's lease,
                                          its worker posts them in order
```
A room's worker keeps its lease ``linger`` seconds after its queue empties; a worker that loses
its lease drops its queue (the room's next owner gets every unacked item again). No storage error
ends a background task: each backs off and retries, one log line per outage
(:class:`qbot.outages.Outages`, shown by :attr:`Runtime.degraded` and ``/healthz``).
docs/architecture.md tells the whole path.

:meth:`Runtime.run` is the in-process way in (``bot.feed_update``: tests, shell, emulator): it
submits like the server, claims at once and waits for the update's :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from qbot._aio import cancel_and_wait
from qbot._json import detect_encoding
from qbot.debounce import debouncing, gather
from qbot.errors import ConfigError, LeaseLostError, QbotError, StorageError
from qbot.handlers import Outcome
from qbot.inflight import ParsedUpdates, Waiters
from qbot.leases import RoomLeases
from qbot.models.webhook import Update
from qbot.outages import Outages
from qbot.scheduling import SCHEDULED, fire_loop
from qbot.storage import JSONText

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.storage import InboxItem

__all__ = ["Runtime"]

log = structlog.get_logger("qbot.runtime")


def new_owner() -> str:
    """A worker id unique per process start: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _as_text(raw: bytes) -> JSONText | None:
    """``raw`` as JSON text to store as it is, or None when it is not plain Unicode JSON text."""
    try:
        return JSONText(raw.decode(detect_encoding(raw)))
    except (UnicodeDecodeError, LookupError):
        return None


class Runtime(RoomLeases):
    """Stores accepted updates in the bot's storage and processes them in the background.

    Args:
        bot: the configured bot; its storage holds the inbox, state and outbox.
        dedupe_ttl: seconds a message identity is remembered (a redelivery within it is dropped).
        lease_ttl: seconds a room stays this worker's after the last renewal; the longest a room
            waits when its worker died.
        sweep_every: seconds between looks for replies a dead worker left pending.
        linger: seconds a room worker keeps an emptied room (and its lease) waiting for the
            room's next message before releasing it; 0 releases at once. Under half
            ``lease_ttl``: a lingering room's lease is not renewed.
        max_pending: claimed items in this process at most (back-pressure on claiming).
        owner: this worker's id (default: host, pid and a random part).
        in_process: the runtime of ``bot.feed_update`` (tests, shell, emulator): its start is
            not logged.
    """

    def __init__(
        self,
        bot: Bot,
        *,
        dedupe_ttl: float = 600.0,
        lease_ttl: float = 30.0,
        sweep_every: float = 5.0,
        linger: float = 0.5,
        max_pending: int = 1000,
        owner: str | None = None,
        in_process: bool = False,
    ) -> None:
        if not 0 <= linger < lease_ttl / 2:
            raise ConfigError(
                f"linger ({linger:g} s) must be at least 0 and under half of lease_ttl "
                f"({lease_ttl:g} s): a lingering room's lease is not renewed"
            )
        self.bot = bot
        self.dispatcher = bot.dispatcher
        self.dedupe_ttl = dedupe_ttl
        self.lease_ttl = lease_ttl
        self.sweep_every = sweep_every
        self.linger = linger
        self.max_pending = max_pending
        self.owner = owner or new_owner()
        self.in_process = in_process
        self.processed = 0
        self.gathering: dict[str, float] = {}  # rooms in a debounce window: its end (debounce)
        self._queues: dict[str, deque[InboxItem]] = {}
        self._held = 0  # items in self._queues, kept as a count: read at every claim
        self._ids: dict[str, set[str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Rooms held here: a number each claim of the room changes, from one process-wide
        # count, so a room forgotten (its entry dropped) and taken again never reuses one.
        self._generation: dict[str, int] = {}
        self._generations = itertools.count(1)
        self._wake: dict[str, asyncio.Event] = {}
        self._lost: set[str] = set()
        # Claims that took a room back after its lease lapsed; the items in hand they gave again.
        self._retakes: dict[str, int] = {}
        self._reclaimed: set[str] = set()
        # Rooms waiting out their linger (leases not renewed), each with the loop time it ends,
        # in the order they began (so in order of end: the linger is the same for all). One
        # timer, at the first end, wakes them: no timer per wait.
        self._lingering: dict[str, float] = {}
        self._linger_timer: asyncio.TimerHandle | None = None
        self._releasing: set[str] = set()  # rooms whose lease is being released
        self._incoming: dict[str, int] = {}  # puts in flight handing items to a held room
        self.waiters = Waiters()  # run() callers waiting for their update (qbot.inflight)
        self.parsed = ParsedUpdates()  # updates accepted here: claimed without a parse
        self._lock = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._started = False
        self._closing = False
        self._drained: int | None = None  # what the first drain() left undone
        self.outages = Outages(clock=lambda: self.dispatcher.clock.time())

    @property
    def degraded(self) -> str | None:
        """Why a background task cannot do its work now (a storage outage), or None."""
        return self.outages.reason

    @property
    def closing(self) -> bool:
        """Whether :meth:`drain` began: new updates are answered ``closing``."""
        return self._closing

    @property
    def pending(self) -> int:
        """Items this process has claimed and not finished (the one being processed included)."""
        return self._held

    async def inbox_size(self) -> int:
        """Accepted items not processed yet, by any worker sharing the storage."""
        return await self.storage.inbox_size()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the storage and start the claim loop, the lease renewer and the sweeper.

        Idempotent; :meth:`submit` calls it.

        Raises:
            StorageError: the storage cannot be opened.
        """
        if self._started:
            return
        async with self._lock:  # concurrent first submits open the storage once
            if self._started:
                return
            await self.dispatcher.open()
            self._started = True
        every = self.outages.every
        for name, loop in (
            ("claim", self._claim_loop()),
            ("renew", every("renew", self._renew, self.lease_ttl / 3, cap=self.lease_ttl / 3)),
            ("sweep", every("sweep", self._sweep, self.sweep_every)),
            ("schedule", fire_loop(self)),  # due jobs into the inbox (qbot.scheduling)
        ):
            self._background.append(asyncio.create_task(loop, name=f"qbot-{name}"))
        if not self.in_process:  # feed_update's runtime starts with the first update: no news
            log.info("runtime.started", owner=self.owner, storage=self.dispatcher.storage_url)

    async def run(self, update: Update) -> Outcome:
        """Submit ``update`` and wait until its room's worker has processed it.

        The in-process path (``feed_update``): the same dedupe, room order and processing as a
        webhook's, except that the update is claimed at once rather than by the claim loop.

        Raises:
            StorageError: the update could not be stored, or its room was lost before it was
                processed (``LeaseLostError``).
            Exception: what processing raised outside the handlers.
        """
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        status = await self.submit(update, waiter=waiter)
        if status != "accepted":
            return Outcome(ignored=status)
        await self._claim()
        return await waiter

    def expect(self, item: InboxItem) -> asyncio.Future[Outcome]:
        """A future given ``item``'s outcome once processed here (the item is in the inbox)."""
        return self.waiters.expect(item.id)

    async def claim_now(self) -> bool:
        """Claim what may be processed now, without waiting for the claim loop."""
        return await self._claim()

    async def submit(
        self,
        update: Update,
        body: Mapping[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        waiter: asyncio.Future[Outcome] | None = None,
    ) -> str:
        """Store ``update`` in the inbox; return once it is stored.

        Args:
            update: the parsed webhook.
            body: the webhook body as received (default: ``update`` dumped back to JSON).
            raw: the JSON text ``body`` was parsed from; stored as it is (not encoded again)
                when it is plain Unicode text.
            waiter: given the update's :class:`Outcome` (or exception) once it is processed.

        Returns:
            ``accepted``, ``duplicate`` (within ``dedupe_ttl``, on any replica), ``ignored``
            (the bot's own message or an unhandled system event) or ``closing`` (shutting
            down: the sender should retry later).

        Raises:
            StorageError: the update could not be stored (answer an error: Qiscus retries).
        """
        if self._closing:
            return "closing"
        reason = self.dispatcher.ignore_reason(update)
        if update.message.type == SCHEDULED:  # only the scheduler stores these: never a webhook
            reason = "reserved_message_type"
        room = str(update.room.id)
        if reason is not None:
            log.debug("webhook.ignored", reason=reason, room_id=room)
            return "ignored"
        if not self._started:
            await self.start()
        payload: Any = _as_text(raw) if raw is not None else None
        if payload is None:
            # Serialised by pydantic-core straight to JSON text: no dict and json.dumps between.
            payload = (
                dict(body) if body is not None else JSONText(update.model_dump_json(by_alias=True))
            )
        key = update.dedupe_key
        if self._works_on(room):
            # A room this worker holds: the item is handed to it with the put (no claim round
            # trip). Its worker does not release the room while the put is in flight.
            self._incoming[room] = self._incoming.get(room, 0) + 1
            try:
                item, handed = await self.storage.inbox_put_held(
                    room,
                    payload,
                    owner=self.owner,
                    lease_ttl=self.lease_ttl,
                    dedupe_key=key,
                    dedupe_ttl=self.dedupe_ttl,
                )
            finally:
                left = self._incoming.pop(room) - 1
                if left:
                    self._incoming[room] = left
                wake = self._wake.get(room)
                if wake is not None:
                    wake.set()
        else:
            put = self.storage.inbox_put(room, payload, dedupe_key=key, dedupe_ttl=self.dedupe_ttl)
            item, handed = await put, False
        if item is None:
            log.info("webhook.duplicate", room_id=room, message=key)
            return "duplicate"
        self.parsed.keep(room, item.id, update)
        if waiter is not None:
            self.waiters.add(item.id, waiter)
        if handed and self._works_on(room):  # else its worker lost the room: claimed again
            self._hand(item)
        return "accepted"

    def queued(self, room: str) -> int:
        """Items of ``room`` in this process's hands (the one being processed included)."""
        return len(self._queues.get(room, ()))

    def lost(self, room: str) -> bool:
        """Whether this process lost ``room``'s lease: its worker drops what it holds."""
        return room in self._lost

    def _works_on(self, room: str) -> bool:
        """Whether a worker of this process holds ``room`` and will take items for it."""
        return room in self._tasks and room not in self._lost and room not in self._releasing

    def _hand(self, item: InboxItem) -> None:
        """Queue a claimed item for its room's worker (started if needed)."""
        room = item.room_id
        ids = self._ids.get(room)  # (not setdefault: no throwaway set and deque per item)
        if ids is None:
            ids = self._ids[room] = set()
        elif item.id in ids:  # reclaimed after a lapse while still in hand
            self._reclaimed.add(item.id)
            return
        ids.add(item.id)
        queue = self._queues.get(room)
        if queue is None:
            queue = self._queues[room] = deque()
        queue.append(item)
        self._held += 1
        self._lost.discard(room)
        self._ensure_worker(room)
        self._wake[room].set()

    async def drain(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109 - a grace period: on expiry the workers are cancelled, not the caller
        """Stop accepting and finish the work in hand; return how many items were left undone.

        Rooms being worked on are finished. With ``memory://`` everything in the inbox is
        processed too (it would be lost); durable storages keep unclaimed items for a restart or
        another replica. After ``timeout`` seconds the workers are cancelled: their items stay
        unacked and are processed again by the next owner of the room.
        """
        if self._drained is not None:  # the server drains before its cleanup does
            return self._drained
        self._closing = True
        for event in self._wake.values():  # lingering workers release their rooms now
            event.set()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        await self._stop_background()
        if not self._started:
            return 0
        left = 0
        try:
            async with asyncio.timeout(timeout):
                await self._settle()
        except TimeoutError:
            left = self.pending
            log.error("runtime.drain_timeout", unprocessed=left, timeout=timeout)
        await cancel_and_wait(self._tasks.values())
        if not self.storage.durable:  # what is still in memory is lost now
            left = await self.storage.inbox_size()
        self.waiters.fail_all(QbotError("the runtime stopped before the update ran"))
        self._drained = left
        return left

    async def _settle(self) -> None:
        durable = self.storage.durable
        while True:
            if self._tasks:
                log.info("runtime.draining", rooms=len(self._tasks), pending=self.pending)
                await asyncio.wait(list(self._tasks.values()))
                continue
            if durable or not await self._claim():
                return

    async def _stop_background(self) -> None:
        tasks, self._background = self._background, []
        await cancel_and_wait(tasks)

    # --- claiming -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            if self.pending >= self.max_pending and self._tasks:
                await asyncio.wait(
                    list(self._tasks.values()), timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            try:
                if not await self._claim():
                    await self.storage.inbox_wait(1.0)
            except Exception as e:  # a storage outage or a bug: keep the loop alive, back off
                await asyncio.sleep(self.outages.failed("claim", e))
                continue
            self.outages.recovered("claim")

    async def _claim(self) -> bool:
        """Claim what this worker may process now and hand it to room workers."""
        async with self._lock:
            limit = max(1, self.max_pending - self.pending)
            claim = await self.storage.inbox_claim(
                self.owner, lease_ttl=self.lease_ttl, limit=limit
            )
            self.dispatcher.outbox.note_waiting(claim.replies_waiting)
            for room in claim.redelivered:  # a dead worker's replies may be posted unrecorded
                self.dispatcher.outbox.recheck(room)
                self._retakes[room] = self._retakes.get(room, 0) + 1
            for room in {item.room_id for item in claim.items}:
                # The room is ours again (its lease just taken), even if every item came back
                # still in hand: its worker keeps it, and a renewal refused before this claim
                # (answered after it, or not acted on yet) must not drop it.
                self._lost.discard(room)
                self._generation[room] = next(self._generations)
            for item in claim.items:
                self._hand(item)
        return bool(claim.items)

    def _ensure_worker(self, room: str) -> None:
        if room not in self._tasks:
            self._queues.setdefault(room, deque())
            self._ids.setdefault(room, set())
            self._wake[room] = asyncio.Event()
            self._generation[room] = next(self._generations)
            self._tasks[room] = asyncio.create_task(self._work(room), name=f"qbot-room-{room}")

    # --- one room -------------------------------------------------------------------------------

    async def _work(self, room: str) -> None:
        queue = self._queues[room]
        ids = self._ids[room]
        wake = self._wake[room]
        try:
            await self._flush(room)
            while True:
                if room in self._lost:
                    log.warning("runtime.room_dropped", room_id=room, items=len(queue))
                    return
                if not queue and self.linger > 0 and not self._closing:
                    # Keep the room a moment: its next message needs no lease change. A timer
                    # that sets `wake` ends the wait (found empty, the room is released): one
                    # handle, where asyncio.timeout added a Timeout and a cancellation per wait.
                    wake.clear()
                    self._linger_begins(room)
                    try:
                        await wake.wait()
                    finally:
                        del self._lingering[room]
                    if queue:
                        continue
                if not queue and self._incoming.get(room):
                    wake.clear()  # an item being stored for this room: wait for it
                    await wake.wait()
                    continue
                if not queue:
                    async with self._lock:
                        if queue or self._incoming.get(room):
                            continue
                        self._releasing.add(room)
                        try:
                            await self._release(room)
                        finally:
                            self._releasing.discard(room)
                        self._forget(room)
                        return
                item = queue[0]
                # A debounced burst: the head and the messages gathered with it (qbot.debounce).
                if debouncing(self.dispatcher):
                    batch, merged = await gather(self, room, queue, wake)
                else:  # no coroutine for the common case
                    batch, merged = [item], None
                if not await self._process(item, merged, batch[1:]):
                    continue  # the storage failed: the same item again, once it answers
                for done in batch:
                    if queue and queue[0] is done:
                        queue.popleft()
                        self._held -= 1
                        ids.discard(done.id)
                        self._reclaimed.discard(done.id)
                del item, batch, merged, done  # a lingering room keeps no processed body
        finally:
            self._forget(room)

    def _linger_begins(self, room: str) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.linger
        self._lingering[room] = ends
        if self._linger_timer is None:
            self._linger_timer = loop.call_at(ends, self._linger_ends)

    def _linger_ends(self) -> None:
        """Wake the rooms whose linger is over; the timer again for the next one to end."""
        self._linger_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for room, ends in self._lingering.items():
            if ends > now:
                self._linger_timer = loop.call_at(ends, self._linger_ends)
                return
            wake = self._wake.get(room)
            if wake is not None:
                wake.set()

    def _forget(self, room: str) -> None:
        task = self._tasks.get(room)
        if task is not None and task is asyncio.current_task():
            del self._tasks[room]
            dropped = self._queues.pop(room, None)
            if dropped:
                self._held -= len(dropped)
                for item in dropped:
                    self._reclaimed.discard(item.id)
                    lost = LeaseLostError(f"room {room!r} was lost before the update was processed")
                    self.waiters.resolve(item.id, error=lost)
            self._ids.pop(room, None)
            self._wake.pop(room, None)
            self._generation.pop(room, None)
            self._retakes.pop(room, None)

    async def _flush(self, room: str) -> None:
        """Post the replies a dead worker (or a Qiscus outage) left pending, before new work.

        On a storage failure the room stays waiting: its new replies queue behind the pending
        ones, and the sweeper flushes them once the room is released.
        """
        try:
            await self.dispatcher.outbox.flush_waiting(room)
        except ConfigError as e:  # no bot email to post as
            log.error("runtime.flush_failed", room_id=room, error=str(e))
        except StorageError as e:
            self.outages.failed("flush", e)
        else:
            self.outages.recovered("flush")

    async def _process(
        self, item: InboxItem, merged: Update | None = None, also: Sequence[InboxItem] = ()
    ) -> bool:
        """Process one item (with ``also``, as the one ``merged`` update); False when it is to
        be processed again (the storage failed, or a claim took the room back after its commit
        was refused)."""
        room = item.room_id
        for other in also:
            self.parsed.take(room, other.id)
        try:
            cached = self.parsed.take(room, item.id)
            update = merged or cached or Update.model_validate(item.payload)
        except ValueError as e:  # not a webhook (ValidationError), or not even JSON
            log.error("update.unreadable", room_id=room, error=str(e))
            self.waiters.resolve(item.id, error=e)
            return await self._ack_only(item)
        # bind + reset, not bound_contextvars(): that one also reads the whole context twice.
        tokens = structlog.contextvars.bind_contextvars(
            room_id=room, message_id=update.message.identity
        )
        retakes = self._retakes.get(room)
        try:
            outcome = await self.dispatcher.process(update, ack=item, owner=self.owner, also=also)
        except LeaseLostError as e:
            return self._refused(item, e, retakes, "commit refused")
        except StorageError as e:
            return await self._storage_failed(item, e)
        except Exception as exc:
            # Handler errors are contained by the bot; this is a bug or misconfiguration
            # outside any handler. Log it and ack, so the room is not blocked forever.
            log.error("update.failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            self.waiters.resolve(item.id, error=exc)
            return await self._ack_only(item)
        else:
            self.processed += 1 + len(also)
            self.dispatcher.outbox.rechecked(room)
            self.outages.recovered("process")
            self.waiters.resolve(item.id, outcome)
            return True
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _storage_failed(self, item: InboxItem, error: StorageError) -> bool:
        """Not acked. The room keeps its item (and its lease, while the renewer can): the
        item is processed again after a backoff, its replies looked up before they are posted
        again. The in-process runtime gives the error to its caller instead."""
        room = item.room_id
        if self.in_process:
            log.error("update.storage_failed", error=str(error))
            self._lost.add(room)
            self.waiters.resolve(item.id, error=error)
            return True
        self.dispatcher.outbox.recheck(room)
        await asyncio.sleep(self.outages.failed("process", error))
        return False

    async def _ack_only(self, item: InboxItem) -> bool:
        retakes = self._retakes.get(item.room_id)
        try:
            await self.dispatcher.outbox.commit(owner=self.owner, ack=[item])
        except LeaseLostError as e:
            return self._refused(item, e, retakes, "ack refused")
        except StorageError as e:
            return await self._storage_failed(item, e)
        self.processed += 1
        return True
