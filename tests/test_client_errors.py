"""Errors and retries: what a user sees when Qiscus refuses, fails or does not answer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from qbot.client import QiscusClient, RetryPolicy
from qbot.emulator import Emulator, serve_emulator
from qbot.errors import (
    ConfigError,
    QiscusAPIError,
    QiscusBadRequest,
    QiscusError,
    QiscusForbidden,
    QiscusNetworkError,
    QiscusNotFound,
    QiscusRateLimited,
    QiscusServerError,
    QiscusUnauthorized,
)
from tests.emulated import STRICT, fake_store

BOT = "bot@example.com"
FAST = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)


@pytest_asyncio.fixture
async def client(fake_qiscus: Emulator) -> AsyncIterator[QiscusClient]:
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, retry=FAST
    ) as c:
        yield c


async def test_wrong_secret_is_unauthorized_and_not_retried(fake_qiscus: Emulator) -> None:
    async with QiscusClient(
        "fake-app", "wrong", base_url=fake_qiscus.base_url, retry=FAST
    ) as client:
        with pytest.raises(QiscusUnauthorized) as info:
            await client.post_comment(BOT, 1, "hi")

    assert info.value.status == 401
    assert info.value.endpoint == "/api/v2/rest/post_comment"
    assert "QISCUS-SDK-SECRET" in info.value.message
    assert len(fake_qiscus.calls) == 1


async def test_unknown_room_is_not_found_with_server_message() -> None:
    async with (
        serve_emulator(STRICT, fake_store()) as fake,
        QiscusClient("fake-app", "fake-secret", base_url=fake.base_url) as client,
    ):
        with pytest.raises(QiscusNotFound, match="room '999' not found"):
            await client.load_comments(999)


async def test_field_errors_and_detailed_messages_are_joined(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    body = {
        "status": 400,
        "error": {
            "message": "invalid request",
            "errors": {"room_id": ["is required", "must be a number"]},
            "detailed_messages": ["room_id is required"],
        },
    }
    fake_qiscus.fail_next("post_comment", status=400, body=body)

    with pytest.raises(QiscusBadRequest) as info:
        await client.post_comment(BOT, 1, "hi")

    assert info.value.message == (
        "invalid request; room_id: is required, must be a number; room_id is required"
    )
    assert info.value.body == body
    assert len(fake_qiscus.calls) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(403, QiscusForbidden), (404, QiscusNotFound), (422, QiscusAPIError)]
)
async def test_other_4xx_are_never_retried(
    client: QiscusClient, fake_qiscus: Emulator, status: int, error: type[QiscusAPIError]
) -> None:
    fake_qiscus.fail_next("post_comment", status=status, times=5)

    with pytest.raises(error):
        await client.post_comment(BOT, 1, "hi")

    assert len(fake_qiscus.calls) == 1


async def test_5xx_is_retried_until_success(client: QiscusClient, fake_qiscus: Emulator) -> None:
    fake_qiscus.fail_next("post_comment", status=503, times=2)

    with capture_logs() as logs:
        comment = await client.post_comment(BOT, 1, "hi", unique_temp_id="same")

    assert comment.message == "hi"
    bodies = [c.body for c in fake_qiscus.calls_to("post_comment")]
    assert [b["unique_temp_id"] for b in bodies] == ["same"] * 3
    assert len(fake_qiscus.posted_comments()) == 1
    retries = [e for e in logs if e["event"] == "qiscus.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]


async def test_generated_unique_temp_id_is_stable_across_retries(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=500)

    await client.post_comment(BOT, 1, "hi")

    ids = {c.body["unique_temp_id"] for c in fake_qiscus.calls_to("post_comment")}
    assert len(ids) == 1


async def test_5xx_gives_up_after_max_attempts(client: QiscusClient, fake_qiscus: Emulator) -> None:
    fake_qiscus.fail_next("post_comment", status=502, times=10)

    with pytest.raises(QiscusServerError) as info:
        await client.post_comment(BOT, 1, "hi")

    assert info.value.status == 502
    assert len(fake_qiscus.calls_to("post_comment")) == 3
    # A 502 may come after the post was taken: each retry looks for it first.
    assert len(fake_qiscus.calls_to("load_comments")) == 2


async def test_total_time_budget_ends_retries(fake_qiscus: Emulator) -> None:
    policy = RetryPolicy(max_attempts=1000, base_delay=0.01, max_delay=0.01, max_total_time=0.2)
    fake_qiscus.fail_next("post_comment", status=500, times=10_000)
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, retry=policy
    ) as client:
        with pytest.raises(QiscusServerError):
            await client.post_comment(BOT, 1, "hi")

    assert 1 < len(fake_qiscus.calls) < 1000


async def test_the_last_retry_is_not_squeezed_into_the_end_of_the_budget(
    fake_qiscus: Emulator,
) -> None:
    # Each answer (a 500) takes 40 ms; with 0.25 s in all, a try started in the last few
    # milliseconds would time out and the caller would see "no answer" instead of the 500.
    policy = RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.001, max_total_time=0.25)
    fake_qiscus.fail_next("post_comment", status=500, times=10_000)
    fake_qiscus.delay("post_comment", seconds=0.04, times=10_000)
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, retry=policy
    ) as client:
        for _ in range(3):
            with pytest.raises(QiscusServerError):
                await client.post_comment(BOT, 1, "hi")


async def test_429_waits_the_servers_retry_after(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=429, retry_after=0.02)

    with capture_logs() as logs:
        await client.post_comment(BOT, 1, "hi")

    assert [e["delay"] for e in logs if e["event"] == "qiscus.retry"] == [0.02]
    assert len(fake_qiscus.posted_comments()) == 1


async def test_429_longer_than_the_budget_is_raised_with_retry_after(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=429, retry_after=3600)

    with pytest.raises(QiscusRateLimited) as info:
        await client.post_comment(BOT, 1, "hi")

    assert info.value.retry_after == 3600
    assert len(fake_qiscus.calls) == 1


async def test_503_retry_after_is_honoured_too(client: QiscusClient, fake_qiscus: Emulator) -> None:
    fake_qiscus.fail_next("post_comment", status=503, retry_after=0.01)

    with capture_logs() as logs:
        await client.post_comment(BOT, 1, "hi")

    assert [e["delay"] for e in logs if e["event"] == "qiscus.retry"] == [0.01]


async def test_200_with_plain_text_error_is_an_error(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    fake_qiscus.fail_next("post_comment", status=200, body="sender_email is invalid")

    with pytest.raises(QiscusAPIError, match="sender_email is invalid"):
        await client.post_comment(BOT, 1, "hi")
    assert len(fake_qiscus.calls) == 1


async def test_200_with_error_status_in_json_body_is_an_error(
    client: QiscusClient, fake_qiscus: Emulator
) -> None:
    body = {"status": 400, "error": {"message": "room_id is invalid"}}
    fake_qiscus.fail_next("post_comment", status=200, body=body)

    with pytest.raises(QiscusBadRequest, match="room_id is invalid") as info:
        await client.post_comment(BOT, 1, "hi")
    assert info.value.status == 400


async def test_timeout_is_a_network_error_after_retries(fake_qiscus: Emulator) -> None:
    fake_qiscus.hang("post_comment", times=2)
    policy = RetryPolicy(max_attempts=2, base_delay=0, jitter=False)
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, timeout=0.05, retry=policy
    ) as client:
        with pytest.raises(QiscusNetworkError, match="no answer from Qiscus") as info:
            await client.post_comment(BOT, 1, "hi")

    assert info.value.endpoint == "/api/v2/rest/post_comment"
    assert len(fake_qiscus.calls_to("post_comment")) == 2


async def test_one_slow_answer_is_retried(fake_qiscus: Emulator) -> None:
    fake_qiscus.hang("post_comment")
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, timeout=0.2, retry=FAST
    ) as client:
        comment = await client.post_comment(BOT, 1, "hi")

    assert comment.message == "hi"


async def test_connection_refused_is_a_network_error_and_an_oserror() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=f"http://127.0.0.1:{port}", retry=FAST
    ) as client:
        with pytest.raises(QiscusNetworkError, match=f"127.0.0.1:{port}") as info:
            await client.post_comment(BOT, 1, "hi")

    assert isinstance(info.value, OSError)
    assert isinstance(info.value, QiscusError)


def test_retry_policy_rejects_impossible_values() -> None:
    with pytest.raises(ConfigError, match="max_attempts=0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError, match="base_delay=-1"):
        RetryPolicy(base_delay=-1)


def test_backoff_doubles_up_to_max_delay_and_jitter_stays_below() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=5, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(base_delay=1, max_delay=5)
    assert all(0 <= jittered.backoff(4) <= 5 for _ in range(50))


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    from qbot._retry import parse_retry_after

    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"app_id": "", "secret_key": "s"}, "app_id"),
        ({"app_id": "a", "secret_key": ""}, "secret_key"),
        ({"app_id": "a", "secret_key": "s", "api_version": "3"}, "'3'"),
    ],
)
def test_client_rejects_bad_settings(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        QiscusClient(**kwargs)  # type: ignore[arg-type]


def test_client_answers_decode_beyond_what_orjson_reads() -> None:
    from qbot._http import decode

    # Integers over 64 bits and UTF-16 text: orjson refuses both, the json fallback reads them.
    assert decode(200, "x", b'{"results": {"id": 123456789012345678901234}}', None) == {
        "id": 123456789012345678901234
    }
    assert decode(200, "x", '{"results": [1]}'.encode("utf-16"), None) == [1]
