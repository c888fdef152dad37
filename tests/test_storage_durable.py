"""The durable backends keep what they accepted across a restart and a `kill -9`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from storage_probe import lease_owner

from qbot.storage import OutboxItem, RedisStorage, StateWrite, open_storage, room_lease_key


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qbot.db'}"
        return
    url = f"redis://127.0.0.1:6379/0?prefix=qbot-test-{uuid.uuid4().hex}:"
    yield url
    async with RedisStorage(url) as s:
        await s.drop()


async def test_storage_durable_everything_survives_closing_and_reopening(url: str) -> None:
    async with open_storage(url) as s:
        await s.inbox_put("r1", {"text": "hello"}, dedupe_key="r1:m1", dedupe_ttl=3600)
        await s.inbox_put("r1", {"text": "second"})
        first = (await s.inbox_claim("old-process", lease_ttl=0.5)).items  # the commit fits
        await s.commit(
            owner="old-process",
            ack=first[:1],
            states=[StateWrite("user:r1:u1", {"step": "ask_email"})],
            outbox=[OutboxItem("t1", "r1", {"m": 1}), OutboxItem("t2", "r1", {"m": 2})],
        )
        assert await s.outbox_mark("t1", "sent")
        await s.handoff_start("r9", "agent took over")
    await asyncio.sleep(1.0)  # the old process's room lease lapses
    async with open_storage(url) as s:
        assert await s.inbox_put("r1", {"text": "hello"}, dedupe_key="r1:m1") is None
        assert await s.get_state("user:r1:u1") == {"step": "ask_email"}
        assert [o.id for o in await s.outbox_pending()] == ["t2"]
        sent = await s.outbox_get("t1")
        assert sent is not None
        assert sent.status == "sent"
        assert [h.room_id for h in await s.handoff_list()] == ["r9"]
        assert [i.payload for i in (await s.inbox_claim("new-process", lease_ttl=60)).items] == [
            {"text": "second"}
        ]


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from qbot.storage import open_storage

    async def main(url):
        async with open_storage(url) as s:
            for i in range(5):
                await s.inbox_put("r1", {"i": i}, dedupe_key=f"r1:{i}")
                print("accepted", i, flush=True)
            items = (await s.inbox_claim("doomed", lease_ttl=0.5)).items
            await s.commit(owner="doomed", ack=items[:2])
            print("claimed", len(items), flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_storage_durable_a_killed_workers_accepted_items_are_processed_after_restart(
    url: str,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert proc.stdout is not None
        lines = [await asyncio.wait_for(proc.stdout.readline(), 30) for _ in range(6)]
        assert lines[-1] == b"claimed 5\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()
    async with open_storage(url) as s:
        got = []
        for _ in range(200):  # until the dead worker's lease lapses
            got = (await s.inbox_claim("successor", lease_ttl=60)).items
            if got:
                break
            await asyncio.sleep(0.05)
        assert [i.payload["i"] for i in got] == [2, 3, 4]
        assert await lease_owner(s, room_lease_key("r1")) == "successor"
        await s.commit(owner="successor", ack=got)
        assert await s.inbox_size() == 0
        # the accepted ones stay deduped: a re-delivered webhook is not queued again
        assert await s.inbox_put("r1", {"i": 0}, dedupe_key="r1:0") is None
