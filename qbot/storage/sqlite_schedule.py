"""Scheduled jobs in SQLite: the :class:`SqliteStorage` part of ScheduleStore.

One row per (room, name); each method is one transaction of the storage's engine.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from qbot.storage.records import Clock
from qbot.storage.schedule import Job, ScheduleStore
from qbot.storage.sqlite_engine import Engine

__all__ = ["SCHEDULE_SCHEMA", "SqliteSchedules"]

SCHEDULE_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule (room_id TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL,
                                     due_at REAL NOT NULL, payload TEXT NOT NULL,
                                     cancel_on_reply INTEGER NOT NULL, created_at REAL NOT NULL,
                                     taken_until REAL NOT NULL DEFAULT 0,
                                     fired INTEGER NOT NULL DEFAULT 0,
                                     PRIMARY KEY (room_id, name));
CREATE INDEX IF NOT EXISTS schedule_due ON schedule (fired, due_at);
"""

_COLUMNS = "id, room_id, name, due_at, payload, cancel_on_reply, created_at, fired"


def _job(row: Any) -> Job:
    return Job.decoded(*row)


class SqliteSchedules(ScheduleStore):
    """Jobs in the ``schedule`` table; mixed into :class:`~qbot.storage.sqlite.SqliteStorage`."""

    _clock: Clock
    _engine: Engine

    async def _do_schedule_put(self, job: Job, text: str) -> str | None:
        def op(db: sqlite3.Connection) -> str | None:
            old = db.execute(
                "SELECT id FROM schedule WHERE room_id = ? AND name = ?", (job.room_id, job.name)
            ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO schedule (room_id, name, id, due_at, payload, "
                "cancel_on_reply, created_at, taken_until, fired) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
                (
                    job.room_id,
                    job.name,
                    job.id,
                    job.due_at,
                    text,
                    int(job.cancel_on_reply),
                    job.created_at,
                ),
            )
            return None if old is None else str(old[0])

        result: str | None = await self._engine.write(op)
        return result

    async def _do_schedule_get(self, room_id: str, name: str) -> Job | None:
        row = await self._engine.read(
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM schedule WHERE room_id = ? AND name = ?", (room_id, name)
            ).fetchone()
        )
        return None if row is None else _job(row)

    async def _do_schedule_list(self, room_id: str | None) -> list[Job]:
        args: tuple[str, ...] = ()
        if room_id is None:
            sql = f"SELECT {_COLUMNS} FROM schedule"
        else:
            sql, args = f"SELECT {_COLUMNS} FROM schedule WHERE room_id = ?", (room_id,)
        rows = await self._engine.read(lambda db: db.execute(sql, args).fetchall())
        return [_job(row) for row in rows]

    async def _do_schedule_next(self) -> float | None:
        row = await self._engine.read(
            lambda db: db.execute("SELECT MIN(due_at) FROM schedule WHERE fired = 0").fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def _do_schedule_take(self, now: float, lease: float, limit: int) -> list[Job]:
        clock = self._clock()

        def op(db: sqlite3.Connection) -> list[Any]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM schedule WHERE fired = 0 AND due_at <= ? "
                "AND taken_until <= ? ORDER BY due_at LIMIT ?",
                (now, clock, limit),
            ).fetchall()
            for row in rows:
                db.execute(
                    "UPDATE schedule SET taken_until = ? WHERE room_id = ? AND name = ?",
                    (clock + lease, row[1], row[2]),
                )
            return list(rows)

        # Not fsynced: a take lost in a power cut is taken again (the inbox dedupes the put).
        return [_job(row) for row in await self._engine.write(op, durable=False)]

    async def _do_schedule_fired(self, room_id: str, name: str, job_id: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE schedule SET fired = 1 WHERE room_id = ? AND name = ? AND id = ?",
                (room_id, name, job_id),
            )
            return cursor.rowcount > 0

        return bool(await self._engine.write(op))

    async def _do_schedule_done(self, room_id: str, name: str, job_id: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM schedule WHERE room_id = ? AND name = ? AND id = ?",
                (room_id, name, job_id),
            )
            return cursor.rowcount > 0

        return bool(await self._engine.write(op))

    async def _do_schedule_cancel(
        self, room_id: str, name: str | None, on_reply: bool
    ) -> list[str]:
        where = "room_id = ?" + ("" if name is None else " AND name = ?")
        where += " AND cancel_on_reply = 1" if on_reply else ""
        args = (room_id,) if name is None else (room_id, name)

        def op(db: sqlite3.Connection) -> list[str]:
            names = [r[0] for r in db.execute(f"SELECT name FROM schedule WHERE {where}", args)]
            db.execute(f"DELETE FROM schedule WHERE {where}", args)
            return names

        result: list[str] = await self._engine.write(op)
        return result
