"""The keys qbot stores things under, built here and nowhere else.

Python callers use the functions; the SQL and the Lua of the backends get the prefixes as
parameters (never as literals of their own), so a key means the same on every backend.

```
state of (room, user)   user:<room_id>:<user_id>     state_key(room_id, user_id)
state of a room         room:<room_id>               state_key(room_id)
room lease              room:<room_id>               room_lease_key(room_id)
```
"""

from __future__ import annotations

__all__ = ["ROOM_LEASE_PREFIX", "room_lease_key", "state_key"]

# Plain strings (no NewType: its call costs on every message); any non-empty string is a valid
# key for the storage, and these are qbot's own.

ROOM_LEASE_PREFIX = "room:"
"""What a room lease key is made of: this prefix and the room id (given as such to SQL and Lua)."""


def state_key(room_id: str, user_id: str | None = None) -> str:
    """The state key of a conversation: per (room, user), or per room when ``user_id`` is None."""
    return f"room:{room_id}" if user_id is None else f"user:{room_id}:{user_id}"


def room_lease_key(room_id: str) -> str:
    """The lease ``inbox_claim`` takes on a room; renew or release it by this key."""
    return ROOM_LEASE_PREFIX + room_id
