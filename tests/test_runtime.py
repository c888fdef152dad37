"""Dedupe and per-room processing through the storage's inbox, without HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from storage_probe import lease_owner
from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.errors import ConfigError
from qbot.messages.base import Outgoing, OutgoingComment
from qbot.models import Update
from qbot.outbox import encode_outgoing
from qbot.runtime import Runtime
from qbot.storage import MemoryStorage, OutboxItem, SqliteStorage, Storage, room_lease_key


def echo_bot(storage: Storage) -> tuple[Bot, RecordingDelivery]:
    """A bot on ``storage`` that answers each text with itself, its replies recorded."""
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    bot.use_storage(storage)

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text)

    return bot, out


async def test_runtime_dedupe_remembers_for_the_ttl_then_forgets() -> None:
    now = [1000.0]
    bot = Bot(email="bot@example.com")
    bot.delivery = RecordingDelivery()
    bot.use_storage(MemoryStorage(clock=lambda: now[0]))
    runtime = Runtime(bot, dedupe_ttl=600)
    first = Update.model_validate(sdk_body("a", room_id=1, message_id=1))
    other = Update.model_validate(sdk_body("b", room_id=1, message_id=2))
    assert await runtime.submit(first) == "accepted"
    assert await runtime.submit(first) == "duplicate"
    now[0] += 599.0
    assert await runtime.submit(first) == "duplicate"
    assert await runtime.submit(other) == "accepted"
    now[0] += 1.5
    assert await runtime.submit(first) == "accepted"
    await runtime.drain(timeout=10)


async def test_runtime_drain_processes_everything_accepted_then_refuses() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()

    @bot.message()
    async def slow_echo(ctx: Context) -> None:
        await asyncio.sleep(0.01)
        await ctx.reply(ctx.text)

    runtime = Runtime(bot)
    for i in range(10):
        update = Update.model_validate(sdk_body(str(i), room_id=i % 3))
        assert await runtime.submit(update) == "accepted"
    assert await runtime.drain(timeout=10) == 0
    assert sorted(out.texts, key=int) == [str(i) for i in range(10)]
    assert await runtime.submit(Update.model_validate(sdk_body("late"))) == "closing"


async def test_runtime_drain_timeout_cancels_and_reports_unprocessed() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = RecordingDelivery()
    release = asyncio.Event()

    @bot.message()
    async def stuck(ctx: Context) -> None:
        await release.wait()

    runtime = Runtime(bot)
    for i in range(3):
        await runtime.submit(Update.model_validate(sdk_body(str(i), room_id=1)))
    await asyncio.sleep(0)
    assert await runtime.drain(timeout=0.05) == 3
    assert runtime.pending == 0


async def test_runtime_pending_counts_claimed_items_until_each_is_done() -> None:
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    gate = asyncio.Event()
    started = asyncio.Event()

    @bot.message()
    async def gated(ctx: Context) -> None:
        started.set()
        await gate.wait()
        await ctx.reply(ctx.text)

    runtime = Runtime(bot, linger=0)
    assert runtime.pending == 0
    for i in range(3):
        await runtime.submit(Update.model_validate(sdk_body(f"a{i}", room_id=1)))
    await runtime.submit(Update.model_validate(sdk_body("b0", room_id=2)))
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(500):  # the claim loop may hand the rooms over in two claims
        if runtime.pending >= 4:
            break
        await asyncio.sleep(0.01)
    assert runtime.pending == 4
    gate.set()
    assert await runtime.drain(timeout=10) == 0
    assert runtime.pending == 0
    assert sorted(out.texts) == ["a0", "a1", "a2", "b0"]


async def test_runtime_keeps_an_emptied_room_for_its_next_message_and_drain_frees_it(
    tmp_path: Path,
) -> None:
    bot, out = echo_bot(SqliteStorage(str(tmp_path / "qbot.db")))

    runtime = Runtime(bot, linger=10, owner="replica-a")
    assert await runtime.submit(Update.model_validate(sdk_body("one", room_id=5))) == "accepted"
    for _ in range(500):
        if out.texts == ["one"] and await bot.storage.inbox_size() == 0:
            break
        await asyncio.sleep(0.01)
    # Emptied but kept: another replica does not take the room, this one takes its next message.
    assert await lease_owner(bot.storage, room_lease_key("5")) == "replica-a"
    assert (await bot.storage.inbox_claim("replica-b", lease_ttl=30)).items == []
    assert await runtime.submit(Update.model_validate(sdk_body("two", room_id=5))) == "accepted"
    for _ in range(500):
        if out.texts == ["one", "two"]:
            break
        await asyncio.sleep(0.01)
    assert out.texts == ["one", "two"]
    assert await runtime.drain(timeout=10) == 0  # returns without waiting out the linger
    assert await lease_owner(bot.storage, room_lease_key("5")) is None
    await bot.aclose()


def test_runtime_refuses_a_linger_its_unrenewed_lease_would_not_outlive() -> None:
    with pytest.raises(ConfigError, match=r"linger \(20 s\) must be .* under half of lease_ttl"):
        Runtime(Bot(email="bot@example.com"), linger=20, lease_ttl=30)


async def test_runtime_renews_a_room_flushing_orphaned_replies_with_an_empty_queue() -> None:
    # The sweeper hands the room to a worker with nothing queued; its flush outlasts the lease.
    # Only a lingering room goes unrenewed, so this one must keep its lease throughout.
    class SlowDelivery(RecordingDelivery):
        async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
            await asyncio.sleep(2.5)
            return await super().deliver(room_id, outgoing, unique_temp_id)

    bot = Bot(email="bot@example.com")
    bot.delivery = out = SlowDelivery()
    bot.use_storage(MemoryStorage())
    await bot.open()
    record = encode_outgoing(9, OutgoingComment(type="text", message="orphan"))
    await bot.storage.commit(outbox=[OutboxItem("t-orphan", "9", record)])
    runtime = Runtime(bot, lease_ttl=1.5, linger=0.1, sweep_every=0.05, owner="replica-a")
    await runtime.start()
    await asyncio.sleep(1.9)  # past the lease set when the sweeper took the room, mid-flush
    assert await lease_owner(bot.storage, room_lease_key("9")) == "replica-a"
    for _ in range(300):
        if out.texts == ["orphan"]:
            break
        await asyncio.sleep(0.01)
    assert out.texts == ["orphan"]
    await runtime.drain(timeout=5)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_runtime_posts_a_rooms_waiting_replies_before_its_new_message(
    tmp_path: Path, backend: str
) -> None:
    # No sweeper: the claim itself says the room has replies waiting (Claim.replies_waiting).
    storage = MemoryStorage() if backend == "memory" else SqliteStorage(str(tmp_path / "q.db"))
    bot, out = echo_bot(storage)
    await bot.open()

    record = encode_outgoing(7, OutgoingComment(type="text", message="left by a dead worker"))
    await bot.storage.commit(outbox=[OutboxItem("t-dead", "7", record)])
    runtime = Runtime(bot, sweep_every=3600, linger=0)
    await runtime.submit(Update.model_validate(sdk_body("new", room_id=7)))
    for _ in range(500):
        if len(out.texts) == 2:
            break
        await asyncio.sleep(0.01)
    assert await runtime.drain(timeout=10) == 0
    assert out.texts == ["left by a dead worker", "new"]
    assert await bot.storage.outbox_pending() == []
    await bot.aclose()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_runtime_held_rooms_take_concurrent_webhooks_in_arrival_order(
    tmp_path: Path, backend: str
) -> None:
    # Webhooks arriving while their room's worker holds it are handed over with their inbox
    # write (no claim): in waves of concurrent arrivals, each room still runs them in the order
    # the inbox accepted them, once each, and each room keeps one lease owner.
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    seen: dict[int, list[int]] = {}

    @bot.message()
    async def record(ctx: Context) -> None:
        seen.setdefault(int(ctx.room.id), []).append(int(ctx.text))
        await asyncio.sleep(0.001)
        await ctx.reply(ctx.text)

    storage = MemoryStorage() if backend == "memory" else SqliteStorage(str(tmp_path / "q.db"))
    bot.use_storage(storage)
    runtime = Runtime(bot, linger=2.0)
    rooms, waves, per_wave = 4, 6, 8
    n = 0
    for _ in range(waves):
        batch = []
        for _ in range(per_wave):
            batch.append(Update.model_validate(sdk_body(str(n), room_id=n % rooms)))
            n += 1
        assert await asyncio.gather(*(runtime.submit(u) for u in batch)) == ["accepted"] * per_wave
        await asyncio.sleep(0.005)  # the rooms' workers are busy or lingering: rooms held
    assert await runtime.drain(timeout=20) == 0
    for room in range(rooms):
        assert seen[room] == list(range(room, n, rooms))
    assert sorted(out.texts, key=int) == [str(i) for i in range(n)]
    await bot.aclose()


async def test_runtime_keeps_nothing_per_room_once_its_worker_ends() -> None:
    # A bot meets new rooms all its life: a room's entries go with its worker, or the process
    # grows by every room it ever served (the lease generations did, ~100 bytes a room).
    bot, out = echo_bot(MemoryStorage())

    runtime = Runtime(bot, linger=0)
    await runtime.start()
    for room in range(200):
        update = Update.model_validate(sdk_body("hi", room_id=room, message_id=room))
        assert await runtime.submit(update) == "accepted"
    for _ in range(500):
        if len(out.texts) == 200 and not runtime._tasks:
            break
        await asyncio.sleep(0.01)
    assert len(out.texts) == 200
    per_room = [runtime._tasks, runtime._queues, runtime._ids, runtime._wake, runtime._generation]
    assert [len(entries) for entries in per_room] == [0, 0, 0, 0, 0]
    await runtime.drain(timeout=10)


async def test_runtime_a_lingering_room_holds_no_processed_item() -> None:
    # Under load every busy room lingers: its worker must not keep the last webhook it handled
    # (its stored body) alive meanwhile, ~0.8 KiB a room.
    import gc

    from qbot.storage import InboxItem

    bot, out = echo_bot(MemoryStorage())

    runtime = Runtime(bot, linger=10)
    await runtime.start()
    assert await runtime.submit(Update.model_validate(sdk_body("one", room_id=7))) == "accepted"
    for _ in range(500):
        if out.texts == ["one"] and "7" in runtime._lingering:
            break
        await asyncio.sleep(0.01)
    assert "7" in runtime._lingering
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, InboxItem) and o.room_id == "7"] == []
    await runtime.drain(timeout=10)


async def test_runtime_releases_each_lingering_room_after_its_own_linger() -> None:
    # The lingering rooms share one timer: a room whose linger ends later than the first one's
    # must still be released (the timer set again for it), and a message ends a linger.
    bot, out = echo_bot(MemoryStorage())

    runtime = Runtime(bot, linger=0.3, owner="replica-a")

    async def until(done: Any) -> None:
        for _ in range(2000):
            if await done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached")

    async def released(room: str) -> bool:
        key = room_lease_key(room)
        return room not in runtime._wake and await lease_owner(bot.storage, key) is None

    async def lingering(*rooms: str) -> bool:
        return set(rooms) <= set(runtime._lingering)

    assert await runtime.submit(Update.model_validate(sdk_body("a", room_id=1))) == "accepted"
    await until(lambda: lingering("1"))
    await asyncio.sleep(0.1)
    for room in (2, 3):  # their lingers end after room 1's
        update = Update.model_validate(sdk_body(f"r{room}", room_id=room))
        assert await runtime.submit(update) == "accepted"
        await until(lambda room=room: lingering(str(room)))
    assert await runtime.submit(Update.model_validate(sdk_body("b", room_id=2))) == "accepted"
    for room in ("1", "2", "3"):
        await until(lambda room=room: released(room))
    assert sorted(out.texts) == ["a", "b", "r2", "r3"]
    assert runtime._lingering == {}
    assert await runtime.drain(timeout=10) == 0
    await bot.aclose()
