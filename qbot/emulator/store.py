"""The emulator's state in one SQLite file: users, rooms, comments and the inspector's traffic.

Everything a page or a bot can see is kept here, so a conversation survives a restart of
``qbot dev``. Rows come back as plain dicts already shaped like Qiscus's JSON (a comment looks
like a ``load_comments`` entry), because the REST layer, the web page and the webhook builder all
serve them as they are.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from qbot._json import dumps_text, loads
from qbot.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    avatar_url TEXT NOT NULL DEFAULT '',
    token TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    unique_id TEXT NOT NULL UNIQUE,
    avatar_url TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL DEFAULT '{}',
    creator TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    room_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    joined_at REAL NOT NULL,
    PRIMARY KEY (room_id, email)
);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id INTEGER NOT NULL,
    email TEXT NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT,
    extras TEXT,
    unique_temp_id TEXT NOT NULL,
    comment_before_id INTEGER NOT NULL,
    disable_link_preview INTEGER NOT NULL DEFAULT 0,
    unix_nano INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_room ON comments (room_id, id);
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id INTEGER,
    comment_id INTEGER,
    title TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    status INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
"""

_TABLES = ("users", "rooms", "participants", "comments", "exchanges", "traffic")


def _rfc3339(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loads(raw: str | None) -> Any:
    return None if raw is None else loads(raw)


MAX_ID = 2**63 - 1
"""The largest id SQLite holds; a larger one names nothing."""


def _out_of_range(args: tuple[Any, ...]) -> bool:
    """Whether a lookup names an integer SQLite cannot hold (room 99999999999999999999999): no
    row can match it, and sqlite3 would raise OverflowError (a 500) rather than find nothing."""
    return any(isinstance(a, int) and not -MAX_ID - 1 <= a <= MAX_ID for a in args)


class EmulatorStore:
    """Async access to the emulator's SQLite database.

    Args:
        path: the database file, or ``":memory:"`` for a throw-away store (tests).
        first_id: where room and comment ids start in a new database; ``None`` (the default):
            from the clock, see :meth:`open`. ``1`` gives the small, predictable ids of a test.
    """

    def __init__(self, path: str | Path, *, first_id: int | None = None) -> None:
        if first_id is not None and first_id < 1:
            raise StorageError(f"first_id={first_id!r} must be 1 or more")
        self.path = str(path)
        self.first_id = first_id
        self._db: aiosqlite.Connection | None = None
        # Writes that read-then-insert (comment_before_id, ids) must not interleave.
        self._write_lock = asyncio.Lock()

    async def open(self, *, reset: bool = False) -> None:
        """Open (and create) the database; ``reset=True`` deletes every stored row first."""
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path)
        except OSError as e:  # a folder that cannot be made (qbot dev said "cannot listen")
            raise StorageError(
                f"cannot open the emulator database {self.path!r}: {e.strerror or e}; "
                "pass another --db path"
            ) from e
        except aiosqlite.Error as e:
            raise StorageError(
                f"cannot open the emulator database {self.path!r}: {e}; "
                "pass another --db path or --reset"
            ) from e
        self._db.row_factory = aiosqlite.Row
        await self._db.executescript(_SCHEMA)
        if reset:
            for table in _TABLES:
                await self._db.execute(f"DELETE FROM {table}")
            await self._db.execute("DELETE FROM sqlite_sequence")
        # Room and comment ids start from the clock, not 1: after a reset, a bot that remembers
        # (room, message id) pairs for dedupe must not mistake new messages for old ones.
        for table in ("rooms", "comments"):
            async with self._db.execute(
                "SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,)
            ) as cur:
                seeded = await cur.fetchone()
            if seeded is None:
                start = self.first_id or time.time_ns() // 1_000_000 % 10**12
                await self._db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, start - 1)
                )
        await self._db.commit()

    async def close(self) -> None:
        """Close the database connection (idempotent)."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("the emulator store is not open: call 'await store.open()' first")
        return self._db

    async def _one(self, sql: str, *args: Any) -> aiosqlite.Row | None:
        if _out_of_range(args):
            return None
        async with self.db.execute(sql, args) as cur:
            row: aiosqlite.Row | None = await cur.fetchone()
            return row

    async def _all(self, sql: str, *args: Any) -> list[aiosqlite.Row]:
        if _out_of_range(args):
            return []
        async with self.db.execute(sql, args) as cur:
            return list(await cur.fetchall())

    # users

    async def upsert_user(self, email: str, username: str, avatar_url: str = "") -> dict[str, Any]:
        """Register a user or update the name and avatar of an existing one (login_or_register)."""
        async with self._write_lock:
            await self.db.execute(
                "INSERT INTO users (email, username, avatar_url, token, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(email) DO UPDATE SET "
                "username = excluded.username, avatar_url = excluded.avatar_url",
                (email, username, avatar_url, secrets.token_urlsafe(15), time.time()),
            )
            await self.db.commit()
        user = await self.get_user(email)
        if user is None:  # pragma: no cover - the row was just written
            raise StorageError(f"user {email!r} vanished right after it was written")
        return user

    async def get_user(self, email: str) -> dict[str, Any] | None:
        """The user with this email, or ``None``."""
        row = await self._one("SELECT * FROM users WHERE email = ?", email)
        return None if row is None else self._user(row)

    async def get_user_by_id(self, user_id: int) -> dict[str, Any] | None:
        """The user with this numeric id, or ``None``."""
        row = await self._one("SELECT * FROM users WHERE id = ?", user_id)
        return None if row is None else self._user(row)

    async def list_users(self) -> list[dict[str, Any]]:
        """Every registered user, oldest first."""
        return [self._user(r) for r in await self._all("SELECT * FROM users ORDER BY id")]

    async def reset_token(self, email: str) -> dict[str, Any] | None:
        """Give the user a new token (reset_user_token); ``None`` when there is no such user."""
        async with self._write_lock:
            await self.db.execute(
                "UPDATE users SET token = ? WHERE email = ?", (secrets.token_urlsafe(15), email)
            )
            await self.db.commit()
        return await self.get_user(email)

    @staticmethod
    def _user(row: aiosqlite.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "id_str": str(row["id"]),
            "email": row["email"],
            "username": row["username"],
            "avatar_url": row["avatar_url"],
            "token": row["token"],
        }

    # rooms

    async def create_room(
        self,
        *,
        name: str,
        room_type: str,
        creator: str,
        participants: list[str],
        unique_id: str | None = None,
        avatar_url: str = "",
        options: str = "{}",
        room_id: int | None = None,
    ) -> dict[str, Any]:
        """Create a room with these participants (the creator is always one of them).

        ``room_id`` chooses the id (a lenient emulator creates the rooms a bot posts to);
        later rooms get higher ids.
        """
        now = time.time()
        async with self._write_lock:
            cur = await self.db.execute(
                "INSERT INTO rooms (id, name, type, unique_id, avatar_url, options, creator, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room_id,
                    name,
                    room_type,
                    unique_id or secrets.token_hex(16),
                    avatar_url,
                    options,
                    creator,
                    now,
                ),
            )
            room_id = cur.lastrowid
            if room_id is None:  # pragma: no cover - sqlite always sets it on INSERT
                raise StorageError(f"creating room {name!r} returned no id")
            members = [creator, *(e for e in participants if e != creator)]
            await self.db.executemany(
                "INSERT OR IGNORE INTO participants (room_id, email, joined_at) VALUES (?, ?, ?)",
                [(room_id, email, now) for email in members],
            )
            await self.db.commit()
        room = await self.get_room(room_id)
        if room is None:  # pragma: no cover - the row was just written
            raise StorageError(f"room {room_id} vanished right after it was written")
        return room

    async def get_room(self, room_id: int) -> dict[str, Any] | None:
        """The room with this id (with its participants), or ``None``."""
        row = await self._one("SELECT * FROM rooms WHERE id = ?", room_id)
        return None if row is None else await self._room(row)

    async def get_room_by_unique_id(self, unique_id: str) -> dict[str, Any] | None:
        """The room with this client-chosen unique id, or ``None``."""
        row = await self._one("SELECT * FROM rooms WHERE unique_id = ?", unique_id)
        return None if row is None else await self._room(row)

    async def find_single_room(self, email_a: str, email_b: str) -> dict[str, Any] | None:
        """The ``single`` room between these two users, or ``None``."""
        row = await self._one(
            "SELECT r.* FROM rooms r WHERE r.type = 'single' "
            "AND EXISTS (SELECT 1 FROM participants p WHERE p.room_id = r.id AND p.email = ?) "
            "AND EXISTS (SELECT 1 FROM participants p WHERE p.room_id = r.id AND p.email = ?) "
            "ORDER BY r.id LIMIT 1",
            email_a,
            email_b,
        )
        return None if row is None else await self._room(row)

    async def list_rooms(self) -> list[dict[str, Any]]:
        """Every room, oldest first."""
        return [await self._room(r) for r in await self._all("SELECT * FROM rooms ORDER BY id")]

    async def user_rooms(self, email: str) -> list[dict[str, Any]]:
        """Rooms this user takes part in, the most recently active first."""
        rows = await self._all(
            "SELECT r.* FROM rooms r JOIN participants p ON p.room_id = r.id "
            "WHERE p.email = ? ORDER BY COALESCE((SELECT MAX(c.id) FROM comments c "
            "WHERE c.room_id = r.id), 0) DESC, r.id DESC",
            email,
        )
        return [await self._room(r) for r in rows]

    async def add_participants(self, room_id: int, emails: list[str]) -> None:
        """Add users to a room; already present ones are left as they are."""
        async with self._write_lock:
            await self.db.executemany(
                "INSERT OR IGNORE INTO participants (room_id, email, joined_at) VALUES (?, ?, ?)",
                [(room_id, email, time.time()) for email in emails],
            )
            await self.db.commit()

    async def remove_participants(self, room_id: int, emails: list[str]) -> None:
        """Remove users from a room; absent ones are ignored."""
        async with self._write_lock:
            await self.db.executemany(
                "DELETE FROM participants WHERE room_id = ? AND email = ?",
                [(room_id, email) for email in emails],
            )
            await self.db.commit()

    async def rename_room(self, room_id: int, name: str) -> None:
        """Change a room's name (change_room_name system events)."""
        async with self._write_lock:
            await self.db.execute("UPDATE rooms SET name = ? WHERE id = ?", (name, room_id))
            await self.db.commit()

    async def _room(self, row: aiosqlite.Row) -> dict[str, Any]:
        people = await self._all(
            "SELECT u.* FROM participants p JOIN users u ON u.email = p.email "
            "WHERE p.room_id = ? ORDER BY p.joined_at, u.id",
            row["id"],
        )
        last = await self._one(
            "SELECT id, message, unix_nano FROM comments WHERE room_id = ? "
            "ORDER BY id DESC LIMIT 1",
            row["id"],
        )
        return {
            "id": row["id"],
            "id_str": str(row["id"]),
            "name": row["name"],
            "type": row["type"],
            "unique_id": row["unique_id"],
            "avatar_url": row["avatar_url"],
            "options": row["options"],
            "creator": row["creator"],
            "participants": [
                {
                    "id": p["id"],
                    "id_str": str(p["id"]),
                    "email": p["email"],
                    "username": p["username"],
                    "avatar_url": p["avatar_url"],
                }
                for p in people
            ],
            "last_comment_id": last["id"] if last else 0,
            "last_comment_message": last["message"] if last else "",
            "last_comment_timestamp": _rfc3339(last["unix_nano"]) if last else "",
        }

    # comments

    async def add_comment(
        self,
        *,
        room_id: int,
        email: str,
        comment_type: str,
        message: str,
        payload: Any = None,
        extras: Any = None,
        unique_temp_id: str | None = None,
        disable_link_preview: bool = False,
    ) -> dict[str, Any]:
        """Store a comment and return it as Qiscus serves it."""
        async with self._write_lock:
            before = await self._one("SELECT MAX(id) AS m FROM comments WHERE room_id = ?", room_id)
            cur = await self.db.execute(
                "INSERT INTO comments (room_id, email, type, message, payload, extras, "
                "unique_temp_id, comment_before_id, disable_link_preview, unix_nano) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    room_id,
                    email,
                    comment_type,
                    message,
                    None if payload is None else dumps_text(payload),
                    None if extras is None else dumps_text(extras),
                    unique_temp_id or f"emulator-{secrets.token_hex(10)}",
                    (before["m"] if before else None) or 0,
                    int(disable_link_preview),
                    time.time_ns(),
                ),
            )
            await self.db.commit()
        comment_id = cur.lastrowid
        comment = None if comment_id is None else await self.get_comment(comment_id)
        if comment is None:  # pragma: no cover - the row was just written
            raise StorageError(f"comment in room {room_id} vanished right after it was written")
        return comment

    async def get_comment(self, comment_id: int) -> dict[str, Any] | None:
        """The comment with this id, or ``None``."""
        row = await self._one(
            "SELECT c.*, u.id AS user_id, u.username, u.avatar_url FROM comments c "
            "LEFT JOIN users u ON u.email = c.email WHERE c.id = ?",
            comment_id,
        )
        return None if row is None else self._comment(row)

    async def list_comments(self) -> list[dict[str, Any]]:
        """Every comment of every room, oldest first."""
        rows = await self._all(
            "SELECT c.*, u.id AS user_id, u.username, u.avatar_url FROM comments c "
            "LEFT JOIN users u ON u.email = c.email ORDER BY c.id"
        )
        return [self._comment(r) for r in rows]

    async def comments(
        self, room_id: int, *, limit: int = 20, page: int = 1, after_id: int = 0
    ) -> list[dict[str, Any]]:
        """A room's comments, newest first (``load_comments`` order), paged."""
        rows = await self._all(
            "SELECT c.*, u.id AS user_id, u.username, u.avatar_url FROM comments c "
            "LEFT JOIN users u ON u.email = c.email WHERE c.room_id = ? AND c.id > ? "
            "ORDER BY c.id DESC LIMIT ? OFFSET ?",
            room_id,
            after_id,
            limit,
            (max(page, 1) - 1) * limit,
        )
        return [self._comment(r) for r in rows]

    @staticmethod
    def _comment(row: aiosqlite.Row) -> dict[str, Any]:
        nano = row["unix_nano"]
        stamp = _rfc3339(nano)
        return {
            "id": row["id"],
            "id_str": str(row["id"]),
            "comment_before_id": row["comment_before_id"],
            "comment_before_id_str": str(row["comment_before_id"]),
            "room_id": row["room_id"],
            "room_id_str": str(row["room_id"]),
            "topic_id": row["room_id"],
            "topic_id_str": str(row["room_id"]),
            "email": row["email"],
            "user_id": row["user_id"] or 0,
            "username": row["username"] or row["email"],
            "user_avatar_url": row["avatar_url"] or "",
            "type": row["type"],
            "message": row["message"],
            "payload": _loads(row["payload"]),
            "extras": _loads(row["extras"]),
            "unique_temp_id": row["unique_temp_id"],
            "disable_link_preview": bool(row["disable_link_preview"]),
            "timestamp": stamp,
            "unix_timestamp": nano // 1_000_000_000,
            "unix_nano_timestamp": nano,
            "status": "sent",
        }

    # inspector

    async def start_exchange(self, room_id: int | None, comment_id: int | None, title: str) -> int:
        """Open an inspector exchange (one user message and everything it caused)."""
        async with self._write_lock:
            cur = await self.db.execute(
                "INSERT INTO exchanges (room_id, comment_id, title, created_at) "
                "VALUES (?, ?, ?, ?)",
                (room_id, comment_id, title, time.time()),
            )
            await self.db.commit()
        if cur.lastrowid is None:  # pragma: no cover - sqlite always sets it on INSERT
            raise StorageError(f"opening an exchange for room {room_id} returned no id")
        return cur.lastrowid

    async def latest_exchange(self, room_id: int | None) -> int | None:
        """The newest exchange of this room (or of any room when ``room_id`` is ``None``)."""
        if room_id is None:
            row = await self._one("SELECT id FROM exchanges ORDER BY id DESC LIMIT 1")
        else:
            row = await self._one(
                "SELECT id FROM exchanges WHERE room_id = ? ORDER BY id DESC LIMIT 1", room_id
            )
        return None if row is None else int(row["id"])

    async def add_traffic(
        self,
        exchange_id: int,
        *,
        kind: str,
        method: str,
        path: str,
        body: Any,
        status: int | None,
        detail: str = "",
    ) -> dict[str, Any]:
        """Record one webhook sent or one REST call received, under an exchange."""
        now = time.time()
        async with self._write_lock:
            cur = await self.db.execute(
                "INSERT INTO traffic (exchange_id, kind, method, path, body, status, detail, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (exchange_id, kind, method, path, dumps_text(body), status, detail, now),
            )
            await self.db.commit()
        return {
            "id": cur.lastrowid,
            "exchange_id": exchange_id,
            "kind": kind,
            "method": method,
            "path": path,
            "body": body,
            "status": status,
            "detail": detail,
            "created_at": now,
        }

    async def finish_traffic(self, traffic_id: int, status: int | None, detail: str) -> None:
        """Set the outcome of a webhook recorded before it was sent."""
        async with self._write_lock:
            await self.db.execute(
                "UPDATE traffic SET status = ?, detail = ? WHERE id = ?",
                (status, detail, traffic_id),
            )
            await self.db.commit()

    async def exchanges(self, room_id: int | None, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest exchanges of a room (or all rooms), oldest first, each with its traffic."""
        if room_id is None:
            rows = await self._all("SELECT * FROM exchanges ORDER BY id DESC LIMIT ?", limit)
        else:
            rows = await self._all(
                "SELECT * FROM exchanges WHERE room_id = ? ORDER BY id DESC LIMIT ?",
                room_id,
                limit,
            )
        result = []
        for row in reversed(rows):
            traffic = await self._all(
                "SELECT * FROM traffic WHERE exchange_id = ? ORDER BY id", row["id"]
            )
            result.append(
                {
                    "id": row["id"],
                    "room_id": row["room_id"],
                    "comment_id": row["comment_id"],
                    "title": row["title"],
                    "created_at": row["created_at"],
                    "traffic": [
                        {
                            "id": t["id"],
                            "exchange_id": t["exchange_id"],
                            "kind": t["kind"],
                            "method": t["method"],
                            "path": t["path"],
                            "body": loads(t["body"]),
                            "status": t["status"],
                            "detail": t["detail"],
                            "created_at": t["created_at"],
                        }
                        for t in traffic
                    ],
                }
            )
        return result
