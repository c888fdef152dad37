"""The Redis-only interleaving of the lease race: a commit refused at Redis, then a claim that
takes the room back, with the claim's answer arriving first (they go over different connections
of the pool). A TCP proxy between qbot and a private redis-server is the network: it holds the
commit's answer until the claim's has gone by."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from storage_probe import lease_owner
from structlog.testing import capture_logs
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture
from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.models import Update
from qbot.runtime import Runtime
from qbot.storage import RedisStorage, room_lease_key
from qbot.storage import redis_lua as lua


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode()).hexdigest().encode()


class ReorderingProxy:
    """Forwards every connection to Redis; once armed, holds the answer to the next commit that
    acks items (EVALSHA of the commit script) until :meth:`release`, and counts the claims
    answered meanwhile."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.armed = False
        self.commit_held = asyncio.Event()
        self.claims_answered = 0
        self.claims_asked = 0
        self._release = asyncio.Event()
        self.claims_open = asyncio.Event()  # cleared: claim requests wait before going on
        self.claims_open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def release(self) -> None:
        self._release.set()

    async def close_claims(self) -> None:
        """Hold back claims sent from now on; those already in flight are answered first."""
        self.claims_open.clear()
        await asyncio.sleep(0.1)

    async def close(self) -> None:
        self._release.set()
        self.claims_open.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        self._writers += [client_w, server_w]
        # What the request in flight on this connection is: redis-py sends the next one only
        # once the answer is read (a pipeline is one request, whose answer may come in pieces).
        asked = [b"other"]

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if _sha(lua.COMMIT) in data and b'"acks":[[' in data:
                    asked[0] = b"commit"  # one that acks items: its lease is checked
                elif _sha(lua.CLAIM) in data:
                    await self.claims_open.wait()
                    if self.claims_answered:  # the loop has acted on an answer since the hold
                        self.claims_asked += 1
                    asked[0] = b"claim"
                else:
                    asked[0] = b"other"
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                what, asked[0] = asked[0], b"other"  # the first piece of its answer
                if what == b"commit" and self.armed:
                    self.armed = False
                    self.commit_held.set()
                    await self._release.wait()  # the answer arrives late
                elif what == b"claim" and self.commit_held.is_set():
                    self.claims_answered += 1
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        for pump in (upstream(), downstream()):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 - the storage has no event to wait on
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("between", ["held", "processed"])
async def test_commit_refused_then_room_retaken_answer_reordered_keeps_the_queue(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture
    between: str,
) -> None:
    # "held": replica-b only held the room a moment; "processed": it claimed the room's items
    # and processed (acked) "hold" before giving the room up.
    proxy = ReorderingProxy(redis_server.port)
    await proxy.start()
    # The commit's answer is held while the test acts: longer than redis-py's 5 s read timeout
    # on a loaded machine, which would make it a timeout (an outage), not a late refusal.
    url = f"redis://127.0.0.1:{proxy.port}/0?prefix=qbot-race:&socket_timeout=120"
    storage = RedisStorage(url)
    other = RedisStorage(f"redis://127.0.0.1:{redis_server.port}/0?prefix=qbot-race:")
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

    # A long lease: its renewer stays out of the way, and the room a dropped queue leaves
    # behind (claimed by us in Redis, worked on by nobody) would stall for all of the test.
    runtime = Runtime(bot, lease_ttl=60.0, linger=0, sweep_every=60, owner="replica-a")
    key = room_lease_key("5")

    async def texts(n: int) -> bool:
        return len(out.texts) >= n

    with capture_logs() as logs:
        try:
            await other.open()
            warm = Update.model_validate(sdk_body("warm", room_id=4, message_id=100))
            assert await runtime.submit(warm) == "accepted"  # the scripts are loaded now
            await until(lambda: texts(1))
            for i, text in enumerate(["hold", "m2"]):
                update = Update.model_validate(sdk_body(text, room_id=5, message_id=i + 1))
                assert await runtime.submit(update) == "accepted"
            async with asyncio.timeout(20):
                await started.wait()
            assert await lease_owner(other, key) == "replica-a"
            # The lease lapses mid-message and replica-b takes the room for a moment.
            await proxy.close_claims()  # our claim loop would take a free room back first
            await other._redis.delete(other.prefix + "l:" + key)
            taken = await other.inbox_claim("replica-b", lease_ttl=600.0, limit=10)
            assert [i.room_id for i in taken.items] == ["5", "5"]
            proxy.armed = True
            gate.set()  # the handler ends; its commit is refused at Redis, answered late
            async with asyncio.timeout(20):
                await proxy.commit_held.wait()
            if between == "processed":
                await other.commit(owner="replica-b", ack=taken.items[:1])
            assert await other.lease_release(key, "replica-b")
            proxy.claims_open.set()

            async def retaken() -> bool:
                # A claim answered, then another asked: the loop has acted on the answer.
                owner = await lease_owner(other, key)
                return owner == "replica-a" and proxy.claims_asked > 0

            await until(retaken)  # the claim loop took the room back; its answer went first
            proxy.release()  # now the refused commit's answer arrives
            await until(lambda: texts(3))
            await asyncio.sleep(0.3)  # nothing more comes
        finally:
            gate.set()
            await proxy.close()
            await runtime.drain(timeout=10)
            await storage.close()
            with contextlib.suppress(Exception):
                await other.drop()
            await other.close()
    # Each reply posted once ("hold" was posted before its commit was refused: looked up when
    # processed again, or, processed by replica-b meanwhile, skipped), and the queue kept.
    assert out.texts == ["warm", "hold", "m2"]
    assert not [e for e in logs if e["event"] == "runtime.room_dropped"]
    retaken = [e for e in logs if e["event"] == "runtime.lease_retaken"]
    assert [e["again"] for e in retaken] == [between == "held"], logs
