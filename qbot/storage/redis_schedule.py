"""Scheduled jobs on Redis: the :class:`RedisStorage` part of ScheduleStore.

Every change is one Lua script (atomic on the server); the lease of a job being fired runs on
the server's clock (``TIME``), so replicas with skewed clocks never take a job twice. Keys
under the storage's prefix ``P`` (a member ``M`` is ``<room_id>:<name>``; a name holds no
``:``, so the last one splits them):

```
P j:<M>        one job (HASH: id, room, name, due, payload, cor, created, taken, fired)
P jd           jobs not fired yet, by due time (ZSET of M): what schedule_take scans
P jall         every job by due time (ZSET of M): schedule_list
P jr:<room>    the names of a room's jobs (SET)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from qbot.storage.schedule import Job, ScheduleStore

__all__ = ["RedisSchedules"]

_FIELDS = ("id", "room", "name", "due", "payload", "cor", "created", "fired")

PUT = """
local P, room, name = ARGV[1], ARGV[2], ARGV[3]
local m = room .. ':' .. name
local k = P .. 'j:' .. m
local old = redis.call('HGET', k, 'id')
redis.call('DEL', k)
redis.call('HSET', k, 'id', ARGV[4], 'room', room, 'name', name, 'due', ARGV[5],
           'payload', ARGV[6], 'cor', ARGV[7], 'created', ARGV[8], 'taken', '0', 'fired', '0')
redis.call('ZADD', P .. 'jd', ARGV[5], m)
redis.call('ZADD', P .. 'jall', ARGV[5], m)
redis.call('SADD', P .. 'jr:' .. room, name)
return old
"""

TAKE = """
local P, now, lease, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'jd', '-inf', now, 'LIMIT', 0, limit + 1000)) do
  if #out >= limit then break end
  local k = P .. 'j:' .. m
  local taken = tonumber(redis.call('HGET', k, 'taken') or '0')
  if redis.call('EXISTS', k) == 0 then
    redis.call('ZREM', P .. 'jd', m)
  elseif taken <= ms and redis.call('HGET', k, 'fired') == '0' then
    redis.call('HSET', k, 'taken', tostring(ms + lease))
    out[#out + 1] = redis.call('HMGET', k, 'id', 'room', 'name', 'due', 'payload', 'cor',
                               'created', 'fired')
  end
end
return out
"""

FIRED = """
local P, room, name = ARGV[1], ARGV[2], ARGV[3]
local m = room .. ':' .. name
local k = P .. 'j:' .. m
if redis.call('HGET', k, 'id') ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'fired', '1')
redis.call('ZREM', P .. 'jd', m)
return 1
"""

DONE = """
local P, room, name = ARGV[1], ARGV[2], ARGV[3]
local m = room .. ':' .. name
local k = P .. 'j:' .. m
if redis.call('HGET', k, 'id') ~= ARGV[4] then return 0 end
redis.call('DEL', k)
redis.call('ZREM', P .. 'jd', m)
redis.call('ZREM', P .. 'jall', m)
redis.call('SREM', P .. 'jr:' .. room, name)
return 1
"""

CANCEL = """
local P, room, only, on_reply = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local names
if only ~= '' then names = {only} else names = redis.call('SMEMBERS', P .. 'jr:' .. room) end
local gone = {}
for _, name in ipairs(names) do
  local m = room .. ':' .. name
  local k = P .. 'j:' .. m
  local cor = redis.call('HGET', k, 'cor')
  if cor and (cor == '1' or not on_reply) then
    redis.call('DEL', k)
    redis.call('ZREM', P .. 'jd', m)
    redis.call('ZREM', P .. 'jall', m)
    redis.call('SREM', P .. 'jr:' .. room, name)
    gone[#gone + 1] = name
  elseif not cor then
    redis.call('SREM', P .. 'jr:' .. room, name)
  end
end
return gone
"""


def _job(values: Sequence[Any]) -> Job:
    id_, room, name, due, payload, cor, created, fired = values
    return Job.decoded(
        id_, room, name, float(due), payload, cor == "1", float(created), fired == "1"
    )


class RedisSchedules(ScheduleStore):
    """Jobs as hashes and sorted sets; mixed into :class:`~qbot.storage.redis.RedisStorage`."""

    prefix: str

    async def _eval(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        raise NotImplementedError  # RedisStorage's

    @property
    def _redis(self) -> Any:
        raise NotImplementedError  # RedisStorage's

    def _errors(self) -> Any:
        raise NotImplementedError  # RedisStorage's

    async def _hashes(self, members: Sequence[str]) -> list[Job]:
        with self._errors():
            pipe = self._redis.pipeline(transaction=False)
            for m in members:
                pipe.hmget(self.prefix + "j:" + m, *_FIELDS)
            found = await pipe.execute() if members else []
        return [_job(values) for values in found if values[0] is not None]

    async def _do_schedule_put(self, job: Job, text: str) -> str | None:
        args = (job.room_id, job.name, job.id, repr(job.due_at), text)
        more = ("1" if job.cancel_on_reply else "0", repr(job.created_at))
        old = await self._eval(PUT, [], self.prefix, *args, *more)
        return None if old is None else str(old)

    async def _do_schedule_get(self, room_id: str, name: str) -> Job | None:
        found = await self._hashes([f"{room_id}:{name}"])
        return found[0] if found else None

    async def _do_schedule_list(self, room_id: str | None) -> list[Job]:
        with self._errors():
            if room_id is None:
                members = cast("list[str]", await self._redis.zrange(self.prefix + "jall", 0, -1))
            else:
                names = await self._redis.smembers(self.prefix + "jr:" + room_id)
                members = [f"{room_id}:{n}" for n in names]
        return await self._hashes(members)

    async def _do_schedule_next(self) -> float | None:
        with self._errors():
            first = await self._redis.zrange(self.prefix + "jd", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def _do_schedule_take(self, now: float, lease: float, limit: int) -> list[Job]:
        lease_ms = max(1, round(lease * 1000))
        rows = await self._eval(TAKE, [], self.prefix, repr(now), lease_ms, limit)
        return [_job(values) for values in rows]

    async def _do_schedule_fired(self, room_id: str, name: str, job_id: str) -> bool:
        return bool(await self._eval(FIRED, [], self.prefix, room_id, name, job_id))

    async def _do_schedule_done(self, room_id: str, name: str, job_id: str) -> bool:
        return bool(await self._eval(DONE, [], self.prefix, room_id, name, job_id))

    async def _do_schedule_cancel(
        self, room_id: str, name: str | None, on_reply: bool
    ) -> list[str]:
        args = (room_id, name or "", "1" if on_reply else "0")
        return [str(n) for n in await self._eval(CANCEL, [], self.prefix, *args)]
