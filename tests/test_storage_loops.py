"""A storage outliving its event loop (a module's bot under a test suite, ``asyncio.run`` twice)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qbot.storage import MemoryStorage, SqliteStorage, Storage


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_storage_inbox_wait_wakes_on_put_in_the_next_event_loop(kind: str, tmp_path: Path) -> None:
    # The wake event was the first loop's: in the next, inbox_wait raised RuntimeError ("bound
    # to a different event loop") at once, and the runtime's claim loop backed off as degraded.
    def storage() -> Storage:
        return MemoryStorage() if kind == "memory" else SqliteStorage(str(tmp_path / "q.db"))

    async def wait_then_put(s: Storage) -> bool:
        await s.open()
        try:
            waiter = asyncio.ensure_future(s.inbox_wait(30))
            await asyncio.sleep(0.05)
            asleep = not waiter.done()
            await s.inbox_put("r1", {"n": 1})
            await asyncio.wait_for(waiter, 10)
            return asleep
        finally:
            await s.close()

    s = storage()
    assert asyncio.run(wait_then_put(s))
    assert asyncio.run(wait_then_put(s))
