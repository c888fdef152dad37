"""Redis storage (``redis://host:6379/0``): what several ``qbot run`` replicas share.

Built on Redis's own primitives, every multi-step change in one Lua script (atomic on the
server):

- dedupe: ``SET key 1 NX PX ttl``;
- leases: ``SET key owner NX PX ttl``; renew and release check the owner in Lua;
- inbox: one stream per room with a consumer group (consumer = owner). A sorted set lists rooms
  with unacked items, oldest first. Claiming a room takes its lease; a room taken over from a dead
  owner gets that owner's pending entries with ``XAUTOCLAIM``, then new ones with
  ``XREADGROUP >``, so one room's items are always handed out in arrival order to one owner;
- commit: checks the room leases, writes state (``SET``/``PX``), queues replies and ``XACK`` +
  ``XDEL``s the acked entries, all in one script;
- outbox: one hash per reply plus sorted sets (global and per room) of pending ids.

Keys live under a prefix (``?prefix=qbot:`` in the URL, the default); room lease keys are built
in Lua as ``<prefix>l:room:<id>``, matching :func:`qbot.storage.base.room_lease_key`. Scripts
touch keys they compute, so this targets one Redis server (with replicas), not Redis Cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

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
)

_GROUP = "qbot"
_ROOMS_SCANNED = 1000  # rooms inbox_claim looks at per call, oldest pending first

_PUT = """
local P, room = ARGV[1], ARGV[2]
if ARGV[5] ~= '' and not redis.call('SET', P..'d:'..ARGV[5], '1', 'NX', 'PX', ARGV[6]) then
  return false
end
local stream = P..'i:r:'..room
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, 'qbot', '0', 'MKSTREAM')
end
local id = redis.call('XADD', stream, '*', 'p', ARGV[3], 't', ARGV[4])
if not redis.call('ZSCORE', P..'i:rooms', room) then
  redis.call('ZADD', P..'i:rooms', redis.call('INCR', P..'i:seq'), room)
end
redis.call('XADD', P..'i:ev', 'MAXLEN', '~', '1000', '*', 'r', room)
return id
"""

_CLAIM = """
local P, owner, ttl, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out, n = {}, 0
for _, room in ipairs(redis.call('ZRANGE', P..'i:rooms', 0, tonumber(ARGV[5]) - 1)) do
  if n >= limit then break end
  local lease, stream = P..'l:room:'..room, P..'i:r:'..room
  local holder = redis.call('GET', lease)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('ZREM', P..'i:rooms', room)
  elseif not holder or holder == owner then
    local got = {}
    if not holder then
      local cursor = '0-0'
      repeat
        local r = redis.call('XAUTOCLAIM', stream, 'qbot', owner, 0, cursor, 'COUNT', 100)
        cursor = r[1]
        for _, e in ipairs(r[2]) do got[#got + 1] = e end
      until cursor == '0-0'
      -- every pending entry is ours now: forget consumers (dead owners) that hold nothing
      for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, 'qbot')) do
        if c[2] ~= owner and c[4] == 0 then
          redis.call('XGROUP', 'DELCONSUMER', stream, 'qbot', c[2])
        end
      end
    end
    if limit - n - #got > 0 then
      local r = redis.call('XREADGROUP', 'GROUP', 'qbot', owner, 'COUNT', limit - n - #got,
                           'STREAMS', stream, '>')
      if r then for _, e in ipairs(r[1][2]) do got[#got + 1] = e end end
    end
    if #got > 0 then
      redis.call('SET', lease, owner, 'PX', ttl)
      out[#out + 1] = {room, got}
      n = n + #got
    end
  end
end
return out
"""

_COMMIT = """
local P, spec = ARGV[1], cjson.decode(ARGV[2])
for _, a in ipairs(spec.acks) do
  local holder = redis.call('GET', P..'l:room:'..a[1])
  if holder ~= spec.owner then return {'lost', a[1], holder or ''} end
end
for _, s in ipairs(spec.states) do
  local k = P..'s:'..s[1]
  if s[2] == false then redis.call('DEL', k)
  elseif s[3] ~= '' then redis.call('SET', k, s[2], 'PX', s[3])
  else redis.call('SET', k, s[2]) end
end
for _, o in ipairs(spec.outbox) do
  local k = P..'oi:'..o[1]
  local status = redis.call('HGET', k, 'status')
  if not status then
    if o[5] == 'pending' then
      local seq = redis.call('INCR', P..'o:seq')
      redis.call('HSET', k, 'room', o[2], 'payload', o[3], 'status', 'pending', 'created', o[4])
      redis.call('ZADD', P..'op', seq, o[1])
      redis.call('ZADD', P..'opr:'..o[2], seq, o[1])
    else
      redis.call('HSET', k, 'room', o[2], 'payload', o[3], 'status', o[5], 'created', o[4])
      redis.call('PEXPIRE', k, spec.retention)
    end
  elseif status == 'pending' and o[5] ~= 'pending' then
    redis.call('HSET', k, 'status', o[5])
    redis.call('ZREM', P..'op', o[1])
    redis.call('ZREM', P..'opr:'..redis.call('HGET', k, 'room'), o[1])
    redis.call('PEXPIRE', k, spec.retention)
  end
end
for _, a in ipairs(spec.acks) do
  local stream = P..'i:r:'..a[1]
  if redis.call('EXISTS', stream) == 1 then
    redis.call('XACK', stream, 'qbot', a[2])
    redis.call('XDEL', stream, a[2])
    if redis.call('XLEN', stream) == 0 then
      redis.call('DEL', stream)
      redis.call('ZREM', P..'i:rooms', a[1])
    end
  end
end
return {'ok'}
"""

_MARK = """
local P, id = ARGV[1], ARGV[2]
local k = P..'oi:'..id
if redis.call('HGET', k, 'status') ~= 'pending' then return 0 end
local room = redis.call('HGET', k, 'room')
redis.call('HSET', k, 'status', ARGV[3])
redis.call('ZREM', P..'op', id)
redis.call('ZREM', P..'opr:'..room, id)
redis.call('PEXPIRE', k, ARGV[4])
return 1
"""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

_INBOX_SIZE = """
local n = 0
for _, room in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('XLEN', ARGV[1]..'i:r:'..room)
end
return n
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStorage(Storage):
    """Storage on a Redis server (6.2 or newer: ``XAUTOCLAIM``).

    Args:
        url: ``redis://[:password@]host:port/db``; a ``prefix`` query parameter sets the key
            prefix (default ``qbot:``), every other parameter goes to redis-py.
        clock: time source for handoff timestamps and ``received_at``; expiries run on the
            Redis server's clock.
        outbox_retention: seconds a sent or failed reply is remembered.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        outbox_retention: float = DEFAULT_OUTBOX_RETENTION,
    ) -> None:
        super().__init__(clock=clock)
        parts = urlsplit(check_text(url, "redis url"))
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = next((v for k, v in query if k == "prefix"), "qbot:")
        if not self.prefix:
            raise StorageError(f"redis key prefix must not be empty in {_redacted(url)!r}")
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        self._url = urlunsplit(parts._replace(query=rest))
        self._shown = _redacted(url)
        self._retention = _ms(check_ttl(outbox_retention, "outbox_retention"))
        self._r: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._last_event = "0-0"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except RedisError as e:
            raise StorageError(f"redis {self._shown!r} failed: {e}") from e

    @property
    def _redis(self) -> aioredis.Redis:
        if self._r is None:
            raise StorageError(f"redis storage {self._shown!r} is not open: call 'await open()'")
        return self._r

    async def _eval(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        # EVALSHA (the script text is sent once per connection pool, not with every call).
        runner = self._scripts.get(script)
        if runner is None:
            runner = self._scripts[script] = self._redis.register_script(script)
        with self._errors():
            return await runner(keys=list(keys), args=list(args))

    async def open(self) -> None:
        """Connect and check the server answers. Idempotent."""
        if self._r is not None:
            return
        try:
            r = aioredis.from_url(self._url, decode_responses=True)
        except ValueError as e:
            raise StorageError(f"invalid redis url {self._shown!r}: {e}") from e
        try:
            with self._errors():
                await r.ping()
                last = await r.xrevrange(self.prefix + "i:ev", count=1)
        except StorageError:
            await r.aclose()
            raise
        self._last_event = str(last[0][0]) if last else "0-0"
        self._r = r

    async def close(self) -> None:
        """Close the connection pool; the storage can be opened again."""
        if self._r is not None:
            r, self._r = self._r, None
            self._scripts.clear()
            await r.aclose()

    async def drop(self) -> int:
        """Delete every key under this storage's prefix; returns how many. For tests and resets."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
        with self._errors():
            keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
            return int(await self._redis.delete(*keys)) if keys else 0

    # -- dedupe --------------------------------------------------------------------------------

    async def claim_once(self, key: str, ttl: float) -> bool:
        check_text(key, "dedupe key")
        px = _ms(check_ttl(ttl, "dedupe ttl"))
        with self._errors():
            return bool(await self._redis.set(self.prefix + "d:" + key, "1", nx=True, px=px))

    # -- state ---------------------------------------------------------------------------------

    async def get_state(self, key: str, default: Any = None) -> Any:
        check_text(key, "state key")
        with self._errors():
            text = await self._redis.get(self.prefix + "s:" + key)
        return default if text is None else loads(text)

    async def load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str] = ()
    ) -> tuple[Handoff | None, list[Any], list[OutboxItem | None]]:
        check_text(room_id, "room_id")
        for key in keys:
            check_text(key, "state key")
        with self._errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self.prefix + "h:" + room_id)
            for key in keys:
                pipe.get(self.prefix + "s:" + key)
            for item_id in outbox_ids:
                pipe.hgetall(self.prefix + "oi:" + item_id)
            found = await pipe.execute()
        handoff, states, replies = found[0], found[1 : 1 + len(keys)], found[1 + len(keys) :]
        return (
            None if handoff is None else Handoff(room_id, *json.loads(handoff)),
            [None if text is None else loads(text) for text in states],
            [_reply(i, h) if h else None for i, h in zip(outbox_ids, replies, strict=True)],
        )

    async def commit(
        self,
        *,
        owner: str | None = None,
        ack: Sequence[InboxItem] = (),
        states: Sequence[StateWrite] = (),
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        writes = check_commit(owner, ack, states)
        now = str(self._clock())
        spec = {
            "owner": owner or "",
            "acks": [[item.room_id, item.id] for item in ack],
            "states": [
                [key, False if text is None else text, "" if ttl is None else _ms(ttl)]
                for key, text, ttl in writes
            ],
            "outbox": [
                [item_id, room, text, now, status]
                for item_id, room, text, status in check_outbox(outbox)
            ],
            "retention": self._retention,
        }
        # cjson decodes an empty JSON array as an object; ipairs over it is still empty.
        result = await self._eval(_COMMIT, [], self.prefix, json.dumps(spec))
        if result[0] == "lost":
            raise LeaseLostError(
                f"owner {owner!r} no longer holds room {result[1]!r} "
                f"(holder: {result[2] or None!r}); the commit was not applied and the room's "
                "items will be processed again"
            )

    # -- leases --------------------------------------------------------------------------------

    async def lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        check_text(key, "lease key")
        check_text(owner, "lease owner")
        px = _ms(check_ttl(ttl, "lease ttl"))
        return bool(await self._eval(_ACQUIRE, [self.prefix + "l:" + key], owner, px))

    async def lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        px = _ms(check_ttl(ttl, "lease ttl"))
        return bool(await self._eval(_RENEW, [self.prefix + "l:" + key], owner, px))

    async def lease_release(self, key: str, owner: str) -> bool:
        return bool(await self._eval(_RELEASE, [self.prefix + "l:" + key], owner))

    async def lease_owner(self, key: str) -> str | None:
        with self._errors():
            return cast("str | None", await self._redis.get(self.prefix + "l:" + key))

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
        px = _ms(check_ttl(dedupe_ttl, "dedupe ttl"))
        if dedupe_key is not None:
            check_text(dedupe_key, "dedupe key")
        now = self._clock()
        args = (self.prefix, room_id, text, repr(now), dedupe_key or "", px)
        item_id = await self._eval(_PUT, [], *args)
        if item_id is None:
            return None
        return InboxItem.stored(str(item_id), room_id, text, now)

    async def inbox_claim(
        self, owner: str, *, lease_ttl: float, limit: int = 100
    ) -> list[InboxItem]:
        check_text(owner, "owner")
        px = _ms(check_ttl(lease_ttl, "lease_ttl"))
        check_limit(limit)
        rooms = await self._eval(_CLAIM, [], self.prefix, owner, px, limit, _ROOMS_SCANNED)
        out: list[InboxItem] = []
        for room_id, entries in rooms:
            for entry_id, flat in entries:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                out.append(InboxItem.stored(entry_id, room_id, fields["p"], float(fields["t"])))
        return out

    async def inbox_wait(self, seconds: float) -> None:
        stream = self.prefix + "i:ev"
        with self._errors():
            got: Any = await self._redis.xread(
                {stream: self._last_event}, count=1000, block=_ms(seconds)
            )
        if got:
            self._last_event = str(got[0][1][-1][0])

    async def inbox_size(self) -> int:
        return int(await self._eval(_INBOX_SIZE, [self.prefix + "i:rooms"], self.prefix))

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_pending(
        self, *, room_id: str | None = None, limit: int = 100
    ) -> list[OutboxItem]:
        check_limit(limit)
        index = self.prefix + ("op" if room_id is None else "opr:" + room_id)
        with self._errors():
            ids = cast("list[str]", await self._redis.zrange(index, 0, limit - 1))
            pipe = self._redis.pipeline(transaction=False)
            for item_id in ids:
                pipe.hgetall(self.prefix + "oi:" + item_id)
            found = await pipe.execute() if ids else []
        return [
            _reply(item_id, h)
            for item_id, h in zip(ids, found, strict=True)
            if h.get("status") == "pending"
        ]

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        with self._errors():
            h = cast("dict[str, str]", await self._redis.hgetall(self.prefix + "oi:" + item_id))
        return _reply(item_id, h) if h else None

    async def outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        check_status(status)
        return bool(await self._eval(_MARK, [], self.prefix, item_id, status, self._retention))

    # -- handoff -------------------------------------------------------------------------------

    async def handoff_start(
        self, room_id: str, reason: str, *, ttl: float | None = None
    ) -> Handoff:
        ttl = check_handoff(room_id, reason, ttl)
        now = self._clock()
        h = Handoff(room_id, reason, now, None if ttl is None else now + ttl)
        text = json.dumps([h.reason, h.started_at, h.expires_at])
        with self._errors():
            await self._redis.set(
                self.prefix + "h:" + room_id, text, px=None if ttl is None else _ms(ttl)
            )
        return h

    async def handoff_get(self, room_id: str) -> Handoff | None:
        with self._errors():
            text = await self._redis.get(self.prefix + "h:" + room_id)
        return None if text is None else Handoff(room_id, *json.loads(text))

    async def handoff_end(self, room_id: str) -> bool:
        with self._errors():
            return bool(await self._redis.delete(self.prefix + "h:" + room_id))

    async def handoff_list(self) -> list[Handoff]:
        head = self.prefix + "h:"
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*"
        with self._errors():
            keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
            texts = await self._redis.mget(keys) if keys else []
        found = [
            Handoff(key[len(head) :], *json.loads(text))
            for key, text in zip(keys, texts, strict=True)
            if text is not None
        ]
        return sorted(found, key=lambda h: (h.started_at, h.room_id))


def _reply(item_id: str, h: dict[str, str]) -> OutboxItem:
    status = cast("OutboxStatus", h["status"])
    return OutboxItem(item_id, h["room"], loads(h["payload"]), status, float(h["created"]))
