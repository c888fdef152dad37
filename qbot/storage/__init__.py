"""Storage backends behind one interface, chosen by the ``storage.url`` setting.

The interface, one small part per concern, is :mod:`qbot.storage.base`; the records crossing it
:mod:`qbot.storage.records`; the keys :mod:`qbot.storage.keys`.

```
memory://                   in this process only (tests, ``qbot shell``)
sqlite:///relative/qbot.db  one file, durable (the default of ``qbot run`` and ``qbot dev``)
sqlite:////abs/path/qbot.db
sqlite:///:memory:          SQLite without a file (tests of the SQL itself)
redis://host:6379/0         shared by several replicas (``?prefix=qbot:`` sets the key prefix)
```
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from qbot.errors import StorageError
from qbot.storage.base import (
    HandoffStore,
    InboxStore,
    LeaseLostError,
    LeaseStore,
    OutboxStore,
    StateStore,
    Storage,
)
from qbot.storage.keys import room_lease_key, state_key
from qbot.storage.memory import MemoryStorage
from qbot.storage.records import Claim, Clock, Handoff, InboxItem, JSONText, OutboxItem, StateWrite
from qbot.storage.redis import RedisStorage
from qbot.storage.sqlite import SqliteStorage

__all__ = [
    "Claim",
    "Handoff",
    "HandoffStore",
    "InboxItem",
    "InboxStore",
    "JSONText",
    "LeaseLostError",
    "LeaseStore",
    "MemoryStorage",
    "OutboxItem",
    "OutboxStore",
    "RedisStorage",
    "SqliteStorage",
    "StateStore",
    "StateWrite",
    "Storage",
    "open_storage",
    "room_lease_key",
    "state_key",
]

_VALID = "memory://, sqlite:///path/qbot.db, sqlite:///:memory:, redis://host:6379/0"


def open_storage(url: str, *, clock: Clock | None = None) -> Storage:
    """The backend ``url`` names, not yet connected: ``async with open_storage(url) as s: ...``.

    Args:
        url: ``memory://``, ``sqlite:///path/qbot.db`` or ``redis://host:6379/0``.
        clock: time source for expiries (memory and SQLite; Redis expires on its own clock).

    Raises:
        StorageError: the URL's scheme is unknown or it is malformed.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(f"storage url {url!r} has no scheme: use one of {_VALID}")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        if url.lower() != "memory://":
            raise StorageError(f"storage url {url!r} takes nothing after 'memory://'")
        return MemoryStorage(clock=clock)
    if scheme == "sqlite":
        return _sqlite(url, clock)
    if scheme in ("redis", "rediss", "unix"):
        return RedisStorage(url, clock=clock)
    raise StorageError(f"unknown storage scheme {scheme!r} in {url!r}: use one of {_VALID}")


def _sqlite(url: str, clock: Clock | None) -> SqliteStorage:
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise StorageError(
            f"sqlite url {url!r} needs three slashes and a path: sqlite:///qbot.db (relative) "
            "or sqlite:////var/lib/qbot.db (absolute)"
        )
    path, _, query = rest[1:].partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    synchronous = options.pop("synchronous", "full")
    if options:
        raise StorageError(
            f"sqlite url {url!r} has unknown options {sorted(options)}: only 'synchronous'"
        )
    if urlsplit(url).netloc:
        raise StorageError(f"sqlite url {url!r} must not name a host: use sqlite:///{path}")
    return SqliteStorage(path, clock=clock, synchronous=synchronous)
