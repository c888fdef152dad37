"""Redis specifics: keys stay under their prefix and idle rooms leave nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from qbot.storage import RedisStorage, room_lease_key

pytestmark = pytest.mark.redis


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisStorage, RedisStorage, aioredis.Redis]]:
    run = uuid.uuid4().hex
    a = RedisStorage(f"redis://127.0.0.1:6379/0?prefix=qbot-test-{run}-a:")
    b = RedisStorage(f"redis://127.0.0.1:6379/0?prefix=qbot-test-{run}-b:")
    raw = aioredis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    async with a, b:
        yield a, b, raw
        await a.drop()
        await b.drop()
    await raw.aclose()


async def keys(raw: aioredis.Redis, prefix: str) -> set[str]:
    return {k async for k in raw.scan_iter(match=prefix + "*")}


async def test_storage_redis_prefixes_keep_two_bots_apart(
    pair: tuple[RedisStorage, RedisStorage, aioredis.Redis],
) -> None:
    a, b, _ = pair
    assert await a.inbox_put("r1", {"n": 1}, dedupe_key="m1") is not None
    assert (await b.inbox_claim("w", lease_ttl=60)).items == []
    assert await b.inbox_size() == 0
    assert await b.inbox_put("r1", {"n": 1}, dedupe_key="m1") is not None  # its own records


async def test_storage_redis_a_drained_room_leaves_no_inbox_keys(
    pair: tuple[RedisStorage, RedisStorage, aioredis.Redis],
) -> None:
    a, _, raw = pair
    await a.inbox_put("r1", {"n": 1})
    items = (await a.inbox_claim("w", lease_ttl=60)).items
    await a.commit(owner="w", ack=items)
    await a.lease_release(room_lease_key("r1"), "w")
    left = await keys(raw, a.prefix)
    assert not any(k.startswith(a.prefix + "i:r:") for k in left)
    assert await raw.zcard(a.prefix + "i:rooms") == 0


async def test_storage_redis_takeover_forgets_the_dead_consumer(
    pair: tuple[RedisStorage, RedisStorage, aioredis.Redis],
) -> None:
    a, _, raw = pair
    await a.inbox_put("r1", {"n": 1})
    await a.inbox_put("r1", {"n": 2})
    assert len((await a.inbox_claim("dead", lease_ttl=0.05)).items) == 2
    await asyncio.sleep(0.1)
    assert len((await a.inbox_claim("alive", lease_ttl=60)).items) == 2
    consumers = await raw.xinfo_consumers(a.prefix + "i:r:r1", "qbot")
    assert [(c["name"], c["pending"]) for c in consumers] == [("alive", 2)]
