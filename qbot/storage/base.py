"""The storage interface every backend implements, and the records that cross it.

One small interface serves six needs of the runtime:

1. **Dedupe**: :meth:`Storage.claim_once` claims a key for a TTL and says whether it was new.
2. **Conversation state**: JSON values under string keys (see :func:`state_key`), read with
   :meth:`Storage.get_state` and written only through :meth:`Storage.commit`, which applies state
   writes, new outbox replies and inbox acks all together or not at all.
3. **Leases**: :meth:`Storage.lease_acquire` / :meth:`Storage.lease_renew` /
   :meth:`Storage.lease_release`, owner-checked, expiring on their own.
4. **Durable inbox**: :meth:`Storage.inbox_put` stores an accepted webhook (deduped atomically);
   :meth:`Storage.inbox_claim` hands a worker whole rooms under a room lease, each room's items in
   arrival order; :meth:`Storage.commit` acks them. A room whose lease lapses is handed, with every
   unacked item, to the next claimer.
5. **Outbox**: replies keyed by their deterministic ``unique_temp_id``, recorded by :meth:`commit`
   (pending, or already sent/failed), listed by :meth:`Storage.outbox_pending` and marked once by
   :meth:`Storage.outbox_mark`.
6. **Handoff records**: rooms a human agent took over, with an optional expiry.

Every TTL is in seconds (floats allowed). Owners are opaque strings that must be unique per live
process (a uuid per worker): a restarted process must not reuse its predecessor's owner id.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from qbot import _json
from qbot.errors import LeaseLostError, StorageError

__all__ = [
    "Clock",
    "Handoff",
    "InboxItem",
    "JSONText",
    "LeaseLostError",
    "OutboxItem",
    "StateWrite",
    "Storage",
    "room_lease_key",
    "state_key",
]

Clock = Callable[[], float]
"""Returns the current time in seconds since the epoch; tests pass a controllable one."""

OutboxStatus = Literal["pending", "sent", "failed"]

DEFAULT_OUTBOX_RETENTION = 7 * 24 * 3600.0
"""How long a sent or failed outbox record is kept, so a re-queued reply is never sent again."""


_UNDECODED: Any = object()


class InboxItem:
    """One accepted webhook waiting to be processed (immutable).

    Attributes:
        id: backend-assigned, unique within the room; pass the item back to ``commit(ack=...)``.
        room_id: the room whose ordering the item follows.
        payload: the JSON value given to :meth:`Storage.inbox_put` (usually the webhook body), a
            copy. Backends build items with :meth:`stored`, which decodes it on first access
            only: the runtime, which parsed the webhook itself, never pays for it.
        received_at: clock time of :meth:`Storage.inbox_put`.
    """

    __slots__ = ("_payload", "_text", "id", "received_at", "room_id")

    id: str
    room_id: str
    received_at: float
    _payload: Any
    _text: str | bytes | None

    def __init__(self, id: str, room_id: str, payload: Any, received_at: float) -> None:
        set_ = object.__setattr__
        set_(self, "id", id)
        set_(self, "room_id", room_id)
        set_(self, "received_at", received_at)
        set_(self, "_payload", payload)
        set_(self, "_text", None)

    @classmethod
    def stored(cls, id: str, room_id: str, text: str | bytes, received_at: float) -> InboxItem:
        """An item whose payload is the JSON ``text`` (from :func:`dumps`), decoded lazily."""
        item = cls(id, room_id, _UNDECODED, received_at)
        object.__setattr__(item, "_text", text)
        return item

    @property
    def payload(self) -> Any:
        """The stored JSON value (decoded once, on first access)."""
        if self._payload is _UNDECODED:
            object.__setattr__(self, "_payload", loads(self._text or "null"))
            object.__setattr__(self, "_text", None)
        return self._payload

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"InboxItem is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"InboxItem is immutable: cannot delete {name!r}")

    def _key(self) -> tuple[str, str, Any, float]:
        return (self.id, self.room_id, self.payload, self.received_at)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, InboxItem)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.id, self.room_id, self.received_at))

    def __reduce__(self) -> tuple[type[InboxItem], tuple[str, str, Any, float]]:
        return (InboxItem, (self.id, self.room_id, self.payload, self.received_at))

    def __repr__(self) -> str:
        return (
            f"InboxItem(id={self.id!r}, room_id={self.room_id!r}, payload={self.payload!r}, "
            f"received_at={self.received_at!r})"
        )


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One reply to deliver (or already delivered).

    Attributes:
        id: the reply's deterministic ``unique_temp_id``; queuing the same id twice is a no-op.
        room_id: the room the reply goes to; replies of one room are listed in queue order.
        payload: JSON value describing the API call (the runtime decides its shape).
        status: ``"pending"`` until :meth:`Storage.outbox_mark` records ``"sent"`` or ``"failed"``.
            Given to :meth:`Storage.commit` as ``"sent"`` or ``"failed"``, the reply is recorded
            as already done (it was posted, or refused, before any record of it was written).
        created_at: clock time at which the reply was queued (set by the backend).
    """

    id: str
    room_id: str
    payload: Any
    status: OutboxStatus = "pending"
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One conversation-state change inside a :meth:`Storage.commit`.

    Attributes:
        key: the state key, usually from :func:`state_key`.
        value: a JSON-serialisable value (ignored when ``delete`` is true).
        ttl: seconds until the value expires; ``None`` keeps it until overwritten or deleted.
        delete: remove the key instead of writing it.
    """

    key: str
    value: Any = None
    ttl: float | None = None
    delete: bool = False


@dataclass(frozen=True, slots=True)
class Handoff:
    """A room where a human agent has taken over from the bot.

    Attributes:
        room_id: the room.
        reason: why the bot handed over (shown in ``qbot`` CLI listings).
        started_at: clock time of the handoff.
        expires_at: clock time at which the bot answers again by itself, or ``None``.
    """

    room_id: str
    reason: str
    started_at: float
    expires_at: float | None = None


def state_key(room_id: str, user_id: str | None = None) -> str:
    """The state key of a conversation: per (room, user), or per room when ``user_id`` is None."""
    return f"room:{room_id}" if user_id is None else f"user:{room_id}:{user_id}"


def room_lease_key(room_id: str) -> str:
    """The lease :meth:`Storage.inbox_claim` takes on a room; renew or release it by this key."""
    return f"room:{room_id}"


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


class JSONText(str):
    """A JSON value already encoded, e.g. a webhook body just parsed: stored as this text.

    Give it as an :meth:`Storage.inbox_put` payload to spare encoding the value again; it must
    be valid JSON (what reads the item back decodes it).
    """

    __slots__ = ()


def dumps(value: Any, what: str) -> str:
    """Encode a JSON value, naming ``what`` when it cannot be stored."""
    if type(value) is JSONText:
        return str.__str__(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StorageError(
            f"{what} must be JSON-serialisable (dict, list, str, int, float, bool, None): {e}"
        ) from e


def loads(text: str | bytes) -> Any:
    """Decode a JSON value written by :func:`dumps` (or a webhook body stored as received)."""
    return _json.loads(text)


class Storage(ABC):
    """What the runtime needs from a storage backend; see the module docstring for the model.

    Use as an async context manager, or call :meth:`open` and :meth:`close`::

        async with open_storage("sqlite:///qbot.db") as storage:
            new = await storage.claim_once("msg:42", ttl=86400)
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or time.time

    async def open(self) -> None:  # noqa: B027 - optional hook, a no-op for in-memory storage
        """Connect and create what the backend needs. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op for in-memory storage
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

    # -- dedupe --------------------------------------------------------------------------------

    @abstractmethod
    async def claim_once(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded.

        Atomic: of many concurrent callers (on any replica sharing the backend), exactly one
        gets True until the record expires.
        """

    # -- conversation state --------------------------------------------------------------------

    @abstractmethod
    async def get_state(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default`` when absent or expired."""

    @abstractmethod
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

    async def load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str] = ()
    ) -> tuple[Handoff | None, list[Any], list[OutboxItem | None]]:
        """What processing one message of ``room_id`` reads first, in one round trip.

        Returns:
            the room's handoff (as :meth:`handoff_get`), the state under each of ``keys``
            (``None`` when absent or expired) and each of ``outbox_ids`` (as :meth:`outbox_get`).
            Backends answer it in one round trip; this default asks one by one.
        """
        handoff = await self.handoff_get(room_id)
        states = [await self.get_state(key) for key in keys]
        replies = [await self.outbox_get(item_id) for item_id in outbox_ids]
        return handoff, states, replies

    async def set_state(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Write one state value outside message processing (a one-write :meth:`commit`)."""
        await self.commit(states=[StateWrite(key, value, ttl)])

    async def delete_state(self, key: str) -> None:
        """Delete one state value outside message processing (a one-write :meth:`commit`)."""
        await self.commit(states=[StateWrite(key, delete=True)])

    # -- leases --------------------------------------------------------------------------------

    @abstractmethod
    async def lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease ``key`` for ``ttl`` seconds if it is free, expired or already ours.

        Returns True when ``owner`` now holds it (an own lease is extended to ``ttl``).
        """

    @abstractmethod
    async def lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend a lease ``owner`` still holds to ``ttl`` from now; False if it was lost."""

    @abstractmethod
    async def lease_release(self, key: str, owner: str) -> bool:
        """Give up a lease; False (and no change) when ``owner`` did not hold it."""

    @abstractmethod
    async def lease_owner(self, key: str) -> str | None:
        """The current holder of a lease, or None when it is free or expired."""

    # -- inbox ---------------------------------------------------------------------------------

    @abstractmethod
    async def inbox_put(
        self,
        room_id: str,
        payload: Any,
        *,
        dedupe_key: str | None = None,
        dedupe_ttl: float = 86400.0,
    ) -> InboxItem | None:
        """Store an accepted update durably; None when ``dedupe_key`` was already recorded.

        The dedupe record (same namespace as :meth:`claim_once`) and the item are written
        atomically: a crash cannot leave one without the other.
        """

    @abstractmethod
    async def inbox_claim(
        self, owner: str, *, lease_ttl: float, limit: int = 100
    ) -> list[InboxItem]:
        """Hand ``owner`` unprocessed items of rooms it may work on, each room in arrival order.

        A room is claimed by taking its lease (:func:`room_lease_key`) for ``lease_ttl`` seconds.
        Rooms whose lease another owner holds are skipped. For a room ``owner`` already holds,
        only items not yet given to it are returned; for a room newly taken (free, or its
        holder's lease expired), every unacked item is returned again starting with the oldest.
        A room from which items are returned has its lease set to ``lease_ttl`` from now.
        ``limit`` caps the item count, except that a reclaimed room's previously delivered items
        may come whole (Redis).

        Process a room's items one at a time, ack each with :meth:`commit`, renew the room lease
        while working and release it when done.
        """

    @abstractmethod
    async def inbox_wait(self, seconds: float) -> None:
        """Return when items may have arrived since the last call, or after ``seconds``."""

    @abstractmethod
    async def inbox_size(self) -> int:
        """How many accepted items are not yet acked."""

    # -- outbox --------------------------------------------------------------------------------

    @abstractmethod
    async def outbox_pending(
        self, *, room_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        """Replies not yet marked, oldest first (optionally of one room)."""

    @abstractmethod
    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        """One reply by its ``unique_temp_id``, while it is pending or retained after marking."""

    @abstractmethod
    async def outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        """Mark a pending reply sent (Qiscus accepted it) or failed (it never will).

        Returns True only for the call that changed it from pending: a reply marked once is
        never listed as pending again.
        """

    async def outbox_has_pending(self, room_id: str) -> bool:
        """Whether ``room_id`` has replies not yet marked (the runtime flushes them first).

        This default asks :meth:`outbox_pending`; a backend that knows it cheaply answers
        without a round trip.
        """
        return bool(await self.outbox_pending(room_id=room_id, limit=1))

    # -- handoff -------------------------------------------------------------------------------

    @abstractmethod
    async def handoff_start(
        self, room_id: str, reason: str, *, ttl: float | None = None
    ) -> Handoff:
        """Record that a human took over ``room_id`` (replacing an earlier record)."""

    @abstractmethod
    async def handoff_get(self, room_id: str) -> Handoff | None:
        """The room's handoff, or None when the bot is in charge (never started or expired)."""

    @abstractmethod
    async def handoff_end(self, room_id: str) -> bool:
        """Give the room back to the bot; False when it was not handed off."""

    @abstractmethod
    async def handoff_list(self) -> list[Handoff]:
        """Every room currently handed off, oldest handoff first."""


def check_commit(
    owner: str | None, ack: Sequence[InboxItem], states: Sequence[StateWrite]
) -> list[tuple[str, str | None, float | None]]:
    """Validate a commit's arguments; return state writes as (key, json or None to delete, ttl)."""
    if ack and not owner:
        raise StorageError("commit(ack=...) needs the owner that claimed the items, got none")
    out: list[tuple[str, str | None, float | None]] = []
    for w in states:
        check_text(w.key, "state key")
        if w.delete:
            out.append((w.key, None, None))
            continue
        ttl = None if w.ttl is None else check_ttl(w.ttl, f"ttl of state {w.key!r}")
        out.append((w.key, dumps(w.value, f"state {w.key!r}"), ttl))
    return out


def check_outbox(outbox: Sequence[OutboxItem]) -> list[tuple[str, str, str, str]]:
    """Validate a commit's replies; return them as (id, room_id, payload json, status)."""
    out: list[tuple[str, str, str, str]] = []
    for r in outbox:
        check_text(r.id, "outbox id")
        check_text(r.room_id, "outbox room_id")
        if r.status not in ("pending", "sent", "failed"):
            raise StorageError(
                f"outbox status of {r.id!r} must be 'pending', 'sent' or 'failed', got {r.status!r}"
            )
        out.append((r.id, r.room_id, dumps(r.payload, f"outbox payload of {r.id!r}"), r.status))
    return out


def check_handoff(room_id: str, reason: str, ttl: float | None) -> float | None:
    """Validate handoff arguments; return the TTL."""
    check_text(room_id, "room_id")
    if not isinstance(reason, str):
        raise StorageError(f"handoff reason must be a string, got {reason!r}")
    return None if ttl is None else check_ttl(ttl, "handoff ttl")


def check_limit(limit: int) -> int:
    """Reject a non-positive or non-integer limit."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise StorageError(f"limit must be an integer >= 1, got {limit!r}")
    return limit


def check_status(status: str) -> str:
    """Reject an outbox status other than sent/failed."""
    if status not in ("sent", "failed"):
        raise StorageError(f"outbox status must be 'sent' or 'failed', got {status!r}")
    return status
