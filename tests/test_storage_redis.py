"""Redis specifics: keys stay under their prefix and idle rooms leave nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from qbot.errors import StorageError
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


class CuttingProxy:
    """A TCP proxy to the shared Redis that, once armed, passes the next request on and then
    closes the client's connection instead of passing the answer back (a restart mid-call)."""

    def __init__(self) -> None:
        self.armed = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            while data := await src.read(65536):
                if not up and self.armed:
                    self.armed = False
                    writer.close()
                    return
                dst.write(data)
                await dst.drain()

        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            up_writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_storage_redis_a_claim_whose_answer_was_lost_gives_its_items_again_first() -> None:
    proxy = CuttingProxy()
    port = await proxy.start()
    storage = RedisStorage(f"redis://127.0.0.1:{port}/0?prefix=qbot-test-{uuid.uuid4().hex}:")
    try:
        async with storage:
            await storage.inbox_put("r1", {"n": 1})
            assert len((await storage.inbox_claim("w", lease_ttl=60)).items) == 1
            await storage.inbox_put("r1", {"n": 2})
            proxy.armed = True
            with pytest.raises(StorageError):
                await storage.inbox_claim("w", lease_ttl=60)  # Redis gave n=2; we never saw it
            await storage.inbox_put("r1", {"n": 3})
            items = (await storage.inbox_claim("w", lease_ttl=60)).items
            assert [item.payload for item in items][-2:] == [{"n": 2}, {"n": 3}]
            again = (await storage.inbox_claim("w", lease_ttl=60)).items
            await storage.inbox_put("r1", {"n": 4})
            assert again == []
            assert [i.payload for i in (await storage.inbox_claim("w", lease_ttl=60)).items] == [
                {"n": 4}
            ]
            await storage.drop()
    finally:
        await proxy.stop()
