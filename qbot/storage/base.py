"""The storage interface: one small interface per concern, composed into :class:`Storage`.

```
InboxStore    inbox_put (deduped), inbox_claim (whole rooms, under their lease), inbox_wait/size
LeaseStore    lease_acquire / lease_renew / lease_release, owner-checked, expiring on their own
StateStore    get_state: JSON values under string keys (see qbot.storage.keys)
OutboxStore   outbox_pending / outbox_get / outbox_mark: replies by their unique_temp_id
HandoffStore  handoff_start / handoff_get / handoff_end / handoff_list
ScheduleStore schedule_put / take / fired / done / cancel / list (qbot.storage.schedule)
Storage       all of them, plus the one atomic commit (state writes + replies + inbox acks),
              load_room (one round trip), durable, open / close
```

Each public method checks its arguments here, once for every backend, encodes the JSON values
(:mod:`qbot.storage.records`) and calls the backend's ``_do_<method>`` hook with valid,
encoded values. A backend implements only the hooks.

Every TTL is in seconds (floats allowed). Owners are opaque strings that must be unique per live
process (a uuid per worker): a restarted process must not reuse its predecessor's owner id.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

from qbot.errors import LeaseLostError, StorageError
from qbot.storage.keys import room_lease_key, state_key
from qbot.storage.records import (
    Claim,
    Clock,
    Handoff,
    InboxItem,
    JSONText,
    OutboxItem,
    StateWrite,
    dumps,
    loads,
)
from qbot.storage.schedule import Job, ScheduleStore

__all__ = [
    "Claim",
    "Clock",
    "Handoff",
    "HandoffStore",
    "InboxItem",
    "InboxStore",
    "JSONText",
    "Job",
    "LeaseLostError",
    "LeaseStore",
    "OutboxItem",
    "OutboxStore",
    "ScheduleStore",
    "StateStore",
    "StateWrite",
    "Storage",
    "room_lease_key",
    "state_key",
]

StateRow = tuple[str, str | None, float | None]
"""A checked state write: (key, JSON text, or None to delete, TTL)."""

ReplyRow = tuple[str, str, str, str]
"""A checked reply: (id, room_id, payload JSON text, status)."""


def check_ttl(ttl: float, what: str) -> float:
    """Reject a TTL that is not a positive finite number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise StorageError(f"{what} must be a number of seconds, got {ttl!r}")
    if ttl <= 0:
        raise StorageError(f"{what} must be > 0 seconds, got {ttl!r}")
    return float(ttl)


def check_text(value: str, what: str) -> str:
    """Reject an empty or non-string key, owner or room id."""
    if not isinstance(value, str) or not value:
        raise StorageError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_limit(limit: int) -> int:
    """Reject a non-positive or non-integer limit."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise StorageError(f"limit must be an integer >= 1, got {limit!r}")
    return limit


class InboxStore(ABC):
    """Accepted webhooks, deduped when stored, handed out by whole rooms in arrival order."""

    async def inbox_put(
        self,
        room_id: str,
        payload: Any,
        *,
        dedupe_key: str | None = None,
        dedupe_ttl: float = 86400.0,
    ) -> InboxItem | None:
        """Store an accepted update durably; None when ``dedupe_key`` was already recorded.

        The dedupe record (kept ``dedupe_ttl`` seconds) and the item are written atomically: a
        crash cannot leave one without the other.

        Args:
            room_id: the room whose order the item follows.
            payload: a JSON value, or :class:`JSONText` already encoded.
            dedupe_key: the update's identity; ``None`` stores it without dedupe.
            dedupe_ttl: seconds the identity is remembered.
        """
        check_text(room_id, "room_id")
        text = dumps(payload, "inbox payload")
        ttl = check_ttl(dedupe_ttl, "dedupe ttl")
        if dedupe_key is not None:
            check_text(dedupe_key, "dedupe key")
        return await self._do_inbox_put(room_id, text, dedupe_key, ttl)

    async def inbox_put_held(
        self,
        room_id: str,
        payload: Any,
        *,
        owner: str,
        lease_ttl: float,
        dedupe_key: str | None = None,
        dedupe_ttl: float = 86400.0,
    ) -> tuple[InboxItem | None, bool]:
        """:meth:`inbox_put`, handing the item to ``owner`` at once when it works on the room.

        When ``owner`` holds the room's lease and every earlier item of the room was handed out
        already, the item is stored as handed out to ``owner`` (as :meth:`inbox_claim` would
        give it next) and the lease is set to ``lease_ttl`` from now, in the same atomic write:
        a room a worker already holds needs no claim round trip. Otherwise it is stored as
        :meth:`inbox_put` stores it, for a claim to hand out (always, on a backend without the
        fast path).

        Returns:
            The item (None for a duplicate), and whether it was handed to ``owner``.
        """
        check_text(room_id, "room_id")
        check_text(owner, "owner")
        text = dumps(payload, "inbox payload")
        ttl = check_ttl(dedupe_ttl, "dedupe ttl")
        lease = check_ttl(lease_ttl, "lease_ttl")
        if dedupe_key is not None:
            check_text(dedupe_key, "dedupe key")
        return await self._do_inbox_put_held(room_id, text, dedupe_key, ttl, owner, lease)

    async def inbox_claim(self, owner: str, *, lease_ttl: float, limit: int = 100) -> Claim:
        """Hand ``owner`` unprocessed items of rooms it may work on, each room in arrival order.

        A room is claimed by taking its lease (:func:`room_lease_key`) for ``lease_ttl`` seconds.
        Rooms whose lease another owner holds are skipped. For a room ``owner`` already holds,
        only items not yet given to it are returned (after a claim that raised, whose answer
        may have been lost, the items given to it come again first); for a room newly taken
        (free, or its holder's lease expired), every unacked item is returned again starting
        with the oldest.
        A room from which items are returned has its lease set to ``lease_ttl`` from now.
        ``limit`` caps the item count, except that a reclaimed room's previously delivered items
        may come whole (Redis).

        Process a room's items one at a time, ack each with :meth:`Storage.commit`, renew the
        room lease while working and release it when done. Post the replies of the rooms in
        :attr:`Claim.replies_waiting` first.
        """
        check_text(owner, "owner")
        ttl = check_ttl(lease_ttl, "lease_ttl")
        return await self._do_inbox_claim(owner, ttl, check_limit(limit))

    async def inbox_wait(self, seconds: float) -> None:
        """Return when items may have arrived since the last call, or after ``seconds``."""
        await self._do_inbox_wait(check_ttl(seconds, "inbox_wait seconds"))

    async def inbox_size(self) -> int:
        """How many accepted items are not yet acked."""
        return await self._do_inbox_size()

    @abstractmethod
    async def _do_inbox_put(
        self, room_id: str, text: str, dedupe_key: str | None, dedupe_ttl: float
    ) -> InboxItem | None: ...

    async def _do_inbox_put_held(
        self,
        room_id: str,
        text: str,
        dedupe_key: str | None,
        dedupe_ttl: float,
        owner: str,
        lease_ttl: float,
    ) -> tuple[InboxItem | None, bool]:
        """Default: no fast path, the item waits for a claim."""
        return await self._do_inbox_put(room_id, text, dedupe_key, dedupe_ttl), False

    @abstractmethod
    async def _do_inbox_claim(self, owner: str, lease_ttl: float, limit: int) -> Claim: ...

    @abstractmethod
    async def _do_inbox_wait(self, seconds: float) -> None: ...

    @abstractmethod
    async def _do_inbox_size(self) -> int: ...


class LeaseStore(ABC):
    """Named leases: one owner at a time, each expiring unless renewed."""

    async def lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds if it is free, expired or already ours.

        Returns True when ``owner`` now holds it (an own lease is extended to ``ttl``).
        """
        args = _lease_args(key, owner)
        return await self._do_lease_acquire(*args, check_ttl(ttl, "lease ttl"))

    async def lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend a lease ``owner`` still holds to ``ttl`` from now; False if it was lost."""
        args = _lease_args(key, owner)
        return await self._do_lease_renew(*args, check_ttl(ttl, "lease ttl"))

    async def lease_release(self, key: str, owner: str) -> bool:
        """Give up a lease; False (and no change) when ``owner`` did not hold it."""
        return await self._do_lease_release(*_lease_args(key, owner))

    @abstractmethod
    async def _do_lease_acquire(self, key: str, owner: str, ttl: float) -> bool: ...

    @abstractmethod
    async def _do_lease_renew(self, key: str, owner: str, ttl: float) -> bool: ...

    @abstractmethod
    async def _do_lease_release(self, key: str, owner: str) -> bool: ...


def _lease_args(key: str, owner: str) -> tuple[str, str]:
    return check_text(key, "lease key"), check_text(owner, "lease owner")


class StateStore(ABC):
    """Conversation state: JSON values under string keys, written by :meth:`Storage.commit`."""

    async def get_state(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default`` when absent or expired."""
        text = await self._do_get_state(check_text(key, "state key"))
        return default if text is None else loads(text)

    @abstractmethod
    async def _do_get_state(self, key: str) -> str | bytes | None:
        """The JSON text under ``key``, or None when absent or expired."""


class OutboxStore(ABC):
    """Replies keyed by their deterministic ``unique_temp_id``, recorded by the commit."""

    async def outbox_pending(
        self, *, room_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Replies not yet marked, oldest first (optionally of one room)."""
        if room_id is not None:
            check_text(room_id, "room_id")
        return await self._do_outbox_pending(room_id, check_limit(limit))

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        """One reply by its ``unique_temp_id``, while it is pending or retained after marking."""
        return await self._do_outbox_get(check_text(item_id, "outbox id"))

    async def outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        """Mark a pending reply sent (Qiscus accepted it) or failed (it never will).

        Returns True only for the call that changed it from pending: a reply marked once is
        never listed as pending again.
        """
        check_text(item_id, "outbox id")
        if status not in ("sent", "failed"):
            raise StorageError(f"outbox status must be 'sent' or 'failed', got {status!r}")
        return await self._do_outbox_mark(item_id, status)

    @abstractmethod
    async def _do_outbox_pending(self, room_id: str | None, limit: int) -> list[OutboxItem]: ...

    @abstractmethod
    async def _do_outbox_get(self, item_id: str) -> OutboxItem | None: ...

    @abstractmethod
    async def _do_outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool: ...


class HandoffStore(ABC):
    """Rooms a human agent took over, with an optional expiry."""

    async def handoff_start(
        self, room_id: str, reason: str, *, ttl: float | None = None
    ) -> Handoff:
        """Record that a human took over ``room_id`` (replacing an earlier record)."""
        check_text(room_id, "room_id")
        if not isinstance(reason, str):
            raise StorageError(f"handoff reason must be a string, got {reason!r}")
        seconds = None if ttl is None else check_ttl(ttl, "handoff ttl")
        return await self._do_handoff_start(room_id, reason, seconds)

    async def handoff_get(self, room_id: str) -> Handoff | None:
        """The room's handoff, or None when the bot is in charge (never started or expired)."""
        return await self._do_handoff_get(check_text(room_id, "room_id"))

    async def handoff_end(self, room_id: str) -> bool:
        """Give the room back to the bot; False when it was not handed off."""
        return await self._do_handoff_end(check_text(room_id, "room_id"))

    async def handoff_list(self) -> list[Handoff]:
        """Every room currently handed off, oldest handoff first."""
        return await self._do_handoff_list()

    @abstractmethod
    async def _do_handoff_start(self, room_id: str, reason: str, ttl: float | None) -> Handoff: ...

    @abstractmethod
    async def _do_handoff_get(self, room_id: str) -> Handoff | None: ...

    @abstractmethod
    async def _do_handoff_end(self, room_id: str) -> bool: ...

    @abstractmethod
    async def _do_handoff_list(self) -> list[Handoff]: ...


class Storage(InboxStore, LeaseStore, StateStore, OutboxStore, HandoffStore, ScheduleStore):
    """What the runtime needs from a storage backend: every concern, and the one atomic commit.

    Use as an async context manager, or call :meth:`open` and :meth:`close`::

        async with open_storage("sqlite:///qbot.db") as storage:
            await storage.set_state("room:42", {"step": "ask_email"})
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or time.time

    @property
    @abstractmethod
    def durable(self) -> bool:
        """Whether what is stored outlives this process (False: lost on exit, as ``memory://``)."""

    async def open(self) -> None:
        """Connect and create what the backend needs. Idempotent."""

    async def close(self) -> None:
        """Release connections. The storage can be opened again."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def commit(
        self,
        *,
        owner: str | None = None,
        ack: Sequence[InboxItem] = (),
        states: Sequence[StateWrite] = (),
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        """Apply state writes, queue replies and ack inbox items, all or nothing.

        Args:
            owner: the worker acking; required when ``ack`` is not empty.
            ack: inbox items now processed; acking an already-acked item is a no-op.
            states: state writes, applied in order.
            outbox: replies to record. A ``"pending"`` one is queued; a ``"sent"`` or
                ``"failed"`` one is recorded as done, and marks a pending record of the same id
                (as :meth:`outbox_mark` would). An id already sent or failed is left as it is;
                a pending id given as pending again is skipped.

        Raises:
            LeaseLostError: ``owner`` no longer holds the lease of an acked item's room;
                nothing was applied.
            StorageError: a value is not JSON-serialisable, a TTL is invalid, or the backend
                failed.
        """
        if ack and not owner:
            raise StorageError("commit(ack=...) needs the owner that claimed the items, got none")
        writes: list[StateRow] = []
        for w in states:
            check_text(w.key, "state key")
            if w.delete:
                writes.append((w.key, None, None))
                continue
            ttl = None if w.ttl is None else check_ttl(w.ttl, f"ttl of state {w.key!r}")
            writes.append((w.key, dumps(w.value, f"state {w.key!r}"), ttl))
        replies: list[ReplyRow] = []
        for r in outbox:
            check_text(r.id, "outbox id")
            check_text(r.room_id, "outbox room_id")
            if r.status not in ("pending", "sent", "failed"):
                raise StorageError(
                    f"outbox status of {r.id!r} must be 'pending', 'sent' or 'failed', "
                    f"got {r.status!r}"
                )
            replies.append(
                (r.id, r.room_id, dumps(r.payload, f"outbox payload of {r.id!r}"), r.status)
            )
        await self._do_commit(owner or "", ack, writes, replies)

    async def set_state(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Write one state value outside message processing (a one-write :meth:`commit`)."""
        await self.commit(states=[StateWrite(key, value, ttl)])

    async def delete_state(self, key: str) -> None:
        """Delete one state value outside message processing (a one-write :meth:`commit`)."""
        await self.commit(states=[StateWrite(key, delete=True)])

    async def load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str] = ()
    ) -> tuple[Handoff | None, list[Any], list[OutboxItem | None]]:
        """What processing one message of ``room_id`` reads first, in one round trip.

        Returns:
            the room's handoff (as :meth:`handoff_get`), the state under each of ``keys``
            (``None`` when absent or expired) and each of ``outbox_ids`` (as :meth:`outbox_get`).
        """
        check_text(room_id, "room_id")
        for key in keys:  # inline: this runs for every message
            if type(key) is not str or not key:
                check_text(key, "state key")
        for item_id in outbox_ids:
            if type(item_id) is not str or not item_id:
                check_text(item_id, "outbox id")
        handoff, texts, replies = await self._do_load_room(room_id, keys, outbox_ids)
        return handoff, [None if t is None else loads(t) for t in texts], replies

    @abstractmethod
    async def _do_commit(
        self,
        owner: str,
        ack: Sequence[InboxItem],
        states: Sequence[StateRow],
        replies: Sequence[ReplyRow],
    ) -> None:
        """Apply the checked commit; raise :func:`lease_lost` when ``owner`` lost a room."""

    async def _do_load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str]
    ) -> tuple[Handoff | None, list[str | bytes | None], list[OutboxItem | None]]:
        """The handoff, the state texts and the replies; this default asks one by one."""
        handoff = await self._do_handoff_get(room_id)
        texts = [await self._do_get_state(key) for key in keys]
        replies = [await self._do_outbox_get(item_id) for item_id in outbox_ids]
        return handoff, texts, replies


def lease_lost(owner: str, room_id: str, holder: str | None) -> LeaseLostError:
    """The error of a commit refused because ``owner`` no longer holds ``room_id``."""
    return LeaseLostError(
        f"owner {owner!r} no longer holds room {room_id!r} (holder: {holder!r}); the commit "
        "was not applied and the room's items will be processed again"
    )
