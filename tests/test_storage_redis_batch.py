"""Redis group commit (qbot.storage.redis_batch): concurrent calls share pipelined round trips,
each keeps its own outcome, answers come back in order, and a script Redis forgot is loaded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture

from bench.redis_trips import counted_round_trips
from qbot.errors import StorageError
from qbot.storage import RedisStorage, StateWrite, room_lease_key, state_key

pytestmark = pytest.mark.redis


@pytest.fixture
async def storage() -> AsyncIterator[RedisStorage]:
    s = RedisStorage(f"redis://127.0.0.1:6379/0?prefix=qbot-test-{uuid.uuid4().hex}:")
    async with s:
        yield s
        await s.drop()


async def test_redis_commits_of_concurrent_rooms_share_one_round_trip(
    storage: RedisStorage,
) -> None:
    await storage.set_state("warm", 1)  # both scripts are known to Redis, even a fresh one
    await storage.load_room("warm", ["warm"])
    rooms = [f"r{i}" for i in range(10)]
    for room in rooms:
        await storage.inbox_put(room, {"room": room})
    items = (await storage.inbox_claim("w", lease_ttl=60)).items
    assert len(items) == 10
    with counted_round_trips() as sent:
        await asyncio.gather(
            *(
                storage.commit(
                    owner="w", ack=[item], states=[StateWrite(state_key(item.room_id), 1)]
                )
                for item in items
            ),
            *(storage.load_room(room, [state_key(room)]) for room in rooms),
        )
    # One pipeline for all twenty calls (each alone before: 20 round trips).
    assert sum(sent.values()) == 1, sent
    assert await storage.inbox_size() == 0
    found = await asyncio.gather(*(storage.get_state(state_key(room)) for room in rooms))
    assert found == [1] * 10


async def test_redis_a_failing_call_fails_alone_in_its_pipeline(storage: RedisStorage) -> None:
    raw = aioredis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    try:
        await raw.hset(storage.prefix + "l:" + "bad", "not", "a lease")  # WRONGTYPE for GET
    finally:
        await raw.aclose()
    await storage.lease_acquire("warm", "w", 60)  # the scripts are known to Redis: a shared
    await storage.set_state("warm", 1)  # server may have restarted since they were loaded
    with counted_round_trips() as sent:
        bad, good, state = await asyncio.gather(
            storage.lease_acquire("bad", "w", 60),
            storage.lease_acquire(room_lease_key("r1"), "w", 60),
            storage.set_state("k", {"v": 1}),
            return_exceptions=True,
        )
    assert sum(sent.values()) == 1, sent
    assert isinstance(bad, StorageError) and "WRONGTYPE" in str(bad)
    assert good is True and state is None
    assert await storage.get_state("k") == {"v": 1}


async def test_redis_answers_come_back_in_the_order_the_calls_were_made(
    storage: RedisStorage,
) -> None:
    answered: list[int] = []

    async def put(n: int) -> None:
        await storage.inbox_put("r1", {"n": n})
        answered.append(n)

    await asyncio.gather(*(put(n) for n in range(30)))
    assert answered == list(range(30))
    items = (await storage.inbox_claim("w", lease_ttl=60)).items
    assert [i.payload["n"] for i in items] == list(range(30))


async def test_redis_a_script_redis_forgot_is_loaded_and_the_call_made_again(
    redis_server: RedisServer,  # noqa: F811 - the fixture
) -> None:
    async with RedisStorage(redis_server.url) as s:
        await s.set_state("k", 1)
        raw = aioredis.from_url(f"redis://127.0.0.1:{redis_server.port}/0")
        try:
            await raw.script_flush()
        finally:
            await raw.aclose()
        await asyncio.gather(s.set_state("k", 2), s.lease_acquire("l", "w", 60))
        assert await s.get_state("k") == 2
        assert await s.lease_renew("l", "w", 60)


async def test_redis_calls_queued_at_close_fail_with_a_storage_error() -> None:
    s = RedisStorage(f"redis://127.0.0.1:6379/0?prefix=qbot-test-{uuid.uuid4().hex}:")
    await s.open()
    pending = asyncio.ensure_future(s.set_state("k", 1))
    await asyncio.sleep(0)  # queued, its round trip started
    await s.close()
    outcome = await asyncio.gather(pending, return_exceptions=True)
    assert outcome == [None] or isinstance(outcome[0], StorageError), outcome
    with pytest.raises(StorageError, match="not open"):
        await s.set_state("k", 2)


async def test_redis_a_put_whose_answer_was_lost_hands_nothing_until_a_claim(
    storage: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.inbox_put("r1", {"text": "m0"})
    assert len((await storage.inbox_claim("w", lease_ttl=60)).items) == 1
    sent = storage._inbox.script

    async def lost(*args: Any) -> Any:
        await sent(*args)  # run at Redis: m1 handed to w there ...
        raise StorageError("connection dropped")  # ... but the answer never came

    monkeypatch.setattr(storage._inbox, "script", lost)
    with pytest.raises(StorageError):
        await storage.inbox_put_held("r1", {"text": "m1"}, owner="w", lease_ttl=60)
    monkeypatch.setattr(storage._inbox, "script", sent)
    # m2 would overtake m1 if handed now: it waits for the claim, which gives m1 again first.
    m2, handed = await storage.inbox_put_held("r1", {"text": "m2"}, owner="w", lease_ttl=60)
    assert m2 is not None and not handed
    claim = await storage.inbox_claim("w", lease_ttl=60)
    assert [i.payload["text"] for i in claim.items] == ["m0", "m1", "m2"]
    # The claim answered: the fast path is back.
    m3, handed = await storage.inbox_put_held("r1", {"text": "m3"}, owner="w", lease_ttl=60)
    assert m3 is not None and handed
