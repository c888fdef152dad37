"""The webhook server's edge: bodies however they arrive, hostile input, secrets, hygiene."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from edge import raw_post, read_response, served_bot
from webhooks import sdk_body

from tests.fake_qiscus import FakeQiscus

LIMIT = 1024 * 1024


def body_of_size(size: int, **kw: Any) -> bytes:
    """A valid webhook body of exactly ``size`` bytes (the text pads it)."""
    base = json.dumps(sdk_body("", **kw)).encode()
    padded = json.dumps(sdk_body("x" * (size - len(base)), **kw)).encode()
    assert len(padded) == size
    return padded


# --- row 1: bodies are read whole, however they are segmented -----------------------------------


@pytest.mark.parametrize("size", [200 * 1024, 500 * 1024, LIMIT])
async def test_server_reads_a_body_sent_in_many_small_writes(
    fake_qiscus: FakeQiscus, size: int
) -> None:
    body = body_of_size(size, room_id=size)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=40, pause=0.002)
        assert (status, answer) == (200, {"status": "accepted"})
        await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 1)
    assert fake_qiscus.posted_comments()[0]["message"] == "echo: " + "x" * 40


async def test_server_reads_a_chunked_body_sent_in_many_chunks(fake_qiscus: FakeQiscus) -> None:
    body = body_of_size(300 * 1024, room_id=31)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=64, chunked=True, pause=0.001)
    assert (status, answer) == (200, {"status": "accepted"})


async def test_server_answers_413_to_a_chunked_body_over_the_limit(
    fake_qiscus: FakeQiscus,
) -> None:
    body = body_of_size(LIMIT + 1, room_id=32)
    async with served_bot(fake_qiscus) as port:
        status, answer = await raw_post(port, body, pieces=32, chunked=True)
        assert status == 413
        assert "larger than 1048576 bytes" in answer["error"]
        # Nothing was stored: the same body within the limit is new, not a duplicate.
        status, answer = await raw_post(port, body_of_size(LIMIT, room_id=32))
        assert answer == {"status": "accepted"}


async def test_server_answers_413_from_content_length_without_reading(
    fake_qiscus: FakeQiscus,
) -> None:
    async with served_bot(fake_qiscus) as port:
        # The header announces more than the limit; only one byte of it is ever sent.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n{{"
        writer.write(head.encode())
        status, _, text = await read_response(reader)
        writer.close()
    assert status == 413
    assert "larger than" in json.loads(text)["error"]
