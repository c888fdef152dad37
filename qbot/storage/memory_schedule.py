"""Scheduled jobs in this process's memory: the :class:`MemoryStorage` part of ScheduleStore.

Every method runs without awaiting, so each is atomic under asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qbot.storage.records import Clock
from qbot.storage.schedule import Job, ScheduleStore


@dataclass(slots=True)
class _Row:
    job: Job
    text: str
    taken_until: float = 0.0


class MemorySchedules(ScheduleStore):
    """Jobs by (room, name); mixed into :class:`~qbot.storage.memory.MemoryStorage`."""

    _clock: Clock
    __jobs: dict[tuple[str, str], _Row] | None = None

    @property
    def _jobs(self) -> dict[tuple[str, str], _Row]:
        if self.__jobs is None:
            self.__jobs = {}
        return self.__jobs

    def _job(self, row: _Row) -> Job:
        # A copy of data and origin, as the durable backends give: decoded from the text.
        j = row.job
        return Job.decoded(
            j.id, j.room_id, j.name, j.due_at, row.text, j.cancel_on_reply, j.created_at, j.fired
        )

    async def _do_schedule_put(self, job: Job, text: str) -> str | None:
        old = self._jobs.pop((job.room_id, job.name), None)
        self._jobs[(job.room_id, job.name)] = _Row(replace(job, fired=False), text)
        return None if old is None else old.job.id

    async def _do_schedule_get(self, room_id: str, name: str) -> Job | None:
        row = self._jobs.get((room_id, name))
        return None if row is None else self._job(row)

    async def _do_schedule_list(self, room_id: str | None) -> list[Job]:
        return [
            self._job(row)
            for (room, _), row in self._jobs.items()
            if room_id is None or room == room_id
        ]

    async def _do_schedule_next(self) -> float | None:
        due = [row.job.due_at for row in self._jobs.values() if not row.job.fired]
        return min(due) if due else None

    async def _do_schedule_take(self, now: float, lease: float, limit: int) -> list[Job]:
        clock = self._clock()
        rows = sorted(
            (
                row
                for row in self._jobs.values()
                if not row.job.fired and row.job.due_at <= now and row.taken_until <= clock
            ),
            key=lambda row: row.job.due_at,
        )[:limit]
        for row in rows:
            row.taken_until = clock + lease
        return [self._job(row) for row in rows]

    async def _do_schedule_fired(self, room_id: str, name: str, job_id: str) -> bool:
        row = self._jobs.get((room_id, name))
        if row is None or row.job.id != job_id:
            return False
        row.job = replace(row.job, fired=True)
        return True

    async def _do_schedule_done(self, room_id: str, name: str, job_id: str) -> bool:
        row = self._jobs.get((room_id, name))
        if row is None or row.job.id != job_id:
            return False
        del self._jobs[(room_id, name)]
        return True

    async def _do_schedule_cancel(
        self, room_id: str, name: str | None, on_reply: bool
    ) -> list[str]:
        gone = [
            key
            for key, row in self._jobs.items()
            if key[0] == room_id
            and (name is None or key[1] == name)
            and (row.job.cancel_on_reply or not on_reply)
        ]
        for key in gone:
            del self._jobs[key]
        return [key[1] for key in gone]
