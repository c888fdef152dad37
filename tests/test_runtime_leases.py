"""Room leases under interleavings: a renewal refused while the claim loop takes the room back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from storage_probe import lease_owner
from structlog.testing import capture_logs
from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.models import Update
from qbot.runtime import Runtime
from qbot.storage import SqliteStorage, room_lease_key


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 - the storage has no event to wait on
            await asyncio.sleep(0.02)


async def test_runtime_room_retaken_after_a_refused_renewal_is_worked_on_not_dropped(
    tmp_path: Path,
) -> None:
    # The room's lease lapses mid-message (a stalled loop, an outage longer than the lease) and
    # another replica holds it for a moment: our renewal is refused. Then the room is free again
    # and our claim loop takes it back, every item still in hand. The worker must keep the room:
    # dropping its queue now would leave the items claimed by us under a lease that storage
    # records as ours, so the room would stall until that lease expired.
    now = [1_000_000.0]
    path = str(tmp_path / "qbot.db")
    storage = SqliteStorage(path, clock=lambda: now[0])
    other = SqliteStorage(path, clock=lambda: now[0])  # another replica's handle on the file
    bot = Bot(email="bot@example.com")
    bot.delivery = out = RecordingDelivery()
    bot.use_storage(storage)
    started, gate = asyncio.Event(), asyncio.Event()

    @bot.message()
    async def echo(ctx: Context) -> None:
        if ctx.text == "hold":
            started.set()
            await gate.wait()
        await ctx.reply(ctx.text)

    runtime = Runtime(bot, lease_ttl=0.6, linger=0, sweep_every=60, owner="replica-a")
    key = room_lease_key("5")
    with capture_logs() as logs:
        for i, text in enumerate(["hold", "m2", "m3"]):
            update = Update.model_validate(sdk_body(text, room_id=5, message_id=i + 1))
            assert await runtime.submit(update) == "accepted"
        async with asyncio.timeout(10):
            await started.wait()
        assert await lease_owner(storage, key) == "replica-a"

        async def refused() -> bool:
            return any(
                e["event"] == "runtime.lease_lost" and e.get("reason") == "renewal refused"
                for e in logs
            )

        async def ours_again() -> bool:
            return await lease_owner(storage, key) == "replica-a"

        async def answered() -> bool:
            return len(out.texts) >= 3

        try:
            await other.open()
            now[0] += 60.0  # the lease lapses (the storage's clock), and replica-b takes it
            assert await other.lease_acquire(key, "replica-b", 600.0)
            await until(refused)
            assert await other.lease_release(key, "replica-b")
            await until(ours_again)  # the claim loop took the room back, every item in hand
            gate.set()
            await until(answered)
        finally:
            gate.set()
            await other.close()
            await runtime.drain(timeout=10)
    assert out.texts == ["hold", "m2", "m3"]
    assert not [e for e in logs if e["event"] == "runtime.room_dropped"]
