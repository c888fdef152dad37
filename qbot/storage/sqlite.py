"""SQLite storage (``sqlite:///path/qbot.db``): the embedded, durable default.

The queries of every concern, run as operations of the group-commit engine
(:mod:`qbot.storage.sqlite_engine`), which owns the connection and the transactions.

With ``synchronous=full`` (the default) a committed :meth:`~SqliteStorage.inbox_put` survives a
power cut; ``?synchronous=normal`` in the URL trades that for speed and still survives a killed
process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from functools import lru_cache, partial
from typing import Any, Literal, cast

from qbot._aio import LoopEvent, loop_event
from qbot.storage.base import ReplyRow, StateRow, Storage, check_text, check_ttl, lease_lost
from qbot.storage.keys import ROOM_LEASE_PREFIX, room_lease_key
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
from qbot.storage.sqlite_engine import Engine, Op
from qbot.storage.sqlite_schedule import SCHEDULE_SCHEMA, SqliteSchedules

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dedupe_expiry ON dedupe (expires_at);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL);
CREATE INDEX IF NOT EXISTS state_expiry ON state (expires_at);
CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL,
                                   expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL,
                                  payload TEXT NOT NULL, received_at REAL NOT NULL,
                                  claimed_by TEXT);
CREATE INDEX IF NOT EXISTS inbox_room ON inbox (room_id, id);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                   room_id TEXT NOT NULL, payload TEXT NOT NULL,
                                   status TEXT NOT NULL, created_at REAL NOT NULL, done_at REAL);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, room_id, seq);
CREATE INDEX IF NOT EXISTS outbox_done ON outbox (done_at);
CREATE TABLE IF NOT EXISTS handoffs (room_id TEXT PRIMARY KEY, reason TEXT NOT NULL,
                                     started_at REAL NOT NULL, expires_at REAL);
"""

_UPSERT_LEASE = (
    "INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
    "DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
)

# Rooms with unacked items whose lease is free, expired or ours, oldest pending item first, and
# whether each has replies pending in the outbox.
_CLAIMABLE_ROOMS = """
SELECT i.room_id, l.owner,
       EXISTS (SELECT 1 FROM outbox o WHERE o.status = 'pending' AND o.room_id = i.room_id)
FROM inbox i
LEFT JOIN leases l ON l.key = ? || i.room_id AND l.expires_at > ?
WHERE l.owner IS NULL OR (l.owner = ? AND i.claimed_by IS NULL)
GROUP BY i.room_id ORDER BY MIN(i.id) LIMIT ?
"""

_UPSERT_REPLY = (
    "INSERT INTO outbox (id, room_id, payload, status, created_at, done_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "status = excluded.status, done_at = excluded.done_at "
    "WHERE outbox.status = 'pending' AND excluded.status != 'pending'"
)
_RENEW_LEASE = "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ? AND expires_at > ?"
_ACK = (
    "DELETE FROM inbox WHERE id = ? AND room_id = ? AND EXISTS (SELECT 1 FROM leases "
    "WHERE key = ? AND owner = ? AND expires_at > ?)"
)
_HAND_OUT = (
    "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ? AND expires_at > ? "
    "AND NOT EXISTS (SELECT 1 FROM inbox WHERE room_id = ? AND claimed_by IS NULL)"
)
_HOLDER = "SELECT owner FROM leases WHERE key = ? AND expires_at > ?"
_STATE = "SELECT value FROM state WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
_HANDOFF = (
    "SELECT room_id, reason, started_at, expires_at FROM handoffs "
    "WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_OUTBOX_GET = (
    "SELECT id, room_id, payload, status, created_at FROM outbox "
    "WHERE id = ? AND (done_at IS NULL OR done_at > ?)"
)


@lru_cache(maxsize=64)
def _load_room_sql(keys: int, outbox_ids: int) -> str:
    """One statement reading a room's handoff, ``keys`` states and ``outbox_ids`` replies, as
    rows of (kind, key, ...): ``h`` (room, reason, started_at, expires_at), ``s`` (key, value),
    ``o`` (the columns of :data:`_OUTBOX_GET`)."""
    parts = [
        "SELECT 'h', room_id, reason, started_at, expires_at, NULL FROM handoffs "
        "WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)"
    ]
    marks = ", ".join("?" * keys) or "NULL"
    parts.append(
        f"SELECT 's', key, value, NULL, NULL, NULL FROM state WHERE key IN ({marks}) "
        "AND (expires_at IS NULL OR expires_at > ?)"
    )
    marks = ", ".join("?" * outbox_ids) or "NULL"
    parts.append(
        "SELECT 'o', id, room_id, payload, status, created_at FROM outbox "
        f"WHERE id IN ({marks}) AND (done_at IS NULL OR done_at > ?)"
    )
    return " UNION ALL ".join(parts)


_PENDING = "SELECT id, room_id, payload, status, created_at FROM outbox WHERE status = 'pending'"
_SWEEP_EVERY = 60.0


class SqliteStorage(SqliteSchedules, Storage):
    """Storage in one SQLite file.

    Args:
        path: the database file (created with its tables), or ``":memory:"``.
        clock: time source for every expiry; tests pass a controllable one.
        synchronous: ``"full"`` (fsync every commit) or ``"normal"`` (WAL default).
        outbox_retention: seconds a sent or failed reply is remembered.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "full",
        outbox_retention: float = DEFAULT_OUTBOX_RETENTION,
    ) -> None:
        super().__init__(clock=clock)
        self.path = check_text(path, "sqlite path")
        self._retention = check_ttl(outbox_retention, "outbox_retention")
        self._next_sweep = 0.0
        self._engine = Engine(
            self.path,
            schema=_SCHEMA + SCHEDULE_SCHEMA,
            synchronous=synchronous,
            maintenance=self._maintenance,
        )
        self._write = self._engine.write
        self._read = self._engine.read
        self._arrived: LoopEvent | None = None  # see _arrival

    @property
    def durable(self) -> bool:
        """True for a file; False for ``":memory:"``, gone with the connection."""
        return self.path != ":memory:"

    async def open(self) -> None:
        """Open the file, switch to WAL and create the tables. Idempotent."""
        await self._engine.open()

    async def close(self) -> None:
        """Finish the writes in hand and close the connection; the storage can be opened again."""
        await self._engine.close()

    def _maintenance(self) -> Op | None:
        """Every minute, with a group: delete expired dedupe records, states and done replies."""
        now = self._clock()
        if now < self._next_sweep:
            return None
        self._next_sweep = now + _SWEEP_EVERY
        return partial(_sweep, now=now, kept=now - self._retention)

    # -- state ---------------------------------------------------------------------------------

    async def _do_get_state(self, key: str) -> str | None:
        now = self._clock()
        row = await self._read(lambda db: db.execute(_STATE, (key, now)).fetchone())
        return None if row is None else str(row[0])

    async def _do_load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str]
    ) -> tuple[Handoff | None, list[str | bytes | None], list[OutboxItem | None]]:
        now = self._clock()
        kept = now - self._retention
        sql = _load_room_sql(len(keys), len(outbox_ids))

        def op(db: sqlite3.Connection) -> list[Any]:
            return db.execute(sql, (room_id, now, *keys, now, *outbox_ids, kept)).fetchall()

        # Read in the next group transaction, with the writes in flight: one statement for the
        # handoff, the states and the replies.
        handoff: Handoff | None = None
        states: dict[str, str] = {}
        replies: dict[str, OutboxItem] = {}
        for kind, key, *rest in await self._read(op):
            if kind == "h":
                handoff = Handoff(key, *rest[:3])
            elif kind == "s":
                states[key] = rest[0]
            else:
                replies[key] = _reply((key, *rest))
        return handoff, [states.get(k) for k in keys], [replies.get(i) for i in outbox_ids]

    async def _do_commit(
        self,
        owner: str,
        ack: Sequence[InboxItem],
        states: Sequence[StateRow],
        replies: Sequence[ReplyRow],
    ) -> None:
        now = self._clock()
        acks = [
            (int(item.id), item.room_id, room_lease_key(item.room_id), owner, now) for item in ack
        ]

        def op(db: sqlite3.Connection) -> None:
            # Each ack deletes its item only while the owner holds the room's lease: one
            # statement that is also the lease check. An item already acked (none deleted) leaves
            # the room unchecked, then read as before; a lost lease raises, and the engine undoes
            # whatever this op wrote.
            held: set[str] = set()
            for args in acks:
                room = args[1]
                if db.execute(_ACK, args).rowcount == 1:
                    held.add(room)
                elif room not in held:
                    row = db.execute(_HOLDER, (args[2], now)).fetchone()
                    holder = None if row is None else str(row[0])
                    if holder != owner:
                        raise lease_lost(owner, room, holder)
                    held.add(room)
            for key, text, ttl in states:
                if text is None:
                    db.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO state (key, value, expires_at) VALUES (?, ?, ?)",
                        (key, text, None if ttl is None else now + ttl),
                    )
            if replies:
                # One upsert per reply: a new id is inserted as given; a pending one given as
                # sent or failed is marked so; an id already done is left as it is.
                db.executemany(_UPSERT_REPLY, [
                    (i, room, text, status, now, None if status == "pending" else now)
                    for i, room, text, status in replies
                ])  # fmt: skip

        await self._write(op)

    # -- leases --------------------------------------------------------------------------------

    async def _do_lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock()

        def op(db: sqlite3.Connection) -> bool:
            row = db.execute(_HOLDER, (key, now)).fetchone()
            if row is not None and row[0] != owner:
                return False
            db.execute(_UPSERT_LEASE, (key, owner, now + ttl))
            return True

        return await self._write(op, durable=False)

    async def _do_lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        return await self._engine.changed(
            _RENEW_LEASE,
            (now + ttl, key, owner, now),
            durable=False,
        )

    async def _do_lease_release(self, key: str, owner: str) -> bool:
        now = self._clock()
        return await self._engine.changed(
            "DELETE FROM leases WHERE key = ? AND owner = ? AND expires_at > ?",
            (key, owner, now),
            durable=False,
        )

    # -- inbox ---------------------------------------------------------------------------------

    async def _do_inbox_put(
        self, room_id: str, text: str, dedupe_key: str | None, dedupe_ttl: float
    ) -> InboxItem | None:
        now = self._clock()

        def op(db: sqlite3.Connection) -> int | None:
            if dedupe_key is not None and not _claim(db, dedupe_key, dedupe_ttl, now):
                return None
            return db.execute(
                "INSERT INTO inbox (room_id, payload, received_at) VALUES (?, ?, ?)",
                (room_id, text, now),
            ).lastrowid

        item_id = await self._write(op)
        if item_id is None:
            return None
        self._arrival().set()
        return InboxItem.stored(str(item_id), room_id, text, now)

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

        def op(db: sqlite3.Connection) -> tuple[int | None, bool]:
            if dedupe_key is not None and not _claim(db, dedupe_key, dedupe_ttl, now):
                return None, False
            # Ours if we hold the lease and nothing of the room waits to be handed out before it:
            # then the lease is extended, as a claim would (one statement for both).
            held = db.execute(_HAND_OUT, (now + lease_ttl, key, owner, now, room_id)).rowcount == 1
            return db.execute(
                "INSERT INTO inbox (room_id, payload, received_at, claimed_by) VALUES (?, ?, ?, ?)",
                (room_id, text, now, owner if held else None),
            ).lastrowid, held

        item_id, held = await self._write(op)
        if item_id is None:
            return None, False
        if not held:
            self._arrival().set()
        return InboxItem.stored(str(item_id), room_id, text, now), held

    async def _do_inbox_claim(self, owner: str, lease_ttl: float, limit: int) -> Claim:
        now = self._clock()

        def op(db: sqlite3.Connection) -> list[tuple[str, list[Any], bool, bool]]:
            out: list[tuple[str, list[Any], bool, bool]] = []
            taken = 0
            args = (ROOM_LEASE_PREFIX, now, owner, limit)
            for room_id, holder, pending in db.execute(_CLAIMABLE_ROOMS, args).fetchall():
                if taken >= limit:
                    break
                # A room newly taken (free, or its holder's lease expired): every unacked item
                # is ours to redo. A room we hold: the items not handed out yet.
                fresh = "" if holder is None else " AND claimed_by IS NULL"
                rows = db.execute(
                    f"SELECT id, payload, received_at, claimed_by FROM inbox "
                    f"WHERE room_id = ?{fresh} ORDER BY id LIMIT ?",
                    (room_id, limit - taken),
                ).fetchall()
                if rows:
                    db.execute(
                        "UPDATE inbox SET claimed_by = ? WHERE room_id = ? AND id <= ?",
                        (owner, room_id, rows[-1][0]),
                    )
                    if holder is None and len(rows) == limit - taken:  # the rest, for later
                        db.execute(
                            "UPDATE inbox SET claimed_by = NULL WHERE room_id = ? AND id > ?",
                            (room_id, rows[-1][0]),
                        )
                db.execute(_UPSERT_LEASE, (room_lease_key(room_id), owner, now + lease_ttl))
                # Handed out before, by a holder whose lease lapsed: redelivered.
                again = holder is None and any(row[3] is not None for row in rows)
                out.append((room_id, rows, bool(pending), again))
                taken += len(rows)
            return out

        rooms = await self._write(op, durable=False)
        items = [
            InboxItem.stored(str(i), room_id, p, t)
            for room_id, rows, _, _ in rooms
            for i, p, t, _ in rows
        ]
        return Claim(
            items,
            frozenset(room_id for room_id, rows, waiting, _ in rooms if rows and waiting),
            frozenset(room_id for room_id, rows, _, again in rooms if rows and again),
        )

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
        row = await self._read(lambda db: db.execute("SELECT COUNT(*) FROM inbox").fetchone())
        return int(row[0])

    # -- outbox --------------------------------------------------------------------------------

    async def _do_outbox_pending(self, room_id: str | None, limit: int) -> list[OutboxItem]:
        args: tuple[Any, ...]
        if room_id is None:
            sql, args = f"{_PENDING} ORDER BY seq LIMIT ?", (limit,)
        else:
            sql, args = f"{_PENDING} AND room_id = ? ORDER BY seq LIMIT ?", (room_id, limit)
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [_reply(row) for row in rows]

    async def _do_outbox_get(self, item_id: str) -> OutboxItem | None:
        kept = self._clock() - self._retention
        row = await self._read(lambda db: db.execute(_OUTBOX_GET, (item_id, kept)).fetchone())
        return None if row is None else _reply(row)

    async def _do_outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        now = self._clock()
        return await self._engine.changed(
            "UPDATE outbox SET status = ?, done_at = ? WHERE id = ? AND status = 'pending'",
            (status, now, item_id),
        )

    # -- handoff -------------------------------------------------------------------------------

    async def _do_handoff_start(self, room_id: str, reason: str, ttl: float | None) -> Handoff:
        now = self._clock()
        h = Handoff(room_id, reason, now, None if ttl is None else now + ttl)
        await self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO handoffs (room_id, reason, started_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (h.room_id, h.reason, h.started_at, h.expires_at),
            )
        )
        return h

    async def _do_handoff_get(self, room_id: str) -> Handoff | None:
        now = self._clock()
        row = await self._read(lambda db: db.execute(_HANDOFF, (room_id, now)).fetchone())
        return None if row is None else Handoff(*row)

    async def _do_handoff_end(self, room_id: str) -> bool:
        now = self._clock()
        return await self._engine.changed(
            "DELETE FROM handoffs WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)",
            (room_id, now),
        )

    async def _do_handoff_list(self) -> list[Handoff]:
        now = self._clock()

        def op(db: sqlite3.Connection) -> list[Any]:
            db.execute("DELETE FROM handoffs WHERE expires_at <= ?", (now,))
            return db.execute(
                "SELECT room_id, reason, started_at, expires_at FROM handoffs "
                "ORDER BY started_at, room_id"
            ).fetchall()

        return [Handoff(*row) for row in await self._write(op)]


def _claim(db: sqlite3.Connection, key: str, ttl: float, now: float) -> bool:
    cur = db.execute(
        "INSERT INTO dedupe (key, expires_at) VALUES (?, ?) ON CONFLICT (key) "
        "DO UPDATE SET expires_at = excluded.expires_at WHERE dedupe.expires_at <= ?",
        (key, now + ttl, now),
    )
    return cur.rowcount == 1


def _sweep(db: sqlite3.Connection, *, now: float, kept: float) -> None:
    """Delete what has expired: dedupe records, states, and replies done before ``kept``."""
    db.execute("DELETE FROM dedupe WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM state WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM outbox WHERE done_at <= ?", (kept,))


def _reply(row: Any) -> OutboxItem:
    status = cast("OutboxStatus", row[3])
    return OutboxItem(str(row[0]), str(row[1]), loads(row[2]), status, float(row[4]))
