"""The scheduled-jobs contract every backend passes: memory, SQLite and the real local Redis."""

from __future__ import annotations

import asyncio

import pytest
from test_storage_contract import Backend, backend

from qbot.errors import StorageError
from qbot.storage.schedule import Job

__all__ = ["backend"]


def job(id: str, room: str = "r1", name: str = "followup", due: float = 100.0, **kw: object) -> Job:
    return Job(id, room, name, due, kw.pop("data", {"n": 1}), {"from": {"email": "a@b"}}, **kw)  # type: ignore[arg-type]


async def test_schedule_put_get_list_round_trip_and_replace_by_name(backend: Backend) -> None:
    s = backend.storage
    assert await s.schedule_put(job("j1", data={"big": 2**70, "text": "halo é"})) is None
    got = await s.schedule_get("r1", "followup")
    assert got == job("j1", data={"big": 2**70, "text": "halo é"})
    assert await s.schedule_put(job("j2", due=50.0, cancel_on_reply=True)) == "j1"
    await s.schedule_put(job("j3", room="r1:odd", name="other", due=70.0))
    await s.schedule_put(job("j4", room="r2", due=60.0))
    assert [j.id for j in await s.schedule_list()] == ["j2", "j4", "j3"]
    assert [j.id for j in await s.schedule_list("r1")] == ["j2"]
    assert [j.id for j in await s.schedule_list("r1:odd")] == ["j3"]
    assert (await s.schedule_get("r1", "followup")).cancel_on_reply is True  # type: ignore[union-attr]
    assert await s.schedule_get("r1", "nothing") is None
    assert await s.schedule_next() == 50.0


async def test_schedule_take_gives_due_jobs_once_until_the_lease_lapses(backend: Backend) -> None:
    s = backend.storage
    await s.schedule_put(job("a", due=10.0))
    await s.schedule_put(job("b", room="r2", due=20.0))
    await s.schedule_put(job("c", room="r3", due=30.0))
    assert [j.id for j in await s.schedule_take(25.0, lease=0.2)] == ["a", "b"]
    assert await s.schedule_take(25.0, lease=0.2) == []  # leased
    assert await s.schedule_fired("r1", "followup", "a") is True
    await backend.advance(0.5)  # b's taker died: its lease lapses, a was fired
    assert [j.id for j in await s.schedule_take(25.0, lease=60)] == ["b"]
    assert (await s.schedule_get("r1", "followup")).fired is True  # type: ignore[union-attr]
    assert await s.schedule_next() == 20.0  # b, taken, not fired yet
    assert await s.schedule_take(100.0, limit=5) == [job("c", room="r3", due=30.0)]


async def test_schedule_two_replicas_taking_at_once_never_get_the_same_job(
    backend: Backend,
) -> None:
    s = backend.storage
    for i in range(40):
        await s.schedule_put(job(f"j{i}", room=f"room{i}", due=float(i)))
    peers = [s, await backend.peer(), await backend.peer()]
    taken = await asyncio.gather(*(p.schedule_take(1000.0, limit=7) for p in peers * 3))
    ids = [j.id for batch in taken for j in batch]
    assert sorted(ids) == sorted(f"j{i}" for i in range(40))


async def test_schedule_fired_and_done_only_touch_the_same_job(backend: Backend) -> None:
    s = backend.storage
    await s.schedule_put(job("old"))
    await s.schedule_put(job("new"))
    assert await s.schedule_fired("r1", "followup", "old") is False
    assert await s.schedule_done("r1", "followup", "old") is False
    assert (await s.schedule_get("r1", "followup")).id == "new"  # type: ignore[union-attr]
    assert await s.schedule_done("r1", "followup", "new") is True
    assert await s.schedule_list() == []
    assert await s.schedule_next() is None


async def test_schedule_cancel_by_name_all_or_only_cancel_on_reply(backend: Backend) -> None:
    s = backend.storage
    await s.schedule_put(job("a", name="a", cancel_on_reply=True))
    await s.schedule_put(job("b", name="b"))
    await s.schedule_put(job("c", name="c", cancel_on_reply=True))
    await s.schedule_put(job("d", room="r2", name="a", cancel_on_reply=True))
    assert await s.schedule_cancel("r1", on_reply=True) == ["a", "c"]
    assert await s.schedule_cancel("r1", "a") == []
    assert await s.schedule_cancel("r1", "b") == ["b"]
    assert [j.id for j in await s.schedule_list()] == ["d"]
    assert await s.schedule_cancel("r2") == ["a"]
    assert await s.schedule_list() == []


async def test_schedule_refuses_bad_arguments_naming_them(backend: Backend) -> None:
    s = backend.storage
    with pytest.raises(StorageError, match="job name"):
        await s.schedule_put(job("x", name="has:colon"))
    with pytest.raises(StorageError, match="due_at"):
        await s.schedule_put(job("x", due=float("nan")))
    with pytest.raises(StorageError, match="JSON"):
        await s.schedule_put(job("x", data={1, 2}))
    with pytest.raises(StorageError, match="room_id"):
        await s.schedule_list("")
    with pytest.raises(StorageError, match="limit"):
        await s.schedule_take(1.0, limit=0)
    assert await s.schedule_list() == []
