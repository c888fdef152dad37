"""The one contract every storage backend passes: memory, SQLite and the real local Redis.

Expiry runs on a controllable clock for memory and SQLite; Redis expires keys on its own clock,
so there ``advance`` sleeps (TTLs that must lapse are kept short, TTLs that must hold are long).
"""

from __future__ import annotations

import asyncio
import copy
import pickle
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from storage_probe import lease_owner

from qbot.errors import StorageError
from qbot.storage import (
    InboxItem,
    JSONText,
    LeaseLostError,
    MemoryStorage,
    OutboxItem,
    RedisStorage,
    SqliteStorage,
    StateWrite,
    Storage,
    room_lease_key,
    state_key,
)

LONG = 3600.0  # a TTL no test outlives
SHORT = 0.1  # a TTL a test outlives with advance(2 * backend.short), on a fake clock
REDIS_SHORT = 0.5  # Redis runs on real time: the steps inside the TTL must fit in it, loaded


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    storage: Storage
    clock: FakeClock | None
    make_peer: Callable[[], Awaitable[Storage]]
    peers: list[Storage] = field(default_factory=list)
    short: float = SHORT
    """A TTL a test outlives with ``advance(2 * short)``, after a few calls made inside it."""

    async def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    async def peer(self) -> Storage:
        """Another handle on the same data, as a second replica would have."""
        p = await self.make_peer()
        self.peers.append(p)
        return p


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        mem = MemoryStorage(clock=clock)

        async def same() -> Storage:
            return mem

        b = Backend("memory", mem, clock, same)
    elif request.param == "sqlite":
        path = str(tmp_path / "qbot.db")

        async def sqlite_peer() -> Storage:
            s = SqliteStorage(path, clock=clock)
            await s.open()
            return s

        b = Backend("sqlite", await sqlite_peer(), clock, sqlite_peer)
    else:
        url = f"redis://127.0.0.1:6379/0?prefix=qbot-test-{uuid.uuid4().hex}:"

        async def redis_peer() -> Storage:
            s = RedisStorage(url)
            await s.open()
            return s

        b = Backend("redis", await redis_peer(), None, redis_peer, short=REDIS_SHORT)
    yield b
    if isinstance(b.storage, RedisStorage):
        await b.storage.drop()
    for s in {id(s): s for s in [b.storage, *b.peers]}.values():
        await s.close()


async def put(s: Storage, room: str, n: int, tag: str = "m") -> list[InboxItem]:
    items = []
    for i in range(n):
        item = await s.inbox_put(room, {"text": f"{tag}{i}", "room": room})
        assert item is not None
        items.append(item)
    return items


def texts(items: list[InboxItem]) -> list[str]:
    return [i.payload["text"] for i in items]


# -- dedupe ------------------------------------------------------------------------------------


async def claim_once(s: Storage, key: str, ttl: float) -> bool:
    """Whether ``key`` was new: an inbox item stored under it (the one way to dedupe)."""
    return await s.inbox_put("r", {"key": key}, dedupe_key=key, dedupe_ttl=ttl) is not None


async def test_storage_dedupe_is_true_only_the_first_time(backend: Backend) -> None:
    s = backend.storage
    assert await claim_once(s, "room1:msg1", LONG) is True
    assert await claim_once(s, "room1:msg1", LONG) is False
    assert await claim_once(s, "room1:msg2", LONG) is True


async def test_storage_dedupe_is_new_again_after_its_ttl(backend: Backend) -> None:
    s = backend.storage
    assert await claim_once(s, "short", backend.short)
    assert await claim_once(s, "long", LONG)
    await backend.advance(2 * backend.short)
    assert await claim_once(s, "short", LONG) is True
    assert await claim_once(s, "long", LONG) is False


async def test_storage_dedupe_has_one_winner_among_concurrent_replicas(
    backend: Backend,
) -> None:
    stores = [backend.storage, await backend.peer(), await backend.peer()]
    results = await asyncio.gather(*(claim_once(stores[i % 3], "dup", LONG) for i in range(60)))
    assert results.count(True) == 1


# -- state -------------------------------------------------------------------------------------


async def test_storage_json_reads_back_equal_and_refuses_what_would_not(
    backend: Backend,
) -> None:
    s = backend.storage
    value = {"big": 2**70, "neg": -(2**65), "f": 0.1, "t": "Ánh 🙂", "n": None, "l": [1, True]}
    await s.set_state("k", value)
    assert await s.get_state("k") == value
    await s.inbox_put("r", {"id": 2**64, "pair": (1, 2)})
    [item] = (await s.inbox_claim("w", lease_ttl=LONG)).items
    assert item.payload == {"id": 2**64, "pair": [1, 2]}
    for bad in (float("inf"), datetime.now(UTC), uuid.uuid4(), {1, 2}):
        with pytest.raises(StorageError, match="state 'x' must be JSON-serialisable"):
            await s.set_state("x", {"v": bad})
    assert await s.get_state("x") is None


async def test_storage_state_round_trips_json_and_returns_copies(backend: Backend) -> None:
    s = backend.storage
    key = state_key("r1", "u1")
    assert await s.get_state(key) is None
    assert await s.get_state(key, {"step": None}) == {"step": None}
    value = {"step": "ask_email", "data": {"name": "Ánh 🙂", "n": [1, 2.5, True, None]}}
    await s.set_state(key, value)
    got = await s.get_state(key)
    assert got == value
    got["step"] = "changed"
    assert (await s.get_state(key))["step"] == "ask_email"
    await s.set_state(key, [])
    assert await s.get_state(key) == []
    assert await s.get_state(state_key("r1")) is None  # per-room state is a different key
    await s.delete_state(key)
    assert await s.get_state(key, "gone") == "gone"


async def test_storage_state_expires_after_its_ttl(backend: Backend) -> None:
    s = backend.storage
    await s.set_state("short", {"a": 1}, ttl=backend.short)
    await s.set_state("long", {"b": 2}, ttl=LONG)
    await s.set_state("forever", {"c": 3})
    await backend.advance(2 * backend.short)
    assert await s.get_state("short") is None
    assert await s.get_state("long") == {"b": 2}
    assert await s.get_state("forever") == {"c": 3}


async def test_storage_commit_with_an_unstorable_value_applies_nothing(backend: Backend) -> None:
    s = backend.storage
    with pytest.raises(StorageError, match="'bad'"):
        await s.commit(states=[StateWrite("good", 1), StateWrite("bad", {1, 2})])
    assert await s.get_state("good") is None


async def test_storage_commit_applies_states_in_order(backend: Backend) -> None:
    s = backend.storage
    await s.commit(
        states=[StateWrite("k", 1), StateWrite("k", 2), StateWrite("gone", 9)],
    )
    await s.commit(states=[StateWrite("gone", delete=True), StateWrite("k", 3, ttl=LONG)])
    assert await s.get_state("k") == 3
    assert await s.get_state("gone") is None


# -- leases ------------------------------------------------------------------------------------


async def test_storage_lease_is_held_by_one_owner_until_released(backend: Backend) -> None:
    s = backend.storage
    assert await s.lease_acquire("room:1", "a", LONG)
    assert await lease_owner(s, "room:1") == "a"
    assert not await s.lease_acquire("room:1", "b", LONG)
    assert await s.lease_acquire("room:1", "a", LONG)  # re-entrant for its owner
    assert not await s.lease_renew("room:1", "b", LONG)
    assert not await s.lease_release("room:1", "b")
    assert await lease_owner(s, "room:1") == "a"
    assert await s.lease_renew("room:1", "a", LONG)
    assert await s.lease_release("room:1", "a")
    assert await lease_owner(s, "room:1") is None
    assert not await s.lease_release("room:1", "a")
    assert await s.lease_acquire("room:1", "b", LONG)


async def test_storage_lease_expires_and_its_old_owner_cannot_renew(backend: Backend) -> None:
    s = backend.storage
    assert await s.lease_acquire("k", "a", backend.short)
    assert await s.lease_acquire("other", "a", LONG)
    await backend.advance(2 * backend.short)
    assert await lease_owner(s, "k") is None
    assert not await s.lease_renew("k", "a", LONG)
    assert await s.lease_acquire("k", "b", LONG)
    assert not await s.lease_release("k", "a")
    assert await lease_owner(s, "k") == "b"
    assert await lease_owner(s, "other") == "a"


async def test_storage_lease_has_one_winner_among_concurrent_owners(backend: Backend) -> None:
    stores = [backend.storage, await backend.peer()]
    results = await asyncio.gather(
        *(stores[i % 2].lease_acquire("hot", f"owner{i}", LONG) for i in range(30))
    )
    assert results.count(True) == 1
    assert await lease_owner(backend.storage, "hot") == f"owner{results.index(True)}"


# -- inbox -------------------------------------------------------------------------------------


async def test_storage_inbox_hands_out_a_room_in_arrival_order(backend: Backend) -> None:
    s = backend.storage
    stored = await put(s, "r1", 3)
    assert [i.payload for i in stored] == [{"text": f"m{i}", "room": "r1"} for i in range(3)]
    assert await s.inbox_size() == 3
    got = (await s.inbox_claim("w1", lease_ttl=LONG)).items
    assert [(i.id, i.room_id, i.payload) for i in got] == [
        (i.id, i.room_id, i.payload) for i in stored
    ]
    assert got[0].received_at == stored[0].received_at
    assert await lease_owner(s, room_lease_key("r1")) == "w1"
    assert (await s.inbox_claim("w1", lease_ttl=LONG)).items == []  # nothing new for its holder


async def test_storage_inbox_put_dedupes_by_key_and_stores_nothing_twice(
    backend: Backend,
) -> None:
    s = backend.storage
    assert await s.inbox_put("r1", {"n": 1}, dedupe_key="r1:m1", dedupe_ttl=LONG) is not None
    assert await s.inbox_put("r1", {"n": 1}, dedupe_key="r1:m1", dedupe_ttl=LONG) is None
    assert await s.inbox_put("r2", {"n": 1}, dedupe_key="r1:m1", dedupe_ttl=LONG) is None
    assert await s.inbox_put("r1", {"n": 2}, dedupe_key="r1:m2", dedupe_ttl=LONG) is not None
    assert await s.inbox_put("r1", {"n": 3}) is not None  # no key: never deduped
    assert await s.inbox_size() == 3


async def test_storage_inbox_skips_rooms_another_owner_holds(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 2)
    a = (await s.inbox_claim("a", lease_ttl=LONG)).items
    assert texts(a) == ["m0", "m1"]
    await put(s, "r2", 1, tag="x")
    await put(s, "r1", 1, tag="late")
    b = (await s.inbox_claim("b", lease_ttl=LONG)).items
    assert [(i.room_id, i.payload["text"]) for i in b] == [("r2", "x0")]
    a2 = (await s.inbox_claim("a", lease_ttl=LONG)).items
    assert [(i.room_id, i.payload["text"]) for i in a2] == [("r1", "late0")]


async def test_storage_inbox_claim_respects_limit_and_continues_in_order(
    backend: Backend,
) -> None:
    s = backend.storage
    await put(s, "r1", 5)
    assert texts((await s.inbox_claim("a", lease_ttl=LONG, limit=2)).items) == ["m0", "m1"]
    assert texts((await s.inbox_claim("a", lease_ttl=LONG, limit=2)).items) == ["m2", "m3"]
    assert texts((await s.inbox_claim("a", lease_ttl=LONG, limit=2)).items) == ["m4"]


async def test_storage_inbox_acked_items_are_gone(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 3)
    got = (await s.inbox_claim("w", lease_ttl=LONG)).items
    await s.commit(owner="w", ack=got[:2])
    await s.commit(owner="w", ack=got[:1])  # acking twice is harmless
    assert await s.inbox_size() == 1
    assert await s.lease_release(room_lease_key("r1"), "w")
    again = (await s.inbox_claim("v", lease_ttl=LONG)).items
    assert texts(again) == ["m2"]
    await s.commit(owner="v", ack=again)
    assert await s.inbox_size() == 0
    assert (await s.inbox_claim("v", lease_ttl=LONG)).items == []


async def test_storage_inbox_reclaims_a_dead_workers_items_after_its_lease(
    backend: Backend,
) -> None:
    s, other = backend.storage, await backend.peer()
    await put(s, "r1", 3)
    dead = (await s.inbox_claim("dead", lease_ttl=backend.short)).items
    assert texts(dead) == ["m0", "m1", "m2"]
    await s.commit(owner="dead", ack=dead[:1])
    await put(s, "r1", 1, tag="after")
    assert (await other.inbox_claim("alive", lease_ttl=LONG)).items == []  # still leased
    await backend.advance(2 * backend.short)
    alive = (await other.inbox_claim("alive", lease_ttl=LONG)).items
    assert texts(alive) == ["m1", "m2", "after0"]
    with pytest.raises(LeaseLostError, match="'dead'"):
        await s.commit(owner="dead", ack=dead[1:2], states=[StateWrite("k", "stale")])
    assert await s.get_state("k") is None
    await other.commit(owner="alive", ack=alive, states=[StateWrite("k", "fresh")])
    assert await s.get_state("k") == "fresh"
    assert await s.inbox_size() == 0


async def test_storage_commit_after_lease_lapse_applies_nothing(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 1)
    got = (await s.inbox_claim("w", lease_ttl=backend.short)).items
    await backend.advance(2 * backend.short)
    reply = OutboxItem("reply-1", "r1", {"message": "hi"})
    with pytest.raises(LeaseLostError):
        await s.commit(owner="w", ack=got, states=[StateWrite("k", 1)], outbox=[reply])
    assert await s.get_state("k") is None
    assert await s.outbox_get("reply-1") is None
    assert await s.inbox_size() == 1
    # Its owner gets the room back with every unacked item, once the lease is free again.
    assert texts((await s.inbox_claim("w", lease_ttl=LONG)).items) == ["m0"]


async def test_storage_commit_acking_an_acked_item_still_needs_the_lease(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 2)
    first, second = (await s.inbox_claim("w", lease_ttl=SHORT)).items
    await s.commit(owner="w", ack=[first])
    await backend.advance(2 * SHORT)
    # Nothing left to delete for ``first``: the lease is what refuses the commit, whole.
    with pytest.raises(LeaseLostError):
        await s.commit(owner="w", ack=[first, second], states=[StateWrite("k", 1)])
    assert await s.get_state("k") is None
    assert await s.inbox_size() == 1


async def test_storage_inbox_concurrent_claimers_split_rooms_without_overlap(
    backend: Backend,
) -> None:
    s = backend.storage
    for r in range(8):
        await put(s, f"r{r}", 4)
    stores = [s, await backend.peer()]
    claims = [
        claim.items
        for claim in await asyncio.gather(
            *(stores[w % 2].inbox_claim(f"w{w}", lease_ttl=LONG, limit=8) for w in range(6))
        )
    ]
    seen: dict[str, set[str]] = {}
    for w, items in enumerate(claims):
        for item in items:
            seen.setdefault(item.room_id, set()).add(f"w{w}")
        for room in {i.room_id for i in items}:
            assert texts([i for i in items if i.room_id == room]) == ["m0", "m1", "m2", "m3"]
    assert all(len(owners) == 1 for owners in seen.values())
    assert sum(len(items) for items in claims) == 32


async def test_storage_inbox_workers_process_each_room_in_order_exactly_once(
    backend: Backend,
) -> None:
    s = backend.storage
    stores = [s, await backend.peer(), await backend.peer()]
    rooms, per_room = 6, 10
    processed: dict[str, list[int]] = {f"r{r}": [] for r in range(rooms)}
    busy: dict[str, str] = {}  # room -> the worker currently processing it

    async def producer() -> None:
        for i in range(per_room):
            for r in range(rooms):
                await s.inbox_put(f"r{r}", {"i": i}, dedupe_key=f"r{r}:{i}", dedupe_ttl=LONG)
                # a duplicate delivery of the same webhook goes to another replica
                await stores[1].inbox_put(
                    f"r{r}", {"i": i}, dedupe_key=f"r{r}:{i}", dedupe_ttl=LONG
                )
            await asyncio.sleep(0)

    async def worker(n: int) -> None:
        store, owner = stores[n % 3], f"w{n}"
        while sum(map(len, processed.values())) < rooms * per_room:
            items = (await store.inbox_claim(owner, lease_ttl=LONG, limit=5)).items
            for item in items:
                assert busy.setdefault(item.room_id, owner) == owner
                processed[item.room_id].append(item.payload["i"])
                await asyncio.sleep(0)
                await store.commit(owner=owner, ack=[item])
            for room in {i.room_id for i in items}:
                del busy[room]
                await store.lease_release(room_lease_key(room), owner)
            if not items:
                await store.inbox_wait(0.01)

    await asyncio.wait_for(asyncio.gather(producer(), *(worker(n) for n in range(4))), 30)
    assert processed == {f"r{r}": list(range(per_room)) for r in range(rooms)}
    assert await s.inbox_size() == 0


async def test_storage_inbox_wait_wakes_on_put_and_times_out_without(backend: Backend) -> None:
    s = backend.storage
    await s.inbox_wait(0.01)  # nothing arrived: returns after the timeout
    waiter = asyncio.ensure_future(s.inbox_wait(30))
    await asyncio.sleep(0.05)
    await s.inbox_put("r1", {"n": 1})
    await asyncio.wait_for(waiter, 10)
    assert waiter.done()


# -- outbox ------------------------------------------------------------------------------------


async def test_storage_outbox_lists_pending_replies_in_queue_order(backend: Backend) -> None:
    s = backend.storage
    await s.commit(
        outbox=[OutboxItem("t1", "r1", {"message": "one"}), OutboxItem("t2", "r2", {"n": 2})]
    )
    await s.commit(outbox=[OutboxItem("t3", "r1", {"message": "three"})])
    pending = await s.outbox_pending()
    assert [(o.id, o.room_id, o.status) for o in pending] == [
        ("t1", "r1", "pending"),
        ("t2", "r2", "pending"),
        ("t3", "r1", "pending"),
    ]
    assert pending[0].payload == {"message": "one"}
    assert [o.id for o in await s.outbox_pending(room_id="r1")] == ["t1", "t3"]
    assert [o.id for o in await s.outbox_pending(limit=1)] == ["t1"]


async def test_storage_outbox_reply_is_never_pending_again_once_marked(backend: Backend) -> None:
    s = backend.storage
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1}), OutboxItem("t2", "r1", {"m": 2})])
    assert await s.outbox_mark("t1", "sent") is True
    assert await s.outbox_mark("t1", "sent") is False
    assert await s.outbox_mark("t1", "failed") is False
    assert await s.outbox_mark("t2", "failed") is True
    assert await s.outbox_mark("nope", "sent") is False
    # the same deterministic id queued again (a replayed handler) is not sent again
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": "again"})])
    assert await s.outbox_pending() == []
    sent = await s.outbox_get("t1")
    assert sent is not None
    assert (sent.status, sent.payload) == ("sent", {"m": 1})
    failed = await s.outbox_get("t2")
    assert failed is not None
    assert failed.status == "failed"
    assert await s.outbox_get("nope") is None


async def test_storage_outbox_queueing_a_pending_id_twice_keeps_one(backend: Backend) -> None:
    s = backend.storage
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1})])
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1})])
    assert [o.id for o in await s.outbox_pending()] == ["t1"]


async def test_storage_outbox_concurrent_marks_have_one_winner(backend: Backend) -> None:
    s, other = backend.storage, await backend.peer()
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1})])
    results = await asyncio.gather(
        *((s if i % 2 else other).outbox_mark("t1", "sent") for i in range(20))
    )
    assert results.count(True) == 1


async def test_storage_commit_saves_state_replies_and_ack_together(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 1)
    item = (await s.inbox_claim("w", lease_ttl=LONG)).items[0]
    await s.commit(
        owner="w",
        ack=[item],
        states=[StateWrite(state_key("r1", "u"), {"step": "ask_email"})],
        outbox=[OutboxItem("r1-m0-0", "r1", {"message": "Your email?"})],
    )
    assert await s.inbox_size() == 0
    assert await s.get_state(state_key("r1", "u")) == {"step": "ask_email"}
    assert [o.payload for o in await s.outbox_pending(room_id="r1")] == [{"message": "Your email?"}]


# -- handoff -----------------------------------------------------------------------------------


async def test_storage_handoff_starts_lists_and_ends(backend: Backend) -> None:
    s = backend.storage
    assert await s.handoff_get("r1") is None
    h1 = await s.handoff_start("r1", "customer asked for a human")
    await backend.advance(0.01)
    await s.handoff_start("r2", "refund over limit", ttl=LONG)
    got = await s.handoff_get("r1")
    assert got == h1
    assert got is not None
    assert got.expires_at is None
    listed = await s.handoff_list()
    assert [(h.room_id, h.reason) for h in listed] == [
        ("r1", "customer asked for a human"),
        ("r2", "refund over limit"),
    ]
    assert listed[1].expires_at is not None
    assert listed[1].expires_at > listed[1].started_at
    assert await s.handoff_end("r1") is True
    assert await s.handoff_end("r1") is False
    assert [h.room_id for h in await s.handoff_list()] == ["r2"]


async def test_storage_handoff_expires_after_its_ttl(backend: Backend) -> None:
    s = backend.storage
    await s.handoff_start("r1", "short", ttl=backend.short)
    await s.handoff_start("r2", "long", ttl=LONG)
    await backend.advance(2 * backend.short)
    assert await s.handoff_get("r1") is None
    assert await s.handoff_end("r1") is False
    assert [h.room_id for h in await s.handoff_list()] == ["r2"]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.inbox_put("r", {}, dedupe_ttl=0), "dedupe ttl must be > 0 seconds, got 0"),
        (lambda s: s.inbox_put("r", {}, dedupe_ttl=float("nan")), "dedupe ttl must be a number"),
        (lambda s: s.inbox_put("r", {}, dedupe_key=""), "dedupe key must be a non-empty string"),
        (lambda s: s.inbox_put("", {}), "room_id must be a non-empty string, got ''"),
        (lambda s: s.lease_acquire("k", "", 5), "lease owner must be a non-empty string"),
        (lambda s: s.lease_acquire("", "a", 5), "lease key must be a non-empty string"),
        (lambda s: s.lease_renew("", "a", 5), "lease key must be a non-empty string, got ''"),
        (lambda s: s.lease_renew("k", "", 5), "lease owner must be a non-empty string, got ''"),
        (lambda s: s.lease_renew("k", "a", 0), "lease ttl must be > 0 seconds, got 0"),
        (lambda s: s.lease_release("", "a"), "lease key must be a non-empty string, got ''"),
        (lambda s: s.lease_release("k", None), "lease owner must be a non-empty string"),
        (lambda s: s.inbox_claim("", lease_ttl=5), "owner must be a non-empty string"),
        (lambda s: s.inbox_wait(-1), "inbox_wait seconds must be > 0 seconds"),
        (lambda s: s.get_state(""), "state key must be a non-empty string"),
        (lambda s: s.outbox_get(""), "outbox id must be a non-empty string"),
        (lambda s: s.outbox_mark("", "sent"), "outbox id must be a non-empty string"),
        (lambda s: s.outbox_pending(room_id=""), "room_id must be a non-empty string"),
        (lambda s: s.handoff_get(""), "room_id must be a non-empty string"),
        (lambda s: s.handoff_end(""), "room_id must be a non-empty string"),
        (lambda s: s.handoff_start("r", None), "handoff reason must be a string"),
        (lambda s: s.load_room("r", [""]), "state key must be a non-empty string"),
        (lambda s: s.set_state("k", float("nan")), "state 'k' must be JSON-serialisable"),
        (lambda s: s.lease_acquire("k", "a", -1), "lease ttl must be > 0 seconds, got -1"),
        (lambda s: s.inbox_claim("a", lease_ttl=5, limit=0), "limit must be an integer >= 1"),
        (lambda s: s.inbox_put("r", object()), "inbox payload must be JSON-serialisable"),
        (
            lambda s: s.inbox_put_held("r", {}, owner="", lease_ttl=5),
            "owner must be a non-empty string",
        ),
        (
            lambda s: s.inbox_put_held("r", {}, owner="a", lease_ttl=0),
            "lease_ttl must be > 0",
        ),
        (
            lambda s: s.inbox_put_held("", {}, owner="a", lease_ttl=5),
            "room_id must be a non-empty string",
        ),
        (lambda s: s.set_state("k", 1, ttl=0), "ttl of state 'k' must be > 0"),
        (lambda s: s.outbox_mark("t", "done"), "'sent' or 'failed', got 'done'"),
        (lambda s: s.handoff_start("r", "x", ttl=0), "handoff ttl must be > 0"),
        (
            lambda s: s.commit(ack=[InboxItem("1", "r", {}, 0.0)]),
            "commit\\(ack=...\\) needs the owner",
        ),
    ],
)
async def test_storage_rejects_bad_arguments_with_a_clear_message(
    backend: Backend, call: Callable[[Storage], Awaitable[Any]], message: str
) -> None:
    with pytest.raises(StorageError, match=message):
        await call(backend.storage)


# -- one round trip reads, done replies, concurrent commits ------------------------------------


async def test_storage_load_room_reads_handoff_states_and_replies_at_once(
    backend: Backend,
) -> None:
    s = backend.storage
    await s.commit(
        states=[StateWrite("user:r1:u", {"step": "ask"}), StateWrite("room:r1", [1, 2])],
        outbox=[OutboxItem("t1", "r1", {"m": 1})],
    )
    await s.outbox_mark("t1", "sent")
    assert await s.load_room("r1", ["user:r1:u", "room:r1", "room:r9"], ["t1", "t9"]) == (
        None,
        [{"step": "ask"}, [1, 2], None],
        [await s.outbox_get("t1"), None],
    )
    await s.handoff_start("r1", "angry customer")
    handoff, states, replies = await s.load_room("r1", [])
    assert handoff is not None
    assert (handoff.room_id, handoff.reason) == ("r1", "angry customer")
    assert (states, replies) == ([], [])


async def test_storage_outbox_pending_of_a_room_lists_only_its_unmarked_replies(
    backend: Backend,
) -> None:
    s = backend.storage
    assert await s.outbox_pending(room_id="r1", limit=1) == []
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1}), OutboxItem("t2", "r2", {"m": 2})])
    assert [r.id for r in await s.outbox_pending(room_id="r1")] == ["t1"]
    assert [r.id for r in await s.outbox_pending(room_id="r2")] == ["t2"]
    assert await s.outbox_pending(room_id="r3") == []
    await s.outbox_mark("t1", "sent")
    assert await s.outbox_pending(room_id="r1") == []
    assert [r.id for r in await s.outbox_pending(room_id="r2")] == ["t2"]


async def test_storage_claim_tells_which_rooms_have_replies_waiting(backend: Backend) -> None:
    s = backend.storage
    await put(s, "r1", 1)
    await put(s, "r2", 1)
    await put(s, "r3", 1)
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1}), OutboxItem("t3", "r3", {"m": 3})])
    await s.outbox_mark("t3", "sent")
    claim = await s.inbox_claim("w1", lease_ttl=LONG)
    assert {i.room_id for i in claim.items} == {"r1", "r2", "r3"}
    assert claim.replies_waiting == {"r1"}
    # A room held and given nothing new is not in the next claim, waiting or not.
    await s.commit(outbox=[OutboxItem("t2", "r2", {"m": 2})])
    await put(s, "r2", 1, tag="late")
    again = await s.inbox_claim("w1", lease_ttl=LONG)
    assert (texts(again.items), again.replies_waiting) == (["late0"], {"r2"})


async def test_storage_claim_tells_which_rooms_are_redelivered(backend: Backend) -> None:
    s, other = backend.storage, await backend.peer()
    await put(s, "r1", 2)
    first = await s.inbox_claim("dead", lease_ttl=backend.short)
    assert (texts(first.items), first.redelivered) == (["m0", "m1"], frozenset())
    await s.commit(owner="dead", ack=first.items[:1])
    await put(s, "r2", 1)  # never handed out
    await backend.advance(2 * backend.short)
    again = await other.inbox_claim("alive", lease_ttl=LONG)
    assert sorted(texts(again.items)) == ["m0", "m1"]  # r1's m1 and r2's m0
    assert again.redelivered == {"r1"}
    await put(s, "r1", 1, tag="new")  # what the holder gets next was not handed out before
    assert (await other.inbox_claim("alive", lease_ttl=LONG)).redelivered == frozenset()


async def test_storage_load_room_drops_expired_states(backend: Backend) -> None:
    s = backend.storage
    await s.commit(
        states=[StateWrite("room:r1", {"a": 1}, ttl=backend.short), StateWrite("room:r2", 2)]
    )
    assert (await s.load_room("r1", ["room:r1", "room:r2"]))[1] == [{"a": 1}, 2]
    await backend.advance(2 * backend.short)
    assert (await s.load_room("r1", ["room:r1", "room:r2"]))[1] == [None, 2]


async def test_storage_commit_records_a_reply_already_sent_and_never_lists_it(
    backend: Backend,
) -> None:
    s = backend.storage
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1}, status="sent")])
    assert await s.outbox_pending() == []
    sent = await s.outbox_get("t1")
    assert sent is not None
    assert (sent.status, sent.payload) == ("sent", {"m": 1})
    # queued again as pending (a replayed handler): still sent, never listed, never marked
    await s.commit(outbox=[OutboxItem("t1", "r1", {"m": 1})])
    assert await s.outbox_pending() == []
    assert await s.outbox_mark("t1", "failed") is False
    # a pending record is marked by a done record of the same id, exactly once
    await s.commit(outbox=[OutboxItem("t2", "r1", {"m": 2})])
    await s.commit(outbox=[OutboxItem("t2", "r1", {"m": 2}, status="failed")])
    await s.commit(outbox=[OutboxItem("t2", "r1", {"m": 2}, status="sent")])
    failed = await s.outbox_get("t2")
    assert failed is not None
    assert failed.status == "failed"
    assert await s.outbox_pending(room_id="r1") == []
    with pytest.raises(StorageError, match="'pending', 'sent' or 'failed', got 'lost'"):
        await s.commit(outbox=[OutboxItem("t3", "r1", {}, status="lost")])  # type: ignore[arg-type]


async def test_storage_concurrent_commits_a_refused_one_leaves_the_others_applied(
    backend: Backend,
) -> None:
    s = backend.storage
    for room in ("r1", "r2", "r3"):
        await put(s, room, 1)
    mine = (await s.inbox_claim("w", lease_ttl=LONG)).items
    assert sorted(i.room_id for i in mine) == ["r1", "r2", "r3"]
    assert await s.lease_release(room_lease_key("r2"), "w")
    assert await s.lease_acquire(room_lease_key("r2"), "thief", LONG)
    results = await asyncio.gather(
        *(
            s.commit(owner="w", ack=[item], states=[StateWrite(f"k:{item.room_id}", 1)])
            for item in mine
        ),
        s.inbox_put("r4", {"text": "new"}),
        return_exceptions=True,
    )
    by_room = {item.room_id: r for item, r in zip(mine, results, strict=False)}
    assert isinstance(by_room["r2"], LeaseLostError)
    assert by_room["r1"] is None and by_room["r3"] is None
    assert isinstance(results[-1], InboxItem)
    assert [await s.get_state(f"k:{r}") for r in ("r1", "r2", "r3")] == [1, None, 1]
    assert await s.inbox_size() == 2  # r2's item (its commit was refused) and r4's


async def test_storage_inbox_items_hold_copies_decoded_once(backend: Backend) -> None:
    s = backend.storage
    body = {"text": "héllo", "n": [1, 2]}
    put_item = await s.inbox_put("r1", body, dedupe_key="k1")
    assert put_item is not None
    body["n"].append(3)  # the caller's object is not what was stored
    (claimed,) = (await s.inbox_claim("w1", lease_ttl=LONG)).items
    assert claimed.payload == {"text": "héllo", "n": [1, 2]}
    assert claimed.payload is claimed.payload  # decoded once
    assert claimed == InboxItem(
        claimed.id, "r1", {"text": "héllo", "n": [1, 2]}, claimed.received_at
    )
    assert put_item.payload == claimed.payload
    assert put_item.payload is not claimed.payload
    assert "héllo" in repr(claimed)
    with pytest.raises(AttributeError):
        claimed.room_id = "r2"  # type: ignore[misc]


def test_inbox_item_built_from_stored_text_decodes_on_access() -> None:
    item = InboxItem.stored("7", "r1", '{"a":1}', 5.0)
    assert (item.id, item.room_id, item.received_at) == ("7", "r1", 5.0)
    assert item.payload == {"a": 1}
    assert item == InboxItem("7", "r1", {"a": 1}, 5.0)
    assert item != InboxItem("7", "r1", {"a": 2}, 5.0)
    assert hash(item) == hash(InboxItem("7", "r1", {"a": 1}, 5.0))
    assert copy.deepcopy(item) == item
    assert pickle.loads(pickle.dumps(item)) == item


async def test_storage_inbox_stores_json_text_as_given(backend: Backend) -> None:
    s = backend.storage
    item = await s.inbox_put("r1", JSONText('{"text": "h\\u00e9llo", "n": [1, 2]}'))
    assert item is not None
    (claimed,) = (await s.inbox_claim("w1", lease_ttl=LONG)).items
    assert claimed.payload == {"text": "héllo", "n": [1, 2]}
    assert item.payload == claimed.payload


async def test_storage_inbox_put_held_hands_the_item_to_the_rooms_holder(
    backend: Backend,
) -> None:
    s = backend.storage
    # Nobody holds the room: stored for a claim, as inbox_put stores it.
    first, handed = await s.inbox_put_held("r1", {"text": "m0"}, owner="w", lease_ttl=LONG)
    assert first is not None and not handed
    assert texts((await s.inbox_claim("w", lease_ttl=LONG)).items) == ["m0"]
    # The holder, with nothing of the room waiting: handed at once, not claimed again.
    second, handed = await s.inbox_put_held("r1", {"text": "m1"}, owner="w", lease_ttl=LONG)
    assert second is not None and handed
    assert texts((await s.inbox_claim("w", lease_ttl=LONG)).items) == []
    # Another owner's room: never handed to a non-holder.
    third, handed = await s.inbox_put_held("r1", {"text": "m2"}, owner="x", lease_ttl=LONG)
    assert third is not None and not handed
    assert (await s.inbox_claim("x", lease_ttl=LONG)).items == []
    # Something of the room waits to be handed out: the new item queues behind it.
    fourth, handed = await s.inbox_put_held("r1", {"text": "m3"}, owner="w", lease_ttl=LONG)
    assert fourth is not None and not handed
    assert texts((await s.inbox_claim("w", lease_ttl=LONG)).items) == ["m2", "m3"]
    # Deduped like inbox_put.
    key = {"dedupe_key": "r1:k", "dedupe_ttl": LONG}
    assert (await s.inbox_put_held("r1", {"n": 1}, owner="w", lease_ttl=LONG, **key))[0]
    assert await s.inbox_put_held("r1", {"n": 1}, owner="w", lease_ttl=LONG, **key) == (None, False)
    await s.commit(owner="w", ack=[first, second, third, fourth])
    assert await s.inbox_size() == 1


async def test_storage_inbox_put_held_extends_the_lease_and_a_new_holder_gets_the_item(
    backend: Backend,
) -> None:
    s, other = backend.storage, await backend.peer()
    await put(s, "r1", 1)
    assert texts((await s.inbox_claim("dead", lease_ttl=backend.short)).items) == ["m0"]
    item, handed = await s.inbox_put_held(
        "r1", {"text": "m1"}, owner="dead", lease_ttl=backend.short
    )
    assert item is not None and handed
    await backend.advance(2 * backend.short)  # the holder died: its lease lapses, items come again
    claim = await other.inbox_claim("alive", lease_ttl=LONG)
    assert texts(claim.items) == ["m0", "m1"]
    assert claim.redelivered == {"r1"}
    # A lapsed holder is not handed anything.
    late, handed = await s.inbox_put_held(
        "r1", {"text": "m2"}, owner="dead", lease_ttl=backend.short
    )
    assert late is not None and not handed
