"""A storage outage met inside a handler (``ctx.reply`` cannot record its reply) is an outage,
not a handler bug: one log line, /healthz degraded, the update processed again once the storage
is back, no error handler reply and no traceback per try."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from edge import served_bot
from structlog.testing import capture_logs
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture
from webhooks import sdk_body

from qbot import Bot, Context
from qbot.emulator import Emulator
from qbot.errors import LeaseLostError, StorageError
from qbot.outages import storage_outage


async def test_a_storage_outage_inside_a_handler_is_retried_and_logged_once(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture
    fake_qiscus: Emulator,
) -> None:
    entered, go = asyncio.Event(), asyncio.Event()
    runs = 0
    bot = Bot("outage")

    @bot.message()
    async def echo(ctx: Context) -> None:
        nonlocal runs
        runs += 1
        entered.set()
        await go.wait()  # the test stops Redis meanwhile: the reply cannot be recorded
        await ctx.reply(f"echo: {ctx.text}")

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.reply("sorry")

    with capture_logs() as logs:
        async with served_bot(fake_qiscus, bot, storage={"url": redis_server.url}) as port:  # noqa: SIM117 - port
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async with http.post("/webhook", json=sdk_body("hi", message_id=7)) as r:
                    assert r.status == 200, await r.text()
                async with asyncio.timeout(20):
                    await entered.wait()
                await redis_server.stop()
                go.set()
                for _ in range(800):  # until the handler's try has failed
                    if any(e.get("task") == "process" for e in logs):
                        break
                    await asyncio.sleep(0.025)
                async with http.get("/healthz") as r:
                    assert (r.status, (await r.json())["status"]) == (503, "degraded")
                await asyncio.sleep(1.0)  # tried again and again meanwhile (backoff)
                await redis_server.start()
                await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) >= 1, 30)
                await asyncio.sleep(0.3)  # nothing more comes
                for _ in range(800):  # each task ends its outage by its next try (backoff)
                    async with http.get("/healthz") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.025)
                assert r.status == 200, await r.text()
    assert [c["message"] for c in fake_qiscus.posted_comments()] == ["echo: hi"]
    assert runs >= 2  # the try that met the outage, and the one that answered
    names = [e["event"] for e in logs]
    assert "handler.failed" not in names and "error_handler.failed" not in names, names
    process = [e for e in logs if e.get("task") == "process"]
    assert [e["event"] for e in process] == ["runtime.degraded", "runtime.recovered"]
    assert process[0]["exc_info"] is None  # one line, no traceback
    assert [e for e in logs if e.get("exc_info")] == []


def test_storage_outage_tells_a_backend_failure_from_a_refused_value() -> None:
    def raised_from(cause: BaseException | None) -> StorageError:
        error = StorageError("storage failed")
        error.__cause__ = cause
        return error

    from redis.exceptions import ConnectionError as RedisConnectionError

    assert storage_outage(raised_from(RedisConnectionError("Error 111 connecting")))
    assert storage_outage(raised_from(sqlite3.OperationalError("database or disk is full")))
    assert storage_outage(raised_from(OSError(5, "I/O error")))
    # Refused values are the handler's bug: its error handler runs, as for any other bug.
    assert not storage_outage(raised_from(None))  # "state keys must be non-empty strings"
    assert not storage_outage(raised_from(TypeError("not JSON serializable")))
    assert not storage_outage(raised_from(sqlite3.IntegrityError("constraint")))
    assert not storage_outage(LeaseLostError("room lost"))
    assert not storage_outage(OSError("not a storage error"))


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan")])
async def test_a_value_the_storage_refuses_is_still_a_handler_failure(
    fake_qiscus: Emulator, value: object
) -> None:
    bot = Bot("refused")

    @bot.message()
    async def keep(ctx: Context) -> None:
        await ctx.state.set("x", value)  # not JSON: StorageError from a TypeError

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.reply("sorry")

    with capture_logs() as logs:
        async with served_bot(fake_qiscus, bot) as port:  # noqa: SIM117 - port
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async with http.post("/webhook", json=sdk_body("hi", message_id=8)) as r:
                    assert r.status == 200, await r.text()
                await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) >= 1, 20)
    assert [c["message"] for c in fake_qiscus.posted_comments()] == ["sorry"]
    assert [e["event"] for e in logs].count("handler.failed") == 1
