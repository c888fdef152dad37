"""What only the SQLite backend does: group transactions, the expiry sweep, another writer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from qbot.storage import LeaseLostError, OutboxItem, SqliteStorage, StateWrite


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return count


async def test_sqlite_expired_dedupe_records_states_and_replies_are_swept(tmp_path: Path) -> None:
    path, clock = tmp_path / "qbot.db", Clock()
    async with SqliteStorage(str(path), clock=clock, outbox_retention=10) as s:
        # Dedupe records come from inbox_put, the one way to write them.
        for i in range(5):
            await s.inbox_put("r1", {"i": i}, dedupe_key=f"r1:m{i}", dedupe_ttl=30)
        await s.commit(states=[StateWrite("user:r1:u1", {"step": "x"}, 30)])
        await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1}, status="sent")])
        assert (rows(path, "dedupe"), rows(path, "state"), rows(path, "outbox")) == (5, 1, 1)
        clock.now += 61  # past every expiry and the sweep interval
        await s.inbox_put("r2", {"i": 9}, dedupe_key="r2:m9", dedupe_ttl=30)
        assert (rows(path, "dedupe"), rows(path, "state"), rows(path, "outbox")) == (1, 0, 0)


async def test_sqlite_an_op_that_fails_is_undone_alone_in_its_group(tmp_path: Path) -> None:
    async with SqliteStorage(str(tmp_path / "qbot.db")) as s:
        await s.inbox_put("r1", {"n": 1})
        [item] = (await s.inbox_claim("owner-a", lease_ttl=60)).items
        results = await asyncio.gather(
            s.inbox_put("r2", {"n": 2}),
            # Not the lease holder: refused, and its state write must not land.
            s.commit(owner="owner-b", ack=[item], states=[StateWrite("k", {"bad": 1})]),
            s.commit(states=[StateWrite("k2", {"good": 1})]),
            return_exceptions=True,
        )
        assert isinstance(results[1], LeaseLostError)
        assert results[0] is not None and results[2] is None
        assert await s.get_state("k") is None
        assert await s.get_state("k2") == {"good": 1}
        assert await s.inbox_size() == 2  # r1 not acked, r2 stored


async def test_sqlite_waits_for_another_processs_write_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qbot.db"
    async with SqliteStorage(str(path)) as s:
        await s.inbox_put("r1", {"n": 1})  # tables exist
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. `qbot handoffs end` in another process
        # A light op first (it would run at once on an idle connection), then a durable one.
        claim = asyncio.create_task(s.inbox_claim("w", lease_ttl=60))
        put = asyncio.create_task(s.inbox_put("r1", {"n": 2}))
        ticks = 0
        for _ in range(20):  # the event loop keeps running while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not put.done() and not claim.done()
        other.execute("COMMIT")
        other.close()
        assert (await asyncio.wait_for(put, 5)) is not None
        assert len((await asyncio.wait_for(claim, 5)).items) >= 1
        assert ticks == 20
        assert await s.inbox_size() == 2


@pytest.mark.parametrize("configured", ["full", "normal"])
async def test_sqlite_keeps_its_configured_synchronous_level_after_light_groups(
    tmp_path: Path, configured: str
) -> None:
    async with SqliteStorage(str(tmp_path / "qbot.db"), synchronous=configured) as s:
        await s.inbox_put("r1", {"n": 1})
        await s.inbox_claim("owner", lease_ttl=60)  # a claim commits without an fsync
        await s.lease_release("room:r1", "owner")
        # Read in a durable group: it runs at the configured level.
        level = await s._engine.write(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])
        assert level == {"full": 2, "normal": 1}[configured]


async def test_sqlite_a_reclaimed_room_cut_by_the_limit_hands_out_the_rest_next(
    tmp_path: Path,
) -> None:
    clock = Clock()
    async with SqliteStorage(str(tmp_path / "qbot.db"), clock=clock) as s:
        for n in range(3):
            await s.inbox_put("r1", {"n": n})
        assert len((await s.inbox_claim("dead", lease_ttl=10)).items) == 3
        clock.now += 11  # the dead worker's lease lapses with its items unacked
        first = (await s.inbox_claim("alive", lease_ttl=10, limit=2)).items
        rest = (await s.inbox_claim("alive", lease_ttl=10, limit=2)).items
        assert [i.payload["n"] for i in first] == [0, 1]
        assert [i.payload["n"] for i in rest] == [2]
        assert (await s.inbox_claim("alive", lease_ttl=10)).items == []


async def test_sqlite_checkpoints_the_wal_itself_off_the_event_loop(tmp_path: Path) -> None:
    # SQLite's automatic checkpoints are off (one could fsync inside a commit on the event
    # loop); the storage checkpoints after durable commits, so the WAL does not grow forever.
    path = tmp_path / "qbot.db"
    async with SqliteStorage(str(path)) as s:
        s._engine.checkpoint_every = 0.0
        for n in range(300):
            await s.commit(states=[StateWrite(f"k{n}", {"n": n, "pad": "x" * 500})])
        wal = os.path.getsize(f"{path}-wal")  # noqa: ASYNC240 - a test reading one size
        auto = await s._engine.read(
            lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
    assert auto == 0
    assert wal < 512 * 1024, wal  # 300 commits without a checkpoint leave ~4 MB


async def test_sqlite_page_cache_is_bounded_at_the_documented_size(tmp_path: Path) -> None:
    # docs/state.md: 1 MiB of page cache per storage, whatever the file grows to (SQLite's own
    # default is 2,000 KiB). The bound is what a served bot's resident memory counts on.
    async with SqliteStorage(str(tmp_path / "qbot.db")) as s:
        for start in range(0, 6000, 500):
            await s.commit(
                states=[
                    StateWrite(f"k{i}", {"text": "x" * 400}, None)
                    for i in range(start, start + 500)
                ]
            )
        size = await s._engine.read(lambda db: db.execute("PRAGMA cache_size").fetchone()[0])
        pages = await s._engine.read(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
    assert size == -1024  # negative: KiB
    assert pages * 4096 > 2 * 1024 * 1024  # a file bigger than the cache: the bound is what holds


async def test_sqlite_a_held_rooms_message_costs_one_statement_per_need(tmp_path: Path) -> None:
    """Stored and handed to the room's holder, read, its reply recorded sent, acked."""
    async with SqliteStorage(str(tmp_path / "qbot.db")) as s:
        await s.inbox_put("r1", {"n": 0}, dedupe_key="r1:m0", dedupe_ttl=600)
        [first] = (await s.inbox_claim("w", lease_ttl=60)).items
        await s.commit(owner="w", ack=[first])
        seen: list[str] = []
        db = s._engine._db
        assert db is not None
        db.set_trace_callback(seen.append)
        item, handed = await s.inbox_put_held(
            "r1", {"n": 1}, owner="w", lease_ttl=60, dedupe_key="r1:m1", dedupe_ttl=600
        )
        assert item is not None and handed
        await s.load_room("r1", ["user:r1:u1", "room:r1"], ["reply-1"])
        await s.commit(outbox=[OutboxItem("reply-1", "r1", {"m": 1}, status="sent")])
        await s.commit(owner="w", ack=[item])
        db.set_trace_callback(None)
    work = [sql for sql in seen if not sql.startswith(("BEGIN", "COMMIT", "PRAGMA"))]
    # dedupe, lease + hand-out check, insert; load_room; the reply's upsert; the ack under the lease
    assert len(work) == 6, "\n".join(work)
