"""The records that cross the storage interface, and how their JSON is written and read.

Every JSON value a backend stores goes through :func:`dumps` and comes back through
:func:`loads` (both :mod:`qbot._json`): what is read back equals what was written (big integers
included), and what JSON cannot hold (NaN, a datetime, a set) is refused with the key named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from qbot import _json
from qbot.errors import StorageError

__all__ = [
    "DEFAULT_OUTBOX_RETENTION",
    "Claim",
    "Clock",
    "Handoff",
    "InboxItem",
    "JSONText",
    "OutboxItem",
    "OutboxStatus",
    "StateWrite",
    "dumps",
    "loads",
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
class Claim:
    """What :meth:`Storage.inbox_claim` handed a worker.

    Attributes:
        items: the items, each room's in arrival order.
        replies_waiting: the rooms of ``items`` whose outbox held pending replies when they were
            claimed (read in the same step): post those before the room's new work.
        redelivered: the rooms of ``items`` some of whose items were handed out before, to a
            worker that died or lost the room: a reply of theirs may have been posted and not
            recorded, so it is looked up in Qiscus before it is posted again.
    """

    items: list[InboxItem] = field(default_factory=list)
    replies_waiting: frozenset[str] = frozenset()
    redelivered: frozenset[str] = frozenset()


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
        return _json.dumps_exact(value)
    except (TypeError, ValueError) as e:
        raise StorageError(
            f"{what} must be JSON-serialisable (dict, list, str, int, float, bool, None): {e}"
        ) from e


def loads(text: str | bytes) -> Any:
    """Decode a JSON value written by :func:`dumps` (or a webhook body stored as received)."""
    return _json.loads(text)
