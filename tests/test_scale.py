"""Two real `qbot run` replicas sharing the local Redis: duplicates, ordering and a SIGKILL.

Each replica is a subprocess serving a small bot written to the test's folder; replies go to a
fake Qiscus in this process, so the assertions are on what Qiscus would have received.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from webhooks import sdk_body

from qbot.emulator import Emulator
from qbot.storage import RedisStorage

BOT = textwrap.dedent(
    """
    import asyncio, os, pathlib
    from qbot import Bot, Context

    bot = Bot("scale")
    FLAGS = pathlib.Path(os.environ["SCALE_FLAGS"])

    @bot.message()
    async def answer(ctx: Context) -> None:
        if ctx.text.startswith("block"):
            await ctx.reply(f"got {ctx.text}")
            marker = FLAGS / "blocked"
            if not marker.exists():  # only the first run blocks: the one that gets killed
                marker.write_text(str(os.getpid()))
                await asyncio.sleep(60)
            await ctx.reply(f"done {ctx.text}")
            return
        await asyncio.sleep(0.02)
        await ctx.reply(ctx.text)
    """
)

_ids = itertools.count(700_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One `qbot run` subprocess serving the test bot."""

    def __init__(
        self, folder: Path, fake: Emulator, storage_url: str, name: str, qiscus: str = ""
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.name = name
        self.config = folder / f"{name}.yaml"
        self.config.write_text(
            f"qiscus: {{app_id: {fake.config.app_id}, secret_key: {fake.config.secret_key}, "
            f"base_url: '{fake.base_url}'{qiscus}}}\n"
            "bot: {email: bot@example.com}\n"
            f"server: {{host: 127.0.0.1, port: {self.port}, shutdown_timeout: 5}}\n"
            f"storage: {{url: '{storage_url}', lease_ttl: 2}}\n"
            "log: {level: info, format: json}\n"
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> Replica:
        log = (self.folder / f"{self.name}.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbot.cli",
            "run",
            "scalebot:bot",
            "--config",
            str(self.config),
            cwd=self.folder,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "SCALE_FLAGS": str(self.folder), "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                if self.proc.returncode is not None:
                    break
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        raise RuntimeError(f"replica {self.name} did not start:\n{self.log_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        path = self.folder / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def post(http: aiohttp.ClientSession, replica: Replica, body: dict[str, Any]) -> str:
    async with http.post(f"{replica.url}/webhook", json=body) as resp:
        assert resp.status == 200, await resp.text()
        status: str = (await resp.json())["status"]
        return status


def message(room: int, text: str) -> dict[str, Any]:
    return sdk_body(text, room_id=room, message_id=next(_ids))


async def until(predicate: Callable[[], bool], seconds: float) -> None:
    """Poll ``predicate`` (for conditions outside the fake Qiscus, like a file appearing)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - a file has no event to wait on
            await asyncio.sleep(0.05)


def texts(fake: Emulator, room: int) -> list[str]:
    return [c["message"] for c in fake.posted_comments(room)]


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = f"redis://127.0.0.1:6379/0?prefix=qbot-scale-{uuid.uuid4().hex}:"
    yield url
    async with RedisStorage(url) as storage:
        await storage.drop()


@pytest.mark.redis
@pytest.mark.chaos
async def test_scale_two_replicas_answer_every_message_once_in_order_despite_a_kill(
    tmp_path: Path, redis_url: str, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    replicas = [Replica(tmp_path, fake_qiscus, redis_url, name) for name in ("a", "b")]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        async with aiohttp.ClientSession() as http:
            rooms = range(101, 107)

            async def converse(room: int, count: int, targets: list[Replica]) -> None:
                # One room's messages in order, each to one replica and its duplicate to the other.
                for i in range(count):
                    body = message(room, f"{room}:{i}")
                    first, second = targets[i % len(targets)], targets[(i + 1) % len(targets)]
                    assert await post(http, first, body) == "accepted"
                    assert await post(http, second, body) == "duplicate"

            await asyncio.gather(*(converse(room, 8, replicas) for room in rooms))
            await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 48, 20)
            for room in rooms:
                assert texts(fake_qiscus, room) == [f"{room}:{i}" for i in range(8)]

            # A message whose handler hangs after its first reply, then more for the same room:
            # whichever replica took the room is killed mid-message.
            blocked = 200
            block = message(blocked, "block me")
            assert await post(http, replicas[0], block) == "accepted"
            assert await post(http, replicas[1], block) == "duplicate"
            for i in range(3):
                assert await post(http, replicas[i % 2], message(blocked, f"after {i}")) == (
                    "accepted"
                )
            marker = tmp_path / "blocked"
            await until(lambda: marker.exists() and marker.read_text() != "", 20)
            victim = next(r for r in replicas if r.pid == int(marker.read_text()))
            survivor = next(r for r in replicas if r is not victim)
            await victim.kill()

            # The survivor takes the room over once the dead replica's lease lapses; meanwhile
            # traffic goes on, and redelivered duplicates are still recognised.
            assert await post(http, survivor, block) == "duplicate"
            await asyncio.gather(*(converse(room, 2, [survivor]) for room in rooms))
            await fake_qiscus.wait_for(lambda: len(texts(fake_qiscus, blocked)) == 5, 30)
            await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) == 65, 20)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
    assert texts(fake_qiscus, blocked) == [
        "got block me",  # sent once by the victim, recognised by the survivor, not sent again
        "done block me",
        "after 0",
        "after 1",
        "after 2",
    ]
    for room in rooms:
        assert texts(fake_qiscus, room) == [f"{room}:{i}" for i in range(8)] + [
            f"{room}:{i}" for i in range(2)
        ]
    ids = [c["unique_temp_id"] for c in fake_qiscus.posted_comments()]
    assert len(ids) == len(set(ids)) == 65
    assert "runtime.started" in survivor.log_text()
