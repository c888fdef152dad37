"""The broadcast journal: a SQLite file that says, for every recipient, how far its send got.

Each recipient is written down before its send (``sending``) and after it (``sent`` with the
message id, ``refused`` with the reason), each in its own committed transaction (WAL,
``synchronous=FULL``). A process that dies at any point leaves a journal that says what was
done: re-running the broadcast sends only to the recipients still ``pending``. One whose state
is ``sending`` was in flight when the process died: WhatsApp may or may not have taken it, and
its API cannot be asked, so it becomes ``unknown`` and is not sent again unless asked
(``retry_unknown``).
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qbot._json import dumps_text, loads
from qbot.broadcast.recipients import Recipient
from qbot.errors import ConfigError

__all__ = ["Entry", "Journal", "Status"]

Status = Literal["pending", "sending", "sent", "refused", "unknown"]
STATUSES: tuple[Status, ...] = ("pending", "sending", "sent", "refused", "unknown")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS broadcast (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recipient (
    row INTEGER PRIMARY KEY,
    phone TEXT NOT NULL,
    variables TEXT NOT NULL,
    language TEXT,
    header TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS recipient_status ON recipient (status, row);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One recipient as the journal knows it.

    Attributes:
        row: the CSV line.
        phone: the normalised phone (or the raw cell of a refused row).
        variables: the template variables.
        language: the row's own language, if any.
        header: the row's header value, if any.
        status: ``pending``, ``sending`` (in flight), ``sent``, ``refused`` or ``unknown``.
        reason: why it was refused, or why its outcome is unknown.
        message_id: WhatsApp's message id, once sent.
        attempts: the tries made (a 429 or 5xx retried counts each).
        updated_at: when the status last changed (the bot's clock, epoch seconds).
    """

    row: int
    phone: str
    variables: tuple[str, ...]
    language: str | None
    header: str | None
    status: Status
    reason: str | None
    message_id: str | None
    attempts: int
    updated_at: float | None

    def as_dict(self) -> dict[str, Any]:
        """The entry as the report's row."""
        return {
            "row": self.row,
            "phone": self.phone,
            "status": self.status,
            "message_id": self.message_id,
            "reason": self.reason,
            "attempts": self.attempts,
            "variables": list(self.variables),
            "language": self.language,
        }


class Journal:
    """A broadcast's journal file (created on first use).

    Args:
        path: the SQLite file; its directory must exist.

    Raises:
        ConfigError: the file cannot be opened, or is not a broadcast journal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = _lock(self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            self._lock.close()
            raise ConfigError(
                f"journal {str(self.path)!r} is not a broadcast journal: {e}"
            ) from None
        except sqlite3.Error as e:
            self._lock.close()
            raise ConfigError(f"cannot open journal {str(self.path)!r}: {e}") from None

    def close(self) -> None:
        """Close the file (every change is already committed) and let another run take it."""
        self._db.close()
        self._lock.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the broadcast is ------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """What the journal was started for (template, language, the CSV's digest...)."""
        rows = self._db.execute("SELECT key, value FROM broadcast").fetchall()
        return {key: loads(value) for key, value in rows}

    def started(self) -> bool:
        """Whether the journal already holds a broadcast."""
        return bool(self._db.execute("SELECT 1 FROM broadcast LIMIT 1").fetchone())

    def start(self, meta: dict[str, Any], recipients: Iterable[Recipient], now: float) -> None:
        """Write down the broadcast and every recipient, in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO broadcast (key, value) VALUES (?, ?)",
                [(k, dumps_text(v)) for k, v in meta.items()],
            )
            self._db.executemany(
                "INSERT INTO recipient (row, phone, variables, language, header, status, reason, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.row,
                        r.phone,
                        dumps_text(list(r.variables)),
                        r.language,
                        r.header,
                        "pending" if r.refused is None else "refused",
                        r.refused,
                        now,
                    )
                    for r in recipients
                ],
            )

    def set_meta(self, key: str, value: Any) -> None:
        """Change one field of what the journal was started for."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO broadcast (key, value) VALUES (?, ?)",
                (key, dumps_text(value)),
            )

    # --- recipients -----------------------------------------------------------------------------

    def recover(self, now: float, *, retry_unknown: bool) -> int:
        """After a crash: recipients left ``sending`` become ``unknown`` (or ``pending`` again
        with ``retry_unknown``, as do earlier ``unknown`` ones). Returns how many were in flight.
        """
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE recipient SET status = 'unknown', updated_at = ?, reason = "
                "'the process stopped while this send was in flight: WhatsApp may have "
                "delivered it' WHERE status = 'sending'",
                (now,),
            )
            if retry_unknown:
                self._db.execute(
                    "UPDATE recipient SET status = 'pending', reason = NULL, updated_at = ? "
                    "WHERE status = 'unknown'",
                    (now,),
                )
        return cursor.rowcount

    def pending(self) -> list[Entry]:
        """The recipients still to send, in CSV order."""
        return list(self._select("WHERE status = 'pending' ORDER BY row"))

    def entries(self) -> list[Entry]:
        """Every recipient, in CSV order."""
        return list(self._select("ORDER BY row"))

    def entry(self, row: int) -> Entry:
        """The recipient of CSV line ``row``.

        Raises:
            KeyError: no such row.
        """
        for entry in self._select("WHERE row = ?", (row,)):
            return entry
        raise KeyError(row)

    def counts(self) -> dict[Status, int]:
        """How many recipients are in each status."""
        found = dict(
            self._db.execute("SELECT status, COUNT(*) FROM recipient GROUP BY status").fetchall()
        )
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def sending(self, row: int, now: float) -> None:
        """Before the send: the recipient is in flight (committed before the request leaves)."""
        self._update(row, "sending", now, attempts=True)

    def sent(self, row: int, message_id: str, now: float) -> None:
        """After a send WhatsApp accepted."""
        self._update(row, "sent", now, message_id=message_id)

    def refused(self, row: int, reason: str, now: float) -> None:
        """After a send WhatsApp refused for good (a 4xx), or one that was never made."""
        self._update(row, "refused", now, reason=reason)

    def unknown(self, row: int, reason: str, now: float) -> None:
        """After a send whose outcome cannot be told (no answer, a dropped connection)."""
        self._update(row, "unknown", now, reason=reason)

    def retry(self, row: int, now: float) -> None:
        """A try that was surely not taken (429, 5xx): the recipient waits again."""
        self._update(row, "pending", now)

    def _update(
        self,
        row: int,
        status: Status,
        now: float,
        *,
        message_id: str | None = None,
        reason: str | None = None,
        attempts: bool = False,
    ) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE recipient SET status = ?, message_id = COALESCE(?, message_id), "
                "reason = ?, updated_at = ?, attempts = attempts + ? WHERE row = ?",
                (status, message_id, reason, now, 1 if attempts else 0, row),
            )

    def _select(self, where: str, args: tuple[Any, ...] = ()) -> Iterator[Entry]:
        cursor = self._db.execute(
            "SELECT row, phone, variables, language, header, status, reason, message_id, "
            f"attempts, updated_at FROM recipient {where}",
            args,
        )
        for row, phone, variables, language, header, *rest in cursor:
            yield Entry(row, phone, tuple(loads(variables)), language, header, *rest)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise ConfigError(
                f"journal {str(self.path)!r} is in use by another broadcast: {e}"
            ) from None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _lock(path: Path) -> Any:
    """Hold ``<journal>.lock`` for the journal's lifetime: two runs of one broadcast at once
    would message people twice. The lock dies with the process (even SIGKILL)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a")  # noqa: SIM115 - held open for the journal's lifetime
    except OSError as e:
        raise ConfigError(f"cannot open journal {str(path)!r}: {e.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            f"journal {str(path)!r} is in use by another broadcast run: wait for it to finish "
            "(or stop it with Ctrl-C)"
        ) from None
    return handle
