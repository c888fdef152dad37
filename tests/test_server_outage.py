"""The server through a storage outage: 503 + Retry-After per webhook, one log line per outage."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from edge import served_bot
from structlog.testing import capture_logs
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture
from webhooks import sdk_body

from qbot.emulator import Emulator


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
