"""What tests read straight from a backend, outside the storage interface (no method of it)."""

from __future__ import annotations

from typing import cast

from qbot.storage import MemoryStorage, RedisStorage, SqliteStorage, Storage


async def lease_owner(storage: Storage, key: str) -> str | None:
    """The live holder of lease ``key`` as the backend records it, or None when free or expired."""
    now = storage._clock()
    if isinstance(storage, MemoryStorage):
        return storage._holder(key, now)
    if isinstance(storage, SqliteStorage):
        sql = "SELECT owner FROM leases WHERE key = ? AND expires_at > ?"
        row = await storage._read(lambda db: db.execute(sql, (key, now)).fetchone())
        return None if row is None else str(row[0])
    if isinstance(storage, RedisStorage):
        return cast("str | None", await storage._redis.get(storage.prefix + "l:" + key))
    raise TypeError(f"no lease probe for {type(storage).__name__}")
