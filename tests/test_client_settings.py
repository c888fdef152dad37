"""`QiscusClient.from_settings`: the one way settings become a client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from qbot.client import QiscusClient, RetryPolicy
from qbot.config import load_settings
from qbot.errors import QiscusServerError

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


async def failing_qiscus(aiohttp_server: ServerFactory) -> tuple[str, list[str]]:
    """A Qiscus that answers 500 to everything and records who called it."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.headers.get("QISCUS-SDK-APP-ID", ""))
        return web.json_response({"status": 500, "error": {"message": "down"}}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), calls


async def test_from_settings_takes_address_version_and_retries(
    aiohttp_server: ServerFactory,
) -> None:
    base_url, calls = await failing_qiscus(aiohttp_server)
    settings = load_settings(
        None,
        qiscus={
            "app_id": "shop",
            "secret_key": "s3cret",
            "base_url": base_url + "/",
            "api_version": "2.1",
            "max_attempts": 2,
        },
        bot={"email": "bot@shop.id"},
    )

    async with QiscusClient.from_settings(settings) as client:
        assert (client.app_id, client.base_url, client.api_version) == ("shop", base_url, "2.1")
        with pytest.raises(QiscusServerError):
            await client.reset_user_token("a@x.io")

    assert calls == ["shop", "shop"]  # qiscus.max_attempts


async def test_from_settings_retry_overrides_the_configured_policy(
    aiohttp_server: ServerFactory,
) -> None:
    base_url, calls = await failing_qiscus(aiohttp_server)
    settings = load_settings(
        None,
        qiscus={"app_id": "shop", "secret_key": "s3cret", "base_url": base_url},
        bot={"email": "bot@shop.id"},
    )

    client = QiscusClient.from_settings(settings, retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(QiscusServerError):
            await client.reset_user_token("a@x.io")

    assert len(calls) == 1
