"""`kill -9` of a single `qbot run` on SQLite: what it accepted is processed after the restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from test_scale import BOT, Replica, message, post, texts, until

from qbot.emulator import Emulator

pytestmark = pytest.mark.chaos


def handled(replica: Replica, room: str) -> bool:
    """Whether the replica logged ``update.handled`` for a message of ``room``."""
    for line in replica.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut by the kill
            continue
        if entry.get("event") == "update.handled" and entry.get("room_id") == room:
            return True
    return False


async def test_crash_accepted_messages_are_processed_after_kill_9_and_restart(
    tmp_path: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    url = f"sqlite:///{tmp_path / 'qbot.db'}"
    first = await Replica(tmp_path, fake_qiscus, url, "first").start()
    second: Replica | None = None
    try:
        async with aiohttp.ClientSession() as http:
            block = message(300, "block me")
            assert await post(http, first, block) == "accepted"
            for i in range(3):  # accepted (stored) behind the hanging message, not processed
                assert await post(http, first, message(300, f"after {i}")) == "accepted"
            assert await post(http, first, message(301, "other room")) == "accepted"
            await until(lambda: (tmp_path / "blocked").exists(), 20)
            # Killed once room 301's handler has returned (its reply recorded sent, the ack
            # maybe not): a kill between Qiscus accepting a reply and qbot recording it is the
            # one window docs/scaling.md leaves open.
            await until(lambda: handled(first, "301"), 10)
            await first.kill()
            assert texts(fake_qiscus, 300) == ["got block me"]

            second = await Replica(tmp_path, fake_qiscus, url, "second").start()
            assert await post(http, second, block) == "duplicate"  # dedupe survived the crash
            await fake_qiscus.wait_for(lambda: len(texts(fake_qiscus, 300)) == 5, 20)
            await asyncio.sleep(0.3)  # nothing more arrives: no reply is sent twice
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.stop()
    assert texts(fake_qiscus, 300) == [
        "got block me",
        "done block me",
        "after 0",
        "after 1",
        "after 2",
    ]
    assert texts(fake_qiscus, 301) == ["other room"]
