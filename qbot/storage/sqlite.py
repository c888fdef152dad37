"""SQLite storage (``sqlite:///path/qbot.db``): the embedded, durable default.

One connection in WAL mode, used by one writer task at a time. Operations are **group
committed**: the ones that arrive while a transaction is being written (concurrent webhooks,
commits of different rooms, reads) are applied together in the next ``BEGIN IMMEDIATE``
transaction. Its statements run on the event loop (microseconds each); its COMMIT, the fsync,
runs on a thread of its own, so the loop goes on meanwhile and the fsync is shared by the group.
An operation that raises (a lost lease) is dropped and the rest of the group run again, so it is
undone alone. A group of only reads, claims and lease changes commits without an fsync, on the
loop: a claim lost to a power cut is claimed again, a lease expires. A caller's operation returns
only once its transaction is committed. Other processes opening the same file (``qbot handoff
list`` next to ``qbot run``) see consistent data; while one holds the write lock, groups wait for
it on the thread, never on the event loop.

With ``synchronous=full`` (the default) a committed :meth:`~SqliteStorage.inbox_put` survives a
power cut; ``?synchronous=normal`` in the URL trades that for speed and still survives a killed
process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any, Literal, TypeVar, cast

import structlog

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
    check_outbox,
    check_status,
    check_text,
    check_ttl,
    dumps,
    loads,
    room_lease_key,
)

T = TypeVar("T")
log = structlog.get_logger("qbot.storage.sqlite")
Op = Callable[[sqlite3.Connection], Any]

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
LEFT JOIN leases l ON l.key = 'room:' || i.room_id AND l.expires_at > ?
WHERE l.owner IS NULL OR (l.owner = ? AND i.claimed_by IS NULL)
GROUP BY i.room_id ORDER BY MIN(i.id) LIMIT ?
"""

_UPSERT_REPLY = (
    "INSERT INTO outbox (id, room_id, payload, status, created_at, done_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "status = excluded.status, done_at = excluded.done_at "
    "WHERE outbox.status = 'pending' AND excluded.status != 'pending'"
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


_ROOM_HAS_PENDING = "SELECT 1 FROM outbox WHERE status = 'pending' AND room_id = ? LIMIT 1"
_SWEEP_EVERY = 60.0
_BUSY_TIMEOUT_MS = 10_000


class _Busy(Exception):
    """Another connection holds the write lock (seen on the event loop, which never waits)."""


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
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._writes: list[tuple[Op, asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        self._next_sweep = 0.0
        self.checkpoint_every = 1.0
        """Seconds between WAL checkpoints (SQLite's automatic ones are off: see _connect)."""
        self._next_checkpoint = 0.0
        # Rooms the last inbox_claim handed out, and whether each had pending replies then (read
        # in the claim's transaction): the room worker's first question, answered without a hop.
        # Replaced by each claim, used once, and dropped for a room this process queues replies to.
        self._claimed_pending: dict[str, bool] = {}

    # -- connection and the writer -----------------------------------------------------------

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
            raise StorageError(
                f"cannot open sqlite database {self.path!r}: folder {folder!r} does not exist;"
                " create it or point storage.url elsewhere"
            )
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qbot-sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(thread, self._connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        self._db, self._thread = db, thread

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open sqlite database {self.path!r}: {e}") from e
        try:
            # No waiting on the event loop: a locked database sends the group to the thread.
            db.execute("PRAGMA busy_timeout = 0")
            db.execute("PRAGMA journal_mode = WAL")
            # Checkpoints (which fsync the database file) run on the thread after a durable
            # commit (_commit_durable), never inside a commit on the event loop.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            # The resting level: light groups commit at it; a durable group of a `full` storage
            # switches to FULL for its own commit (see _write_loop).
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            db.close()
            raise StorageError(f"cannot set up sqlite database {self.path!r}: {e}") from e
        return db

    async def close(self) -> None:
        """Finish the writes in hand and close the connection; the storage can be opened again."""
        if self._db is None:
            return
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        db, thread = self._db, self._thread
        self._db, self._thread = None, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, db.close)
            thread.shutdown(wait=False)

    def _need(self) -> tuple[sqlite3.Connection, ThreadPoolExecutor]:
        if self._db is None or self._thread is None:
            raise StorageError(f"sqlite storage {self.path!r} is not open: call 'await open()'")
        return self._db, self._thread

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` (plain SELECTs) in the next group transaction: one user of the connection
        at a time, and a read sees every write committed before it was asked."""
        return await self._write(op, durable=False)

    async def _write(self, op: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Apply ``op`` in the next group transaction; return once that transaction committed.

        If ``op`` raises, the error is raised here and nothing it did is kept; the other writes
        of the group commit. ``durable=False`` marks an op whose writes may be lost in a power
        cut (reads, claims and leases: a lost one is redone, a lease expires): a group of only
        such ops commits without an fsync, on the event loop.
        """
        db, _ = self._need()
        if not durable and not self._writes and (self._writer is None or self._writer.done()):
            # Nothing in flight: a light op runs now, in its own transaction, with no task,
            # future or trip through the event loop (under load most of them arrive alone).
            try:
                [(ok, value)] = self._apply(db, [op], wait=False)
                self._commit(db)
            except _Busy:
                pass  # another process is writing: queue it, the writer waits on the thread
            else:
                if ok:
                    return cast("T", value)
                raise value
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.append((op, future, durable))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="qbot-sqlite-writer")
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._writes:
            group, self._writes = self._writes, []
            ops = [op for op, _, _ in group]
            # Only a group holding a durable write commits on the thread (its COMMIT may fsync);
            # without one the COMMIT takes microseconds, and no hop to the thread is worth it.
            durable = any(d for _, _, d in group)
            fsync = durable and self._synchronous == "full"
            now = self._clock()
            if now >= self._next_sweep:  # expired dedupe records, states and done replies
                self._next_sweep = now + _SWEEP_EVERY
                ops.append(partial(_sweep, now=now, kept=now - self._retention))
            try:
                db, thread = self._need()
                if fsync:
                    db.execute("PRAGMA synchronous = FULL")
                try:
                    # The statements run here, on the event loop: each takes microseconds, and
                    # a hop to the thread per group costs more than they do (and the two
                    # threads would fight over the GIL).
                    results = self._apply(db, ops, wait=False)
                except _Busy:  # another process is writing: wait for it on the thread
                    results = await loop.run_in_executor(thread, self._apply, db, ops, True)
                if durable:  # the fsync: milliseconds, on the thread (it releases the GIL)
                    await loop.run_in_executor(thread, self._commit_durable, db)
                else:
                    self._commit(db)
            except BaseException as e:  # the transaction failed (or the loop is going away)
                error = e if isinstance(e, Exception) else StorageError("sqlite writer stopped")
                for _, future, _ in group:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(e, Exception):
                    raise
                continue
            finally:
                if fsync and self._db is not None and not self._db.in_transaction:
                    # (Still in a transaction only if cancelled mid-commit; the next durable group
                    # then sets it back.)
                    self._db.execute("PRAGMA synchronous = NORMAL")
            for (_, future, _), (ok, value) in zip(group, results, strict=False):
                if future.done():  # the caller was cancelled; its write is applied anyway
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _apply(self, db: sqlite3.Connection, ops: list[Op], wait: bool) -> list[tuple[bool, Any]]:
        """Open the group's transaction and run every op in it; the caller commits.

        No savepoint per op (two statements each, as many as the op's own): when an op raises,
        the transaction is rolled back and the group run again without it. Ops only read and
        write the database, so running one again gives what it would have given the first time.

        Raises:
            _Busy: ``wait`` is false and another connection holds the write lock.
            StorageError: the database failed; nothing of the group is applied.
        """
        failed: dict[int, Exception] = {}
        try:
            while True:
                self._begin(db, wait)
                try:
                    values: dict[int, Any] = {}
                    for index, op in enumerate(ops):
                        if index in failed:
                            continue
                        try:
                            values[index] = op(db)
                        except sqlite3.Error:
                            raise  # the connection itself failed: the whole group fails
                        except Exception as e:
                            failed[index] = e
                            break
                    else:
                        return [
                            (False, failed[i]) if i in failed else (True, values[i])
                            for i in range(len(ops))
                        ]
                    db.execute("ROLLBACK")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as e:
            raise StorageError(f"sqlite database {self.path!r} failed: {e}") from e

    def _begin(self, db: sqlite3.Connection, wait: bool) -> None:
        if wait:  # on the thread: let SQLite's busy handler wait for the other writer
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            try:
                db.execute("BEGIN IMMEDIATE")
            finally:
                db.execute("PRAGMA busy_timeout = 0")
            return
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                raise _Busy from e
            raise

    def _commit_durable(self, db: sqlite3.Connection) -> None:
        """COMMIT, then, at most every ``checkpoint_every`` seconds, move the WAL's pages into
        the database file (PASSIVE: it waits for no reader and no writer)."""
        self._commit(db)
        now = time.monotonic()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.checkpoint_every
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:  # the commit stands: no error for it; the next one retries
                log.warning("sqlite.checkpoint_failed", path=self.path, error=str(e))

    def _commit(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"sqlite database {self.path!r} failed: {e}") from e
            raise

    async def _changed(self, sql: str, args: tuple[Any, ...], *, durable: bool = True) -> bool:
        """Run one UPDATE or DELETE as a write; True when it changed exactly one row."""
        return await self._write(lambda db: db.execute(sql, args).rowcount == 1, durable=durable)

    # -- dedupe --------------------------------------------------------------------------------

    async def claim_once(self, key: str, ttl: float) -> bool:
        check_text(key, "dedupe key")
        ttl = check_ttl(ttl, "dedupe ttl")
        now = self._clock()
        return await self._write(lambda db: _claim(db, key, ttl, now))

    # -- state ---------------------------------------------------------------------------------

    async def get_state(self, key: str, default: Any = None) -> Any:
        check_text(key, "state key")
        now = self._clock()
        row = await self._read(lambda db: db.execute(_STATE, (key, now)).fetchone())
        return loads(row[0]) if row else default

    async def load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str] = ()
    ) -> tuple[Handoff | None, list[Any], list[OutboxItem | None]]:
        check_text(room_id, "room_id")
        for key in keys:
            check_text(key, "state key")
        now = self._clock()
        kept = now - self._retention

        sql = _load_room_sql(len(keys), len(outbox_ids))

        def op(db: sqlite3.Connection) -> list[Any]:
            return db.execute(sql, (room_id, now, *keys, now, *outbox_ids, kept)).fetchall()

        # Read in the next group transaction, with the writes in flight: one statement for the
        # handoff, the states and the replies.
        handoff: Handoff | None = None
        states: dict[str, Any] = {}
        replies: dict[str, OutboxItem] = {}
        for kind, key, *rest in await self._write(op, durable=False):
            if kind == "h":
                handoff = Handoff(key, *rest[:3])
            elif kind == "s":
                states[key] = loads(rest[0])
            else:
                replies[key] = _reply((key, *rest))
        return handoff, [states.get(k) for k in keys], [replies.get(i) for i in outbox_ids]

    async def commit(
        self,
        *,
        owner: str | None = None,
        ack: Sequence[InboxItem] = (),
        states: Sequence[StateWrite] = (),
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        writes = check_commit(owner, ack, states)
        replies = check_outbox(outbox)
        now = self._clock()
        acks = [(int(item.id), item.room_id) for item in ack]
        rooms = list(dict.fromkeys(item.room_id for item in ack))
        for r in outbox:
            self._claimed_pending.pop(r.room_id, None)

        def op(db: sqlite3.Connection) -> None:
            for room in rooms:
                row = db.execute(_HOLDER, (room_lease_key(room), now)).fetchone()
                holder = None if row is None else str(row[0])
                if holder != owner:
                    raise LeaseLostError(
                        f"owner {owner!r} no longer holds room {room!r} "
                        f"(holder: {holder!r}); the commit was not applied and the room's items "
                        "will be processed again"
                    )
            for key, text, ttl in writes:
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
            if acks:
                db.executemany("DELETE FROM inbox WHERE id = ? AND room_id = ?", acks)

        await self._write(op)

    # -- leases --------------------------------------------------------------------------------

    async def lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        check_text(key, "lease key")
        check_text(owner, "lease owner")
        ttl = check_ttl(ttl, "lease ttl")
        now = self._clock()

        def op(db: sqlite3.Connection) -> bool:
            row = db.execute(_HOLDER, (key, now)).fetchone()
            if row is not None and row[0] != owner:
                return False
            db.execute(_UPSERT_LEASE, (key, owner, now + ttl))
            return True

        return await self._write(op, durable=False)

    async def lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        ttl = check_ttl(ttl, "lease ttl")
        now = self._clock()
        return await self._changed(
            "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ? AND expires_at > ?",
            (now + ttl, key, owner, now),
            durable=False,
        )

    async def lease_release(self, key: str, owner: str) -> bool:
        now = self._clock()
        return await self._changed(
            "DELETE FROM leases WHERE key = ? AND owner = ? AND expires_at > ?",
            (key, owner, now),
            durable=False,
        )

    async def lease_owner(self, key: str) -> str | None:
        now = self._clock()
        row = await self._read(lambda db: db.execute(_HOLDER, (key, now)).fetchone())
        return None if row is None else str(row[0])

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
        if dedupe_key is not None:
            check_text(dedupe_key, "dedupe key")
        now = self._clock()

        def op(db: sqlite3.Connection) -> int | None:
            if dedupe_key is not None and not _claim(db, dedupe_key, ttl, now):
                return None
            return db.execute(
                "INSERT INTO inbox (room_id, payload, received_at) VALUES (?, ?, ?)",
                (room_id, text, now),
            ).lastrowid

        item_id = await self._write(op)
        if item_id is None:
            return None
        self._arrived.set()
        return InboxItem.stored(str(item_id), room_id, text, now)

    async def inbox_claim(
        self, owner: str, *, lease_ttl: float, limit: int = 100
    ) -> list[InboxItem]:
        check_text(owner, "owner")
        lease_ttl = check_ttl(lease_ttl, "lease_ttl")
        check_limit(limit)
        now = self._clock()

        def op(db: sqlite3.Connection) -> list[tuple[str, list[Any], bool]]:
            out: list[tuple[str, list[Any], bool]] = []
            taken = 0
            claimable = db.execute(_CLAIMABLE_ROOMS, (now, owner, limit)).fetchall()
            for room_id, holder, pending in claimable:
                if taken >= limit:
                    break
                # A room newly taken (free, or its holder's lease expired): every unacked item
                # is ours to redo. A room we hold: the items not handed out yet.
                fresh = "" if holder is None else " AND claimed_by IS NULL"
                rows = db.execute(
                    f"SELECT id, payload, received_at FROM inbox WHERE room_id = ?{fresh} "
                    "ORDER BY id LIMIT ?",
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
                out.append((room_id, rows, bool(pending)))
                taken += len(rows)
            return out

        rooms = await self._write(op, durable=False)
        self._claimed_pending = {room_id: pending for room_id, rows, pending in rooms if rows}
        return [
            InboxItem.stored(str(i), room_id, p, t)
            for room_id, rows, _ in rooms
            for i, p, t in rows
        ]

    async def inbox_wait(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can hang when cancelled here.
        try:
            async with asyncio.timeout(seconds):
                await self._arrived.wait()
        except TimeoutError:
            return
        self._arrived.clear()

    async def inbox_size(self) -> int:
        row = await self._read(lambda db: db.execute("SELECT COUNT(*) FROM inbox").fetchone())
        return int(row[0])

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_pending(
        self, *, room_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        check_limit(limit)
        select = (
            "SELECT id, room_id, payload, status, created_at FROM outbox WHERE status = 'pending'"
        )
        args: tuple[Any, ...]
        if room_id is None:
            sql, args = f"{select} ORDER BY seq LIMIT ?", (limit,)
        else:
            sql, args = f"{select} AND room_id = ? ORDER BY seq LIMIT ?", (room_id, limit)
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [_reply(row) for row in rows]

    async def outbox_has_pending(self, room_id: str) -> bool:
        found = self._claimed_pending.pop(room_id, None)
        if found is not None:  # read by the claim that just handed the room out
            return found
        row = await self._read(lambda db: db.execute(_ROOM_HAS_PENDING, (room_id,)).fetchone())
        return row is not None

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        kept = self._clock() - self._retention
        row = await self._read(lambda db: db.execute(_OUTBOX_GET, (item_id, kept)).fetchone())
        return None if row is None else _reply(row)

    async def outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        check_status(status)
        now = self._clock()
        return await self._changed(
            "UPDATE outbox SET status = ?, done_at = ? WHERE id = ? AND status = 'pending'",
            (status, now, item_id),
        )

    # -- handoff -------------------------------------------------------------------------------

    async def handoff_start(
        self, room_id: str, reason: str, *, ttl: float | None = None
    ) -> Handoff:
        ttl = check_handoff(room_id, reason, ttl)
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

    async def handoff_get(self, room_id: str) -> Handoff | None:
        now = self._clock()
        row = await self._read(lambda db: db.execute(_HANDOFF, (room_id, now)).fetchone())
        return None if row is None else Handoff(*row)

    async def handoff_end(self, room_id: str) -> bool:
        now = self._clock()
        return await self._changed(
            "DELETE FROM handoffs WHERE room_id = ? AND (expires_at IS NULL OR expires_at > ?)",
            (room_id, now),
        )

    async def handoff_list(self) -> list[Handoff]:
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
