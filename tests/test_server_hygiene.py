"""Connection hygiene: slow clients, a connection cap, header timeouts, malformed HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from collections.abc import Iterator

import pytest
from edge import raw_post, read_response, served_bot
from structlog.testing import capture_logs
from webhooks import sdk_body

from qbot._connections import connection_cap, quiet_accept_errors
from qbot.emulator import Emulator

SLOW = 1000


@pytest.fixture
def many_files() -> Iterator[None]:
    """Raise the soft open-file limit as far as the hard limit allows (both ends of 1,000
    connections live in this process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SLOW + 512
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < 2 * SLOW + 256:
        pytest.skip(f"the open-file limit ({hard}) is too low for {SLOW} connections")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def slow_client(port: int, opened: list[asyncio.StreamWriter]) -> None:
    """Open a connection and send the start of a request, never its end."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        opened.append(writer)


async def test_server_serves_webhooks_while_1000_slow_connections_hang(
    many_files: None, fake_qiscus: Emulator
) -> None:
    opened: list[asyncio.StreamWriter] = []
    server = {"max_connections": 200, "header_timeout": 60.0}
    async with served_bot(fake_qiscus, server=server) as port:
        try:
            for _ in range(SLOW // 100):
                await asyncio.gather(*(slow_client(port, opened) for _ in range(100)))
            assert len(opened) == SLOW
            for n in range(5):
                body = json.dumps(sdk_body(f"normal {n}", room_id=80 + n)).encode()
                status, answer = await raw_post(port, body)
                assert (status, answer) == (200, {"status": "accepted"})
            await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 5)
        finally:
            for writer in opened:
                writer.close()
    assert sorted(c["message"] for c in fake_qiscus.posted_comments()) == [
        f"echo: normal {n}" for n in range(5)
    ]


async def test_server_closes_a_connection_that_never_finishes_its_headers(
    fake_qiscus: Emulator,
) -> None:
    async with served_bot(fake_qiscus, server={"header_timeout": 0.2}) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
        # The server closes it: the read ends (EOF) instead of waiting forever.
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
        writer.close()
        # A prompt client on the same server is still served.
        body = json.dumps(sdk_body("prompt", room_id=90)).encode()
        assert (await raw_post(port, body))[0] == 200


async def test_server_closes_an_idle_kept_alive_connection(fake_qiscus: Emulator) -> None:
    async with served_bot(fake_qiscus, server={"keepalive_timeout": 0.2}) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nQISCUS-SDK-SIGNATURE: \x1f\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
    ],
)
async def test_server_answers_malformed_http_with_a_json_400(
    fake_qiscus: Emulator, request_bytes: bytes
) -> None:
    async with served_bot(fake_qiscus) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        status, headers, body = await read_response(reader)
        writer.close()
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"].startswith("bad HTTP request")


def test_connection_cap_defaults_under_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(50) == 50
    if soft != resource.RLIM_INFINITY:
        assert 16 <= connection_cap(None) < soft


async def test_accept_errors_are_logged_once_per_burst() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
    undo = quiet_accept_errors(loop)
    try:
        with capture_logs() as logs:
            for _ in range(500):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    }
                )
            loop.call_exception_handler({"message": "something else"})
    finally:
        undo()
    failed = [e for e in logs if e["event"] == "server.accept_failed"]
    assert len(failed) == 1
    assert "Too many open files" in failed[0]["error"]
    assert seen == ["something else"]  # other errors still reach the previous handler
    loop.set_exception_handler(None)


async def test_server_answers_408_to_a_body_that_trickles_in(fake_qiscus: Emulator) -> None:
    async with served_bot(fake_qiscus, server={"header_timeout": 0.3}) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        status, _, body = await asyncio.wait_for(read_response(reader), timeout=30)
        writer.close()
        assert status == 408
        assert "did not arrive" in json.loads(body)["error"]
        assert (await raw_post(port, json.dumps(sdk_body("ok", room_id=91)).encode()))[0] == 200
