"""SQLite storage (``sqlite:///path/qbot.db``): the embedded, durable default.

One connection in WAL mode; every operation is one ``BEGIN IMMEDIATE`` transaction, so other
processes opening the same file (``qbot handoff list`` next to ``qbot run``) see consistent data
and concurrent writers serialise. With ``synchronous=full`` (the default) a committed
:meth:`~SqliteStorage.inbox_put` survives a power cut; ``?synchronous=normal`` in the URL trades
that for speed and still survives a killed process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

import aiosqlite

from qbot.errors import StorageError
from qbot.storage.base import (
    DEFAULT_OUTBOX_RETENTION,
    Clock,
    Handoff,
    InboxItem,
    LeaseLostError,
    OutboxItem,
    OutboxStatus,
    StateWrite,
    Storage,
    check_commit,
    check_handoff,
    check_limit,
    check_status,
    check_text,
    check_ttl,
    dumps,
    loads,
    room_lease_key,
)

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

# Rooms with unacked items whose lease is free, expired or ours, oldest pending item first.
_CLAIMABLE_ROOMS = """
SELECT i.room_id, l.owner FROM inbox i
LEFT JOIN leases l ON l.key = 'room:' || i.room_id AND l.expires_at > ?
WHERE l.owner IS NULL OR (l.owner = ? AND i.claimed_by IS NULL)
GROUP BY i.room_id ORDER BY MIN(i.id) LIMIT ?
"""

_SWEEP_EVERY = 60.0
_SYNCHRONOUS = ("full", "normal")


class SqliteStorage(Storage):
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
        if synchronous not in _SYNCHRONOUS:
            raise StorageError(
                f"sqlite synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}"
            )
        self.path = check_text(path, "sqlite path")
        self._synchronous = synchronous
        self._retention = check_ttl(outbox_retention, "outbox_retention")
        self._db: aiosqlite.Connection | None = None
        # One connection: a transaction's statements must not interleave with another task's.
        self._lock = asyncio.Lock()
        self._arrived = asyncio.Event()
        self._next_sweep = 0.0

    async def open(self) -> None:
        """Open the file, switch to WAL and create the tables. Idempotent."""
        if self._db is not None:
            return
        folder = os.path.dirname(self.path)
        if (
            self.path != ":memory:"
            and folder
            and not await asyncio.to_thread(os.path.isdir, folder)
        ):
            # Checked here: aiosqlite's failed connect leaves a worker thread behind.
            raise StorageError(
                f"cannot open sqlite database {self.path!r}: folder {folder!r} does not exist;"
                " create it or point storage.url elsewhere"
            )
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open sqlite database {self.path!r}: {e}") from e
        try:
            await db.execute("PRAGMA busy_timeout = 10000")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            await db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            await db.close()
            raise StorageError(f"cannot set up sqlite database {self.path!r}: {e}") from e
        self._db = db

    async def close(self) -> None:
        """Close the connection; the storage can be opened again."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._db is None:
            raise StorageError(f"sqlite storage {self.path!r} is not open: call 'await open()'")
        async with self._lock:
            db = self._db
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StorageError(f"sqlite database {self.path!r} failed: {e}") from e

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        async with self._tx() as db, db.execute(sql, args) as cur:
            return cast("list[Any]", await cur.fetchall())

    # -- dedupe --------------------------------------------------------------------------------

    async def claim_once(self, key: str, ttl: float) -> bool:
        check_text(key, "dedupe key")
        ttl = check_ttl(ttl, "dedupe ttl")
        now = self._clock()
        async with self._tx() as db:
            if now >= self._next_sweep:
                self._next_sweep = now + _SWEEP_EVERY
                await db.execute("DELETE FROM dedupe WHERE expires_at <= ?", (now,))
                await db.execute("DELETE FROM state WHERE expires_at <= ?", (now,))
            return await self._claim(db, key, ttl, now)

    @staticmethod
    async def _claim(db: aiosqlite.Connection, key: str, ttl: float, now: float) -> bool:
        cur = await db.execute(
            "INSERT INTO dedupe (key, expires_at) VALUES (?, ?) ON CONFLICT (key) "
            "DO UPDATE SET expires_at = excluded.expires_at WHERE dedupe.expires_at <= ?",
            (key, now + ttl, now),
        )
        return bool(cur.rowcount == 1)

    # -- state ---------------------------------------------------------------------------------

    async def get_state(self, key: str, default: Any = None) -> Any:
        check_text(key, "state key")
        rows = await self._rows(
            "SELECT value FROM state WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            key,
            self._clock(),
        )
        return loads(rows[0][0]) if rows else default

    async def commit(
        self,
        *,
        owner: str | None = None,
        ack: Sequence[InboxItem] = (),
        states: Sequence[StateWrite] = (),
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        writes = check_commit(owner, ack, states)
        replies = [
            (check_text(r.id, "outbox id"), check_text(r.room_id, "outbox room_id"), r.payload)
            for r in outbox
        ]
        texts = [dumps(p, f"outbox payload of {i!r}") for i, _, p in replies]
        now = self._clock()
        async with self._tx() as db:
            for item in ack:
                holder = await self._holder(db, room_lease_key(item.room_id), now)
                if holder != owner:
                    raise LeaseLostError(
                        f"owner {owner!r} no longer holds room {item.room_id!r} "
                        f"(holder: {holder!r}); the commit was not applied and the room's items "
                        "will be processed again"
                    )
            for key, text, ttl in writes:
                if text is None:
                    await db.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    await db.execute(
                        "INSERT OR REPLACE INTO state (key, value, expires_at) VALUES (?, ?, ?)",
                        (key, text, None if ttl is None else now + ttl),
                    )
            if replies:
                await db.execute("DELETE FROM outbox WHERE done_at <= ?", (now - self._retention,))
                await db.executemany(
                    "INSERT OR IGNORE INTO outbox (id, room_id, payload, status, created_at) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    [
                        (i, room, text, now)
                        for (i, room, _), text in zip(replies, texts, strict=True)
                    ],
                )
            await db.executemany(
                "DELETE FROM inbox WHERE id = ? AND room_id = ?",
                [(int(item.id), item.room_id) for item in ack],
            )

    # -- leases --------------------------------------------------------------------------------

    @staticmethod
    async def _holder(db: aiosqlite.Connection, key: str, now: float) -> str | None:
        async with db.execute(
            "SELECT owner FROM leases WHERE key = ? AND expires_at > ?", (key, now)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        check_text(key, "lease key")
        check_text(owner, "lease owner")
        ttl = check_ttl(ttl, "lease ttl")
        now = self._clock()
        async with self._tx() as db:
            if await self._holder(db, key, now) not in (None, owner):
                return False
            await db.execute(_UPSERT_LEASE, (key, owner, now + ttl))
            return True

    async def lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        ttl = check_ttl(ttl, "lease ttl")
        now = self._clock()
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ? AND expires_at > ?",
                (now + ttl, key, owner, now),
            )
            return bool(cur.rowcount == 1)

    async def lease_release(self, key: str, owner: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM leases WHERE key = ? AND owner = ? AND expires_at > ?",
                (key, owner, self._clock()),
            )
            return bool(cur.rowcount == 1)

    async def lease_owner(self, key: str) -> str | None:
        async with self._tx() as db:
            return await self._holder(db, key, self._clock())

    # -- inbox ---------------------------------------------------------------------------------

    async def inbox_put(
        self,
        room_id: str,
        payload: Any,
        *,
        dedupe_key: str | None = None,
        dedupe_ttl: float = 86400.0,
    ) -> InboxItem | None:
        check_text(room_id, "room_id")
        text = dumps(payload, "inbox payload")
        ttl = check_ttl(dedupe_ttl, "dedupe ttl")
        now = self._clock()
        async with self._tx() as db:
            if dedupe_key is not None:
                check_text(dedupe_key, "dedupe key")
                if not await self._claim(db, dedupe_key, ttl, now):
                    return None
            cur = await db.execute(
                "INSERT INTO inbox (room_id, payload, received_at) VALUES (?, ?, ?)",
                (room_id, text, now),
            )
            item_id = cur.lastrowid
        self._arrived.set()
        return InboxItem(str(item_id), room_id, loads(text), now)

    async def inbox_claim(
        self, owner: str, *, lease_ttl: float, limit: int = 100
    ) -> list[InboxItem]:
        check_text(owner, "owner")
        lease_ttl = check_ttl(lease_ttl, "lease_ttl")
        check_limit(limit)
        now = self._clock()
        out: list[InboxItem] = []
        async with self._tx() as db:
            async with db.execute(_CLAIMABLE_ROOMS, (now, owner, limit)) as cur:
                rooms = list(await cur.fetchall())
            for room_id, holder in rooms:
                if len(out) >= limit:
                    break
                if holder is None:  # newly taken: everything unacked is ours to redo
                    await db.execute(
                        "UPDATE inbox SET claimed_by = NULL WHERE room_id = ?", (room_id,)
                    )
                async with db.execute(
                    "SELECT id, payload, received_at FROM inbox "
                    "WHERE room_id = ? AND claimed_by IS NULL ORDER BY id LIMIT ?",
                    (room_id, limit - len(out)),
                ) as cur:
                    rows = list(await cur.fetchall())
                await db.executemany(
                    "UPDATE inbox SET claimed_by = ? WHERE id = ?", [(owner, r[0]) for r in rows]
                )
                await db.execute(_UPSERT_LEASE, (room_lease_key(room_id), owner, now + lease_ttl))
                out.extend(InboxItem(str(i), room_id, loads(p), t) for i, p, t in rows)
        return out

    async def inbox_wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can hang when cancelled here.
        try:
            async with asyncio.timeout(seconds):
                await self._arrived.wait()
        except TimeoutError:
            return
        self._arrived.clear()

    async def inbox_size(self) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM inbox")
        return int(rows[0][0])

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_pending(
        self, *, room_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        check_limit(limit)
        select = (
            "SELECT id, room_id, payload, status, created_at FROM outbox WHERE status = 'pending'"
        )
        if room_id is None:
            rows = await self._rows(f"{select} ORDER BY seq LIMIT ?", limit)
        else:
            rows = await self._rows(
                f"{select} AND room_id = ? ORDER BY seq LIMIT ?", room_id, limit
            )
        return [_reply(row) for row in rows]

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        rows = await self._rows(
            "SELECT id, room_id, payload, status, created_at FROM outbox "
            "WHERE id = ? AND (done_at IS NULL OR done_at > ?)",
            item_id,
            self._clock() - self._retention,
        )
        return _reply(rows[0]) if rows else None

    async def outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        check_status(status)
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE outbox SET status = ?, done_at = ? WHERE id = ? AND status = 'pending'",
                (status, self._clock(), item_id),
            )
            return bool(cur.rowcount == 1)

    # -- handoff -------------------------------------------------------------------------------

    async def handoff_start(
        self, room_id: str, reason: str, *, ttl: float | None = None
    ) -> Handoff:
        ttl = check_handoff(room_id, reason, ttl)
        now = self._clock()
        h = Handoff(room_id, reason, now, None if ttl is None else now + ttl)
        async with self._tx() as db:
            await db.execute(
                "INSERT OR REPLACE INTO handoffs (room_id, reason, started_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (h.room_id, h.reason, h.started_at, h.expires_at),
            )
        return h

    async def handoff_get(self, room_id: str) -> Handoff | None:
        rows = await self._rows(
            "SELECT room_id, reason, started_at, expires_at FROM handoffs "
            "WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)",
            room_id,
            self._clock(),
        )
        return Handoff(*rows[0]) if rows else None

    async def handoff_end(self, room_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM handoffs WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (room_id, self._clock()),
            )
            return bool(cur.rowcount == 1)

    async def handoff_list(self) -> list[Handoff]:
        now = self._clock()
        async with self._tx() as db:
            await db.execute("DELETE FROM handoffs WHERE expires_at <= ?", (now,))
            async with db.execute(
                "SELECT room_id, reason, started_at, expires_at FROM handoffs "
                "ORDER BY started_at, room_id"
            ) as cur:
                rows = await cur.fetchall()
        return [Handoff(*row) for row in rows]


def _reply(row: Any) -> OutboxItem:
    status = cast("OutboxStatus", row[3])
    return OutboxItem(str(row[0]), str(row[1]), loads(row[2]), status, float(row[4]))
