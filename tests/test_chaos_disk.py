"""Chaos: the disk under SQLite refuses writes (full), under traffic, then has room again.

The database lives on a small tmpfs of the test's own; the test fills it with a file, so SQLite's
writes fail with SQLITE_FULL for real (root ignores file modes, so chmod would not stop them),
then deletes the file. Needs root and ``mount``: skipped with the reason otherwise, except on CI
(``CI=true``), where it must run.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
from test_chaos import deliver, events, health
from test_scale import BOT, Replica, message, texts

from qbot.emulator import Emulator

pytestmark = pytest.mark.chaos

SIZE = "16m"
"""The filesystem: room for the database and its write-ahead log, and little more."""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the disk-full chaos test, but {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``SIZE`` mounted on a folder of the test's; unmounted even if the test fails."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        _unavailable("mounting a tmpfs needs root")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"mount could not run: {e}")
    if done.returncode != 0:
        _unavailable(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        # Lazily: a process the test left behind may still hold a file open there.
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30, check=False)


def _write_until_full(f: BinaryIO, size: int) -> int | None:
    """Write ``size`` bytes at a time until the write fails; return its errno."""
    try:
        while True:
            f.write(b"\0" * size)
    except OSError as e:
        return e.errno


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the filesystem is full; return it."""
    ballast = folder / "ballast"
    with ballast.open("wb", buffering=0) as f:
        # Whole chunks, then the last bytes of the last block.
        assert [_write_until_full(f, size) for size in (65536, 1)] == [errno.ENOSPC] * 2
    return ballast


async def test_chaos_sqlite_disk_full_under_traffic_503_degraded_then_each_message_answered_once(
    tmp_path: Path, small_disk: Path, fake_qiscus: Emulator
) -> None:
    (tmp_path / "scalebot.py").write_text(BOT)
    replica = Replica(tmp_path, fake_qiscus, f"sqlite:///{small_disk / 'qbot.db'}", "a")
    await replica.start()
    rooms, count = range(1101, 1105), 30
    pad = "x" * 1500  # every message needs new pages: the log has to grow
    statuses: list[int] = []
    accepted = 0
    full: asyncio.Event = asyncio.Event()

    def text(room: int, i: int) -> str:
        return f"{room}:{i}:{pad}"

    try:
        async with aiohttp.ClientSession() as http:

            async def send(body: dict[str, Any]) -> None:
                # What Qiscus sees: 200 once stored, else 503 with Retry-After, never a 500.
                async with http.post(f"{replica.url}/webhook", json=body) as resp:
                    statuses.append(resp.status)
                    if resp.status == 503:
                        assert resp.headers["Retry-After"].isdigit()
                        full.set()
                    else:
                        assert resp.status == 200, await resp.text()

            async def converse(room: int) -> None:
                nonlocal accepted
                for i in range(count):
                    body = message(room, text(room, i))
                    await send(body)
                    if statuses[-1] != 200:  # delivered again, as Qiscus does, until stored
                        assert await deliver(http, replica, body) == "accepted"
                    accepted += 1
                    await asyncio.sleep(0.02)

            async def outage() -> None:
                while accepted < 20:  # noqa: ASYNC110 - traffic has no event to wait on
                    await asyncio.sleep(0.01)
                ballast = fill(small_disk)
                async with asyncio.timeout(60):
                    await full.wait()  # the traffic ran into the full disk
                await asyncio.sleep(1.0)  # webhooks delivered again and again meanwhile
                status, body = await health(http, replica)
                assert (status, body["status"]) == (503, "degraded"), body
                assert "inbox_put" in body["reason"] and "full" in body["reason"], body
                ballast.unlink()

            await asyncio.gather(outage(), *(converse(room) for room in rooms))
            total = len(rooms) * count
            await fake_qiscus.wait_for(lambda: len(fake_qiscus.posted_comments()) >= total, 60)
            await asyncio.sleep(0.3)  # nothing more arrives: no reply is sent twice
            assert (await health(http, replica))[0] == 200
    finally:
        await replica.stop()
    for room in rooms:
        assert texts(fake_qiscus, room) == [text(room, i) for i in range(count)]
    ids = [c["unique_temp_id"] for c in fake_qiscus.posted_comments()]
    assert len(ids) == len(set(ids)) == len(rooms) * count
    assert statuses.count(503) >= 1 and set(statuses) == {200, 503}
    # One line per outage, however many webhooks were refused and tries failed.
    assert len(events(replica, "webhook.store_failed")) == 1
    assert len(events(replica, "webhook.store_recovered")) == 1
    degraded = [e["task"] for e in events(replica, "runtime.degraded")]
    assert len(degraded) == len(set(degraded))
    assert {e["task"] for e in events(replica, "runtime.recovered")} == set(degraded)
    assert len(events(replica, "sqlite.checkpoint_failed")) <= 1
    # A reply that could not be recorded is the outage's, not the handler's: no traceback per try.
    assert events(replica, "handler.failed") == []
    assert events(replica, "error_handler.failed") == []
