"""The Omnichannel lifecycle routes at the edge: bodies read whole however they are segmented,
413 past the limit (chunked included), 503 with Retry-After while the storage is down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from edge import raw_exchange, raw_post, served_bot
from test_chaos import RedisServer, redis_server  # noqa: F401 - the fixture

from qbot import Bot, Context
from qbot.emulator import Emulator

LIMIT = 1024 * 1024


def lifecycle_json(kind: str, room: str, padding: str = "") -> dict[str, Any]:
    """A minimal body of the ``kind`` lifecycle webhook for ``room`` (``padding`` rides along)."""
    if kind == "resolved":
        body: dict[str, Any] = {
            "service": {"room_id": room},
            "customer": {"user_id": "ana@example.com", "name": "Ana"},
        }
    elif kind == "new-session":
        body = {"room_log": {"room_id": room, "user_id": "ana@example.com", "source": "wa"}}
    else:
        body = {"room_id": room, "email": "ana@example.com", "name": "Ana", "source": "wa"}
    return {**body, "padding": padding}


def lifecycle_of_size(kind: str, room: str, size: int) -> bytes:
    """A valid ``kind`` webhook body of exactly ``size`` bytes."""
    base = len(json.dumps(lifecycle_json(kind, room)).encode())
    padded = json.dumps(lifecycle_json(kind, room, "x" * (size - base))).encode()
    assert len(padded) == size
    return padded


class Seen(list[tuple[str, str, int]]):
    """What a :func:`recording_bot` handled, and a way to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def record(self, item: tuple[str, str, int]) -> None:
        async with self.changed:
            self.append(item)
            self.changed.notify_all()

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(20), self.changed:
            await self.changed.wait_for(lambda: len(self) >= count)


def recording_bot(seen: Seen) -> Bot:
    """Records ``(kind, room, len(padding))`` for every lifecycle update it handles."""
    bot = Bot("lifecycle-edge")

    async def record(kind: str, ctx: Context) -> None:
        body = (ctx.message.payload or {}).get("body") or {}
        await seen.record((kind, ctx.room.id, len(body.get("padding", ""))))

    @bot.on_resolved
    async def resolved(ctx: Context) -> None:
        await record("resolved", ctx)

    @bot.on_new_session
    async def new_session(ctx: Context) -> None:
        await record("new-session", ctx)

    @bot.on_agent_allocation
    async def allocation(ctx: Context) -> None:
        await record("agent-allocation", ctx)

    return bot


KINDS = ["resolved", "new-session", "agent-allocation"]


@pytest.mark.parametrize("kind", KINDS)
async def test_lifecycle_route_reads_a_body_sent_in_many_small_writes(
    fake_qiscus: Emulator, kind: str
) -> None:
    seen = Seen()
    small = lifecycle_of_size(kind, "801", 2000)
    large = lifecycle_of_size(kind, "802", 200 * 1024)
    async with served_bot(fake_qiscus, recording_bot(seen)) as port:
        path = f"/webhook/{kind}"
        answers = [
            await raw_post(port, small, pieces=25, pause=0.002, path=path),
            await raw_post(port, large, pieces=40, pause=0.002, path=path),
            await raw_post(port, large, pieces=64, chunked=True, pause=0.001, path=path),
        ]
        assert answers == [
            (200, {"status": "accepted"}),
            (200, {"status": "accepted"}),
            (200, {"status": "duplicate"}),  # the same body again, chunked: read whole too
        ]
        await seen.reach(2)
    assert sorted(seen) == [(kind, "801", padding(small)), (kind, "802", padding(large))]


@pytest.mark.parametrize("kind", KINDS)
async def test_lifecycle_route_reads_a_body_of_exactly_the_limit(
    fake_qiscus: Emulator, kind: str
) -> None:
    seen = Seen()
    body = lifecycle_of_size(kind, "803", LIMIT)
    async with served_bot(fake_qiscus, recording_bot(seen)) as port:
        answer = await raw_post(port, body, pieces=32, pause=0.001, path=f"/webhook/{kind}")
        assert answer == (200, {"status": "accepted"})
        await seen.reach(1)
    assert seen == [(kind, "803", padding(body))]


@pytest.mark.parametrize("kind", KINDS)
async def test_lifecycle_route_answers_413_to_a_chunked_body_over_the_limit(
    fake_qiscus: Emulator, kind: str
) -> None:
    seen = Seen()
    body = lifecycle_of_size(kind, "804", LIMIT + 1)
    async with served_bot(fake_qiscus, recording_bot(seen)) as port:
        path = f"/webhook/{kind}"
        status, answer = await raw_post(port, body, pieces=32, chunked=True, path=path)
        assert status == 413
        assert "larger than 1048576 bytes" in answer["error"]
        announced = await raw_post(port, body, pieces=32, path=path)  # Content-Length
        assert announced[0] == 413
        # Nothing was stored: a body within the limit for the same room is new.
        within = lifecycle_of_size(kind, "804", LIMIT)
        assert await raw_post(port, within, path=path) == (200, {"status": "accepted"})
        await seen.reach(1)
    assert seen == [(kind, "804", padding(within))]


async def test_lifecycle_routes_answer_503_with_retry_after_while_the_storage_is_down(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture
    fake_qiscus: Emulator,
) -> None:
    seen = Seen()
    bodies = {kind: lifecycle_of_size(kind, "805", 5000) for kind in KINDS}
    async with served_bot(
        fake_qiscus, recording_bot(seen), storage={"url": redis_server.url}
    ) as port:
        await redis_server.stop()
        for kind, body in bodies.items():
            status, headers, answer = await raw_exchange(
                port, body, pieces=5, path=f"/webhook/{kind}"
            )
            assert status == 503, answer
            assert headers["retry-after"].isdigit()
            assert "deliver again later" in answer["error"]
        await redis_server.start()
        for kind, body in bodies.items():  # delivered again: stored and handled now
            answer = await raw_post(port, body, pieces=5, path=f"/webhook/{kind}")
            assert answer == (200, {"status": "accepted"})
        await seen.reach(len(KINDS))
    assert sorted(seen) == sorted((kind, "805", padding(b)) for kind, b in bodies.items())


def padding(body: bytes) -> int:
    return len(json.loads(body)["padding"])


@pytest.mark.parametrize("kind", KINDS)
async def test_lifecycle_route_refuses_deep_nesting_with_400(
    fake_qiscus: Emulator, kind: str
) -> None:
    deep = b"[" * 100_000
    inside = json.dumps(lifecycle_json(kind, "806")).encode()[:-1] + b', "x": '
    inside += b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with served_bot(fake_qiscus) as port:
        for body in (deep, inside):
            status, answer = await raw_post(port, body, path=f"/webhook/{kind}")
            assert status == 400, answer
            assert "nested too deeply" in answer["error"]
        ok = lifecycle_of_size(kind, "806", 3000)  # the server still serves
        assert await raw_post(port, ok, path=f"/webhook/{kind}") == (200, {"status": "accepted"})
