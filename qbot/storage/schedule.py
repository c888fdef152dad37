"""Scheduled jobs (``ctx.schedule``): the storage interface every backend implements.

A job belongs to a room and has a name, unique in the room: scheduling the same name again
replaces the job. Its times (``due_at``, ``created_at``) are on the *bot's* clock
(:mod:`qbot.clock`), given by the caller; only the lease of a job being fired runs on the
storage's own clock (Redis: the server's).

```
schedule_put      store (or replace) the room's job of that name
schedule_take     due jobs not yet fired, each leased to the caller for a while (two replicas
                  never take the same job while its lease runs; a crashed taker's lease lapses)
schedule_fired    the job is in the room's inbox now (qbot.scheduling puts it there, deduped
                  by the job id): never taken again
schedule_done     its handler ran: the record goes (only if it is still that job)
schedule_get / schedule_list / schedule_next / schedule_cancel
```
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from qbot.errors import StorageError
from qbot.storage.records import dumps, loads

__all__ = ["JOB_NAME", "Job", "ScheduleStore", "check_job_name"]

JOB_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
"""What a job name is made of: letters, digits, ``_``, ``.`` and ``-``, at most 100."""


def check_job_name(name: str) -> str:
    """Reject a job name that is not a short word of letters, digits, ``_ . -``."""
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise StorageError(
            f"a scheduled job name must be 1 to 100 letters, digits, '_', '.' or '-', got {name!r}"
        )
    return name


def _check_time(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StorageError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled job.

    Attributes:
        id: unique per scheduling (a replacement has a new id); the inbox dedupes it by this.
        room_id: the room it runs in, in order with the room's messages.
        name: the ``@bot.scheduled(name)`` handler it runs; unique in the room.
        due_at: when it is due, seconds since the epoch on the bot's clock.
        data: the JSON value given to ``ctx.schedule(data=...)`` (``ctx.data`` in the handler).
        origin: who and where it was scheduled from (sender, room type and options): the
            update it becomes looks like that room's.
        cancel_on_reply: the customer's next message in the room cancels it.
        created_at: when it was scheduled, on the bot's clock.
        fired: it is in the room's inbox, its handler not finished yet.
    """

    id: str
    room_id: str
    name: str
    due_at: float
    data: Any = None
    origin: Any = None
    cancel_on_reply: bool = False
    created_at: float = 0.0
    fired: bool = False

    def encoded(self) -> str:
        """``data`` and ``origin`` as the one JSON text a backend stores."""
        return dumps({"data": self.data, "origin": self.origin}, f"data of job {self.name!r}")

    @classmethod
    def decoded(
        cls,
        id: str,
        room_id: str,
        name: str,
        due_at: float,
        text: str | bytes,
        cancel_on_reply: bool,
        created_at: float,
        fired: bool,
    ) -> Job:
        """A job from a backend's row (``text`` as :meth:`encoded` wrote it)."""
        body = loads(text)
        return cls(
            id,
            room_id,
            name,
            float(due_at),
            body.get("data"),
            body.get("origin"),
            bool(cancel_on_reply),
            float(created_at),
            bool(fired),
        )


class ScheduleStore(ABC):
    """Scheduled jobs, one per (room, name), fired once each (see the module docs)."""

    async def schedule_put(self, job: Job) -> str | None:
        """Store ``job``, replacing the room's job of the same name; the replaced job's id."""
        if not isinstance(job, Job):
            raise StorageError(f"schedule_put takes a Job, got {job!r}")
        _text(job.id, "job id")
        _text(job.room_id, "room_id")
        check_job_name(job.name)
        _check_time(job.due_at, "due_at")
        _check_time(job.created_at, "created_at")
        return await self._do_schedule_put(job, job.encoded())

    async def schedule_get(self, room_id: str, name: str) -> Job | None:
        """The room's job called ``name``, or None."""
        return await self._do_schedule_get(_text(room_id, "room_id"), check_job_name(name))

    async def schedule_list(self, room_id: str | None = None) -> list[Job]:
        """Every job (of one room), soonest due first."""
        if room_id is not None:
            _text(room_id, "room_id")
        jobs = await self._do_schedule_list(room_id)
        return sorted(jobs, key=lambda j: (j.due_at, j.room_id, j.name))

    async def schedule_next(self) -> float | None:
        """When the soonest job not yet fired is due (bot clock), or None when there is none."""
        return await self._do_schedule_next()

    async def schedule_take(
        self, now: float, *, lease: float = 60.0, limit: int = 100
    ) -> list[Job]:
        """The jobs due at ``now`` (bot clock), not fired, not leased to another taker.

        Each is leased to the caller for ``lease`` seconds (storage clock), atomically: two
        replicas taking at once get different jobs. Put each in the inbox, then
        :meth:`schedule_fired`; a taker that dies before that leaves it to the next taker once
        the lease lapses (the inbox's dedupe by job id makes a second put a no-op).
        """
        now = _check_time(now, "now")
        if _check_time(lease, "lease") <= 0:
            raise StorageError(f"lease must be > 0 seconds, got {lease!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise StorageError(f"limit must be an integer >= 1, got {limit!r}")
        return await self._do_schedule_take(now, float(lease), limit)

    async def schedule_fired(self, room_id: str, name: str, job_id: str) -> bool:
        """Record that job ``job_id`` is in the inbox; False when it was replaced or cancelled."""
        args = (_text(room_id, "room_id"), check_job_name(name), _text(job_id, "job id"))
        return await self._do_schedule_fired(*args)

    async def schedule_done(self, room_id: str, name: str, job_id: str) -> bool:
        """Delete the room's job ``name`` if it is still job ``job_id``; whether it was."""
        args = (_text(room_id, "room_id"), check_job_name(name), _text(job_id, "job id"))
        return await self._do_schedule_done(*args)

    async def schedule_cancel(
        self, room_id: str, name: str | None = None, *, on_reply: bool = False
    ) -> list[str]:
        """Delete the room's job ``name`` (every job with None; with ``on_reply`` only those
        scheduled with ``cancel_on_reply``); the names deleted."""
        _text(room_id, "room_id")
        if name is not None:
            check_job_name(name)
        return sorted(await self._do_schedule_cancel(room_id, name, bool(on_reply)))

    @abstractmethod
    async def _do_schedule_put(self, job: Job, text: str) -> str | None: ...

    @abstractmethod
    async def _do_schedule_get(self, room_id: str, name: str) -> Job | None: ...

    @abstractmethod
    async def _do_schedule_list(self, room_id: str | None) -> list[Job]: ...

    @abstractmethod
    async def _do_schedule_next(self) -> float | None: ...

    @abstractmethod
    async def _do_schedule_take(self, now: float, lease: float, limit: int) -> list[Job]: ...

    @abstractmethod
    async def _do_schedule_fired(self, room_id: str, name: str, job_id: str) -> bool: ...

    @abstractmethod
    async def _do_schedule_done(self, room_id: str, name: str, job_id: str) -> bool: ...

    @abstractmethod
    async def _do_schedule_cancel(
        self, room_id: str, name: str | None, on_reply: bool
    ) -> list[str]: ...


def _text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise StorageError(f"{what} must be a non-empty string, got {value!r}")
    return value
