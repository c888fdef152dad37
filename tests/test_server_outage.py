"""The server through a storage outage: 503 + Retry-After per webhook, one log line per outage."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from edge import served_bot
from structlog.testing import capture_logs
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture
from webhooks import sdk_body

from qbot.clock import ManualClock
from qbot.emulator import Emulator
from qbot.errors import StorageError
from qbot.outages import WEBHOOK_SHOWN, Outages


async def test_server_storage_down_every_webhook_503_but_one_log_line_per_outage(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture
    fake_qiscus: Emulator,
) -> None:
    refused = 20
    url = redis_server.url
    with capture_logs() as logs:
        async with served_bot(fake_qiscus, storage={"url": url}) as port:  # noqa: SIM117 - port
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                await redis_server.stop()
                for i in range(refused):
                    async with http.post("/webhook", json=sdk_body(f"m{i}", message_id=i + 1)) as r:
                        assert r.status == 503, await r.text()
                        assert r.headers["Retry-After"].isdigit()
                async with http.get("/healthz") as r:
                    assert r.status == 503
                    assert (await r.json())["status"] == "degraded"
                await redis_server.start()
                for i in range(refused):  # delivered again: every one stored now
                    async with http.post("/webhook", json=sdk_body(f"m{i}", message_id=i + 1)) as r:
                        assert r.status == 200, await r.text()
                await fake_qiscus.wait_for(
                    lambda: len(fake_qiscus.posted_comments()) >= refused, 20
                )
    failed = [e for e in logs if e["event"] == "webhook.store_failed"]
    recovered = [e for e in logs if e["event"] == "webhook.store_recovered"]
    assert len(failed) == 1, failed
    assert "StorageError" in failed[0]["error"]
    assert [e["failed_tries"] for e in recovered] == [refused]
    assert [c["message"] for c in fake_qiscus.posted_comments()] == [
        f"echo: m{i}" for i in range(refused)
    ]


def test_outages_name_refused_webhooks_for_a_while_after_the_last_then_say_all_is_well() -> None:
    # Storing webhooks is tried again only when a webhook comes: a load balancer that stops
    # sending them to a replica whose /healthz says degraded must not keep it degraded forever.
    clock = ManualClock()
    outages = Outages(clock=clock.time)
    error = StorageError("redis down")
    with capture_logs() as logs:
        outages.webhook_failed(error)
        clock.advance(WEBHOOK_SHOWN - 1)
        outages.webhook_failed(error)
        clock.advance(WEBHOOK_SHOWN - 1)
        assert outages.reason == "inbox_put: StorageError: redis down"
        outages.failed("claim", error)
        clock.advance(2)
        assert outages.reason == "claim: StorageError: redis down"  # claim ends by its own try
        outages.recovered("claim")
        assert outages.reason is None
        outages.webhook_failed(error)  # the same outage: no new line
        assert outages.reason == "inbox_put: StorageError: redis down"
        outages.webhook_stored()
        assert outages.reason is None
    assert [(e["event"], e.get("failed_tries")) for e in logs] == [
        ("webhook.store_failed", None),
        ("runtime.degraded", None),
        ("runtime.recovered", 1),
        ("webhook.store_recovered", 3),
    ]
