"""GET /metrics: scraped from the real server under real traffic, counters move as they should."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from webhooks import sdk_body

from qbot import Bot, Context
from qbot.config import Settings, load_settings
from qbot.emulator import Emulator
from qbot.server import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
TOKEN = "scrape-me-7f3a"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def settings_for(fake: Emulator, **metrics: Any) -> Settings:
    return load_settings(
        None,
        qiscus={
            "app_id": fake.config.app_id,
            "secret_key": fake.config.secret_key,
            "base_url": fake.base_url,
            "max_attempts": 1,  # a 503 queues the reply at once
        },
        bot={"email": "bot@example.com", "name": "Bot"},
        storage={"url": "memory://"},
        metrics=metrics,
    )


def metered_bot() -> Bot:
    bot = Bot("metered")

    @bot.message(text="hi")
    async def greet(ctx: Context) -> None:
        await ctx.reply("hello")

    @bot.message(text="boom")
    async def explode(ctx: Context) -> None:
        raise RuntimeError("kaboom")

    return bot


async def scrape(client: TestClient[Any, Any]) -> Samples:
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def scrape_until(client: TestClient[Any, Any], done: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``done`` holds (updates are processed after the webhook's 200)."""
    async with asyncio.timeout(10):
        # Polling over HTTP, as Prometheus does: there is no event to wait on.
        while not done(samples := await scrape(client)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return samples


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def handler_label(samples: Samples, suffix: str) -> str:
    return next(
        dict(labels)["handler"]
        for name, labels in samples
        if name == "qbot_handler_seconds_count" and dict(labels)["handler"].endswith(suffix)
    )


@pytest.fixture
async def served(aiohttp_client: ClientFactory, fake_qiscus: Emulator) -> TestClient[Any, Any]:
    app = create_app(metered_bot(), settings_for(fake_qiscus, enabled=True, token=TOKEN))
    return await aiohttp_client(app)


async def test_metrics_count_webhooks_handlers_and_replies_under_traffic(
    served: TestClient[Any, Any], fake_qiscus: Emulator
) -> None:
    client, fake = served, fake_qiscus
    before = await scrape(client)

    hi = sdk_body("hi", room_id=31, message_id=9001)
    assert (await (await client.post("/webhook", json=hi)).json())["status"] == "accepted"
    assert (await (await client.post("/webhook", json=hi)).json())["status"] == "duplicate"
    assert (await client.post("/webhook", data=b"not json")).status == 400
    assert (await client.post("/webhook", data=b"[1]")).status == 400
    await client.post("/webhook", json=sdk_body("boom", room_id=32, message_id=9002))
    await fake.wait_for(lambda: len(fake.posted_comments()) == 1, timeout=10)

    # Qiscus answers 503: the reply waits in the outbox, and goes with the room's next message.
    fake.fail_next("post_comment", status=503, times=1)
    await client.post("/webhook", json=sdk_body("hi", room_id=33, message_id=9003))
    await fake.wait_for(lambda: len(fake.calls_to("post_comment")) == 2, timeout=10)
    stalled = await scrape_until(client, lambda s: s[("qbot_outbox_pending", ())] == 1)
    await client.post("/webhook", json=sdk_body("hi", room_id=33, message_id=9004))
    await fake.wait_for(lambda: len(fake.posted_comments(33)) == 2, timeout=10)
    after = await scrape_until(
        client, lambda s: moved(before, s, "qbot_updates_total", outcome="handled") == 4
    )

    def webhooks(outcome: str, reason: str = "") -> float:
        return moved(before, after, "qbot_webhooks_total", outcome=outcome, reason=reason)

    assert webhooks("accepted") == 4
    assert webhooks("duplicate") == 1
    assert webhooks("rejected", "not_json") == 1
    assert webhooks("rejected", "not_an_object") == 1
    greet, explode = handler_label(after, ".greet"), handler_label(after, ".explode")
    assert moved(before, after, "qbot_handler_seconds_count", handler=greet) == 3
    assert moved(before, after, "qbot_handler_seconds_count", handler=explode) == 1
    assert moved(before, after, "qbot_handler_errors_total", handler=explode) == 1
    assert moved(before, after, "qbot_handler_errors_total", handler=greet) == 0
    assert moved(before, after, "qbot_replies_total", outcome="sent") == 2
    assert moved(before, after, "qbot_replies_total", outcome="queued") == 1
    assert moved(before, after, "qbot_replies_total", outcome="resent") == 1
    assert moved(before, after, "qbot_updates_total", outcome="handled") == 4
    assert stalled[("qbot_outbox_pending", ())] == 1
    assert after[("qbot_outbox_pending", ())] == 0
    assert after[("qbot_inbox_depth", ())] == 0
    assert after[("qbot_updates_in_hand", ())] == 0


async def test_metrics_need_the_bearer_token(served: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        resp = await served.get("/metrics", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await resp.json() == {"error": "missing or wrong bearer token (metrics.token)"}


async def test_metrics_are_off_by_default(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    client = await aiohttp_client(create_app(metered_bot(), settings_for(fake_qiscus)))
    assert (await client.get("/metrics")).status == 404


async def test_metrics_without_a_token_and_on_another_path(
    aiohttp_client: ClientFactory, fake_qiscus: Emulator
) -> None:
    settings = settings_for(fake_qiscus, enabled=True, path="/internal/metrics")
    client = await aiohttp_client(create_app(metered_bot(), settings))
    resp = await client.get("/internal/metrics")
    assert resp.status == 200
    assert "# TYPE qbot_webhooks_total counter" in await resp.text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A private redis-server on a free port (the test stops it; the shared one is never)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0?prefix=qbot-metrics-{uuid.uuid4().hex}:"
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
    yield url, proc
    if proc.returncode is None:
        proc.terminate()
        await proc.wait()


async def test_metrics_count_storage_errors_when_the_storage_goes_away(
    aiohttp_client: ClientFactory,
    fake_qiscus: Emulator,
    own_redis: tuple[str, asyncio.subprocess.Process],
) -> None:
    url, redis_proc = own_redis
    settings = settings_for(fake_qiscus, enabled=True, token=TOKEN)
    settings = settings.model_copy(
        update={"storage": settings.storage.model_copy(update={"url": url})}
    )
    client = await aiohttp_client(create_app(metered_bot(), settings))
    before = await scrape(client)
    assert before[("qbot_inbox_depth", ())] == 0

    redis_proc.terminate()
    await redis_proc.wait()
    resp = await client.post("/webhook", json=sdk_body("hi", room_id=41, message_id=9101))
    assert resp.status == 503
    after = await scrape(client)

    assert moved(before, after, "qbot_storage_errors_total", operation="inbox_put") == 1
    assert moved(before, after, "qbot_storage_errors_total", operation="scrape") == 1
    assert (
        moved(before, after, "qbot_webhooks_total", outcome="unavailable", reason="store_failed")
        == 1
    )
    assert math.isnan(after[("qbot_inbox_depth", ())])
    assert math.isnan(after[("qbot_outbox_pending", ())])
