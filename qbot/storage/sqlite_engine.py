"""SQLite's transaction engine: one connection, group commit, the fsync off the event loop.

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

The queries (:mod:`qbot.storage.sqlite`) hand it operations: functions of the connection that
only read and write the database.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import structlog

from qbot.errors import StorageError

__all__ = ["CACHE_KIB", "SYNCHRONOUS", "Engine", "Op"]

T = TypeVar("T")
log = structlog.get_logger("qbot.storage.sqlite")
Op = Callable[[sqlite3.Connection], Any]
"""One operation of a group: reads and writes through the connection, nothing else."""

SYNCHRONOUS = ("full", "normal")
_BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 1024
"""SQLite's page cache for the connection, in KiB (SQLite's default is 2,000). What stays hot is
small: the indexes' inner pages and the newest pages of the time-ordered tables; other pages come
from the OS's file cache in microseconds (measured: the same CPU per message at 500 KiB and at
2,000 KiB, 60,000 messages)."""


class _Busy(Exception):
    """Another connection holds the write lock (seen on the event loop, which never waits)."""


class Engine:
    """Group-committed transactions on one SQLite file.

    Args:
        path: the database file (created), or ``":memory:"``.
        schema: the ``CREATE ... IF NOT EXISTS`` script run when the file is opened.
        synchronous: ``"full"`` (fsync every durable commit) or ``"normal"``.
        maintenance: called before each group; an op it returns (an expiry sweep) runs in it.
    """

    def __init__(
        self,
        path: str,
        *,
        schema: str,
        synchronous: str = "full",
        maintenance: Callable[[], Op | None] = lambda: None,
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise StorageError(
                f"sqlite synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"
            )
        self.path = path
        self._schema = schema
        self._synchronous = synchronous
        self._maintenance = maintenance
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._writes: list[tuple[Op, asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        self.checkpoint_every = 1.0
        """Seconds between WAL checkpoints (SQLite's automatic ones are off: see _connect)."""
        self._next_checkpoint = 0.0
        self._checkpoint_failing = False

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
            # On this thread, setting up waits for another process's lock (two `qbot run
            # --workers` processes opening a new file at once: one creates the tables). SQLite
            # answers some of those collisions "locked" at once, without its busy handler (a
            # write after a stale read in WAL mode): they are tried again until the timeout.
            db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
            while True:
                try:
                    self._set_up(db)
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            # No waiting on the event loop: a locked database sends the group to the thread.
            db.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as e:
            db.close()
            raise StorageError(f"cannot set up sqlite database {self.path!r}: {e}") from e
        return db

    def _set_up(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode = WAL")
        # Checkpoints (which fsync the database file) run on the thread after a durable
        # commit (_commit_durable), never inside a commit on the event loop.
        db.execute("PRAGMA wal_autocheckpoint = 0")
        # The resting level: light groups commit at it; a durable group of a `full` storage
        # switches to FULL for its own commit (see _write_loop).
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # negative: KiB, not pages
        db.executescript(self._schema)

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

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` (plain SELECTs) in the next group transaction: one user of the connection
        at a time, and a read sees every write committed before it was asked."""
        return await self.write(op, durable=False)

    async def write(self, op: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
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
            extra = self._maintenance()
            if extra is not None:
                ops.append(extra)
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
                if not self._checkpoint_failing:  # one line per outage (a full disk), not per try
                    log.warning("sqlite.checkpoint_failed", path=self.path, error=str(e))
                self._checkpoint_failing = True
            else:
                if self._checkpoint_failing:
                    log.info("sqlite.checkpoint_recovered", path=self.path)
                self._checkpoint_failing = False

    def _commit(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"sqlite database {self.path!r} failed: {e}") from e
            raise

    async def changed(self, sql: str, args: tuple[Any, ...], *, durable: bool = True) -> bool:
        """Run one UPDATE or DELETE as a write; True when it changed exactly one row."""
        return await self.write(lambda db: db.execute(sql, args).rowcount == 1, durable=durable)
