"""Redis storage (``redis://host:6379/0``): what several ``qbot run`` replicas share.

Built on Redis's own primitives, every multi-step change in one Lua script (atomic on the
server):

- dedupe: ``SET key 1 NX PX ttl``;
- leases: ``SET key owner NX PX ttl``; renew and release check the owner in Lua;
- inbox: one stream per room with a consumer group (consumer = owner). A sorted set lists rooms
  with unacked items, oldest first. Claiming a room takes its lease; a room taken over from a dead
  owner gets that owner's pending entries with ``XAUTOCLAIM``, then new ones with
  ``XREADGROUP >``, so one room's items are always handed out in arrival order to one owner; a
  webhook for a room its holder works on is read by the holder in the script that adds it
  (``inbox_put_held``), when nothing of the room waits to be handed out;
- commit: checks the room leases, writes state (``SET``/``PX``), queues replies and ``XACK`` +
  ``XDEL``s the acked entries, all in one script;
- outbox: one hash per reply plus sorted sets (global and per room) of pending ids.

Keys live under a prefix (``?prefix=qbot:`` in the URL, the default); the scripts and the key
layout are in :mod:`qbot.storage.redis_lua`, and a room's lease key is the prefix, ``l:`` and
:func:`qbot.storage.keys.room_lease_key`, in Python and in Lua alike. Scripts touch keys they
compute, so this targets one Redis server (with replicas), not Redis Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, parse_url
from redis.exceptions import RedisError

from qbot import _json
from qbot.errors import StorageError
from qbot.storage import redis_lua as lua
from qbot.storage.base import ReplyRow, StateRow, Storage, check_text, check_ttl, lease_lost
from qbot.storage.keys import ROOM_LEASE_PREFIX
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
from qbot.storage.redis_batch import Batcher
from qbot.storage.redis_connection import timed
from qbot.storage.redis_schedule import RedisSchedules

_GROUP = "qbot"
_ROOMS_SCANNED = 1000  # rooms inbox_claim looks at per call, oldest pending first
MAX_CONNECTIONS = 256
"""Connections a storage opens to Redis at most (``?max_connections=N`` in the URL overrides);
a call beyond them waits (up to 20 s) for one to be free."""


_SOCKET_TIMEOUT = 5.0
"""redis-py's read timeout when the URL gives none (``redis._defaults``, a private module)."""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStorage(RedisSchedules, Storage):
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
        self._room_leases = self.prefix + "l:" + ROOM_LEASE_PREFIX
        self._r: aioredis.Redis | None = None
        # Two lanes of pipelined round trips (qbot.storage.redis_batch): the inbox's puts and
        # claims, whose answers must come back in the order Redis ran them; and the rest (room
        # reads, commits, leases), which a slow answer of the inbox's does not hold up.
        self._inbox = Batcher(lambda: self._redis, self._shown)
        self._batch = Batcher(lambda: self._redis, self._shown)
        self._last_event = "0-0"
        self._block_max: float | None = None  # the longest XREAD block a read timeout allows
        self._unanswered: set[str] = set()  # owners whose last claim may have given items unseen

    @property
    def durable(self) -> bool:
        """True: the data lives on the Redis server (as durable as its persistence)."""
        return True

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
        # EVALSHA, in the next pipelined round trip with the calls of other rooms.
        return await self._batch.script(script, keys, args)

    async def open(self) -> None:
        """Connect and check the server answers. Idempotent."""
        if self._r is not None:
            return
        try:
            # redis-py 8 caps a pool at 100 connections and then fails the call ("Too many
            # connections": a 503 for every webhook past the cap under load); a blocking pool
            # makes the call past the cap wait for a free connection instead.
            # The URL's options win, as in from_url; its connection class is swapped for ours,
            # which sends without asyncio.wait_for (qbot.storage.redis_connection).
            options: dict[str, Any] = {
                "decode_responses": True,
                "max_connections": MAX_CONNECTIONS,
                "timeout": 20,
            }
            options.update(parse_url(self._url))
            options["connection_class"] = timed(options.get("connection_class", Connection))
            pool = aioredis.BlockingConnectionPool(**options)
            # A blocking XREAD's answer comes when its block ends: under the read timeout, or
            # every idle wait would fail as an outage.
            read_timeout = options.get("socket_timeout", _SOCKET_TIMEOUT)
            block_max = read_timeout / 2 if read_timeout else None
            r = aioredis.Redis.from_pool(pool)
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
        self._block_max = block_max
        self._r = r

    async def close(self) -> None:
        """Close the connection pool; the storage can be opened again."""
        if self._r is not None:
            await self._inbox.close()
            await self._batch.close()
            r, self._r = self._r, None
            await r.aclose()

    async def drop(self) -> int:
        """Delete every key under this storage's prefix; returns how many. For tests and resets."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
        with self._errors():
            keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
            return int(await self._redis.delete(*keys)) if keys else 0

    # -- state ---------------------------------------------------------------------------------

    async def _do_get_state(self, key: str) -> str | None:
        with self._errors():
            return cast("str | None", await self._redis.get(self.prefix + "s:" + key))

    async def _do_load_room(
        self, room_id: str, keys: Sequence[str], outbox_ids: Sequence[str]
    ) -> tuple[Handoff | None, list[str | bytes | None], list[OutboxItem | None]]:
        # One script, not a command per value: each command costs redis-py more to send and
        # read than the value does.
        args = (self.prefix, room_id, len(keys), *keys, *outbox_ids)
        found = await self._eval(lua.LOAD_ROOM, [], *args)
        handoff, states, replies = found[0], found[1 : 1 + len(keys)], found[1 + len(keys) :]
        return (
            None if handoff is None else _handoff(room_id, handoff),
            list(states),
            [
                _reply(i, dict(zip(flat[::2], flat[1::2], strict=True))) if flat else None
                for i, flat in zip(outbox_ids, replies, strict=True)
            ],
        )

    async def _do_commit(
        self,
        owner: str,
        ack: Sequence[InboxItem],
        states: Sequence[StateRow],
        replies: Sequence[ReplyRow],
    ) -> None:
        now = str(self._clock())
        spec = {
            "owner": owner,
            "lease_prefix": self._room_leases,
            "acks": [[item.room_id, item.id] for item in ack],
            "states": [
                [key, False if text is None else text, "" if ttl is None else _ms(ttl)]
                for key, text, ttl in states
            ],
            "outbox": [
                [item_id, room, text, now, status] for item_id, room, text, status in replies
            ],
            "retention": self._retention,
        }
        # cjson decodes an empty JSON array as an object; ipairs over it is still empty.
        result = await self._eval(lua.COMMIT, [], self.prefix, _json.dumps_text(spec))
        if result[0] == "lost":
            raise lease_lost(owner, result[1], result[2] or None)

    # -- leases --------------------------------------------------------------------------------

    async def _do_lease_acquire(self, key: str, owner: str, ttl: float) -> bool:
        return bool(await self._eval(lua.ACQUIRE, [self.prefix + "l:" + key], owner, _ms(ttl)))

    async def _do_lease_renew(self, key: str, owner: str, ttl: float) -> bool:
        return bool(await self._eval(lua.RENEW, [self.prefix + "l:" + key], owner, _ms(ttl)))

    async def _do_lease_release(self, key: str, owner: str) -> bool:
        return bool(await self._eval(lua.RELEASE, [self.prefix + "l:" + key], owner))

    # -- inbox ---------------------------------------------------------------------------------

    async def _do_inbox_put(
        self, room_id: str, text: str, dedupe_key: str | None, dedupe_ttl: float
    ) -> InboxItem | None:
        now = self._clock()
        args = (self.prefix, room_id, text, repr(now), dedupe_key or "", _ms(dedupe_ttl))
        item_id = await self._inbox.script(lua.PUT, [], args)
        if item_id is None:
            return None
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
        # Puts and claims share one ordered lane: their answers come back in the order Redis ran
        # them, so the items they hand an owner reach it in the room's order. After a claim or a
        # put whose answer was lost (it may have handed items unseen), nothing is handed with a
        # put until a claim has given those items again.
        if owner in self._unanswered:
            return await self._do_inbox_put(room_id, text, dedupe_key, dedupe_ttl), False
        now = self._clock()
        args = (self.prefix, room_id, text, repr(now), dedupe_key or "", _ms(dedupe_ttl))
        more = (owner, _ms(lease_ttl), self._room_leases + room_id)
        try:
            found = await self._inbox.script(lua.PUT_HELD, [], (*args, *more))
        except BaseException:
            self._unanswered.add(owner)
            raise
        if found is None:
            return None, False
        item_id, handed = found
        return InboxItem.stored(str(item_id), room_id, text, now), bool(handed)

    async def _do_inbox_claim(self, owner: str, lease_ttl: float, limit: int) -> Claim:
        # A claim whose answer never came back (the connection dropped, Redis restarted) may
        # still have given items to this owner: the next claim gives them again, before any
        # newer one, so that no room's order depends on an answer arriving.
        resend = "1" if owner in self._unanswered else "0"
        args = (self.prefix, owner, _ms(lease_ttl), limit, _ROOMS_SCANNED, self._room_leases)
        try:
            rooms = await self._inbox.script(lua.CLAIM, [], (*args, resend))
        except BaseException:
            self._unanswered.add(owner)
            raise
        self._unanswered.discard(owner)
        out: list[InboxItem] = []
        waiting: set[str] = set()
        again: set[str] = set()
        for room_id, entries, has_replies, redelivered in rooms:
            if has_replies:
                waiting.add(room_id)
            if redelivered:
                again.add(room_id)
            for entry_id, flat in entries:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                out.append(InboxItem.stored(entry_id, room_id, fields["p"], float(fields["t"])))
        return Claim(out, frozenset(waiting), frozenset(again))

    async def _do_inbox_wait(self, seconds: float) -> None:
        stream = self.prefix + "i:ev"
        if self._block_max is not None:  # returns early, as when an item may have arrived
            seconds = min(seconds, self._block_max)
        with self._errors():
            got: Any = await self._redis.xread(
                {stream: self._last_event}, count=1000, block=_ms(seconds)
            )
        if got:
            self._last_event = str(got[0][1][-1][0])

    async def _do_inbox_size(self) -> int:
        return int(await self._eval(lua.INBOX_SIZE, [self.prefix + "i:rooms"], self.prefix))

    # -- outbox --------------------------------------------------------------------------------

    async def _do_outbox_pending(self, room_id: str | None, limit: int) -> list[OutboxItem]:
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

    async def _do_outbox_get(self, item_id: str) -> OutboxItem | None:
        with self._errors():
            h = cast("dict[str, str]", await self._redis.hgetall(self.prefix + "oi:" + item_id))
        return _reply(item_id, h) if h else None

    async def _do_outbox_mark(self, item_id: str, status: Literal["sent", "failed"]) -> bool:
        args = (self.prefix, item_id, status, self._retention)
        return bool(await self._eval(lua.MARK, [], *args))

    # -- handoff -------------------------------------------------------------------------------

    async def _do_handoff_start(self, room_id: str, reason: str, ttl: float | None) -> Handoff:
        now = self._clock()
        h = Handoff(room_id, reason, now, None if ttl is None else now + ttl)
        text = _json.dumps_text([h.reason, h.started_at, h.expires_at])
        with self._errors():
            await self._redis.set(
                self.prefix + "h:" + room_id, text, px=None if ttl is None else _ms(ttl)
            )
        return h

    async def _do_handoff_get(self, room_id: str) -> Handoff | None:
        with self._errors():
            text = await self._redis.get(self.prefix + "h:" + room_id)
        return None if text is None else _handoff(room_id, text)

    async def _do_handoff_end(self, room_id: str) -> bool:
        with self._errors():
            return bool(await self._redis.delete(self.prefix + "h:" + room_id))

    async def _do_handoff_list(self) -> list[Handoff]:
        head = self.prefix + "h:"
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*"
        with self._errors():
            keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
            texts = await self._redis.mget(keys) if keys else []
        found = [
            _handoff(key[len(head) :], text)
            for key, text in zip(keys, texts, strict=True)
            if text is not None
        ]
        return sorted(found, key=lambda h: (h.started_at, h.room_id))


def _handoff(room_id: str, text: str | bytes) -> Handoff:
    reason, started_at, expires_at = _json.loads(text)
    return Handoff(room_id, reason, started_at, expires_at)


def _reply(item_id: str, h: dict[str, str]) -> OutboxItem:
    status = cast("OutboxStatus", h["status"])
    return OutboxItem(item_id, h["room"], loads(h["payload"]), status, float(h["created"]))
