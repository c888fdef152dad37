"""Check Qiscus import files against the reference's rules, and split big ones into valid chunks.

```python
rows = read_import_file("comments.json")
problems = validate_rows("comments", rows, known_emails={"a@x.com"})
for chunk in split_rows(rows):          # JSON arrays of at most 4 MB, file order kept
    await client.create_import("comments", chunk)
```

Rows are numbered from 1 in file order. A problem is an ``error`` (Qiscus would reject or corrupt
the import), a ``warning`` (accepted but probably not what you want) or a ``note`` (something only
the server can confirm, such as a creator that must already exist there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from qbot._json import dumps, dumps_text, loads
from qbot.errors import ImportFileError

__all__ = [
    "MAX_IMPORT_BYTES",
    "ImportType",
    "Problem",
    "read_import_file",
    "reference_values",
    "split_rows",
    "validate_rows",
]

MAX_IMPORT_BYTES = 4 * 1024 * 1024
"""Qiscus accepts import files of at most 4 MB."""

ImportType = Literal["users", "rooms", "comments"]
Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about an import file: ``row`` is 1-based, ``None`` for the whole file."""

    row: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        return f"{where}: {self.severity}: {self.message}"


_STR, _BOOL, _LIST, _OBJ = (str,), (bool,), (list,), (dict,)
_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    # key: (accepted JSON types, required)
    "users": {
        "Email": (_STR, True),
        "Name": (_STR, True),
        "AvatarUrl": (_STR, False),
        "AuthenticationToken": (_STR, False),
        "Password": (_STR, False),
        "CreateAt": (_STR, False),
    },
    "rooms": {
        "Name": (_STR, True),
        "Type": (_STR, True),
        "Options": (_STR, False),
        "CreatorEmail": (_STR, True),
        "CreatedAt": (_STR, False),
        "AvatarUrl": (_STR, False),
        "UniqueId": (_STR, True),
        "ParticipantEmails": (_LIST, True),
    },
    "comments": {
        "Message": (_STR, True),
        "DisableLinkPreview": (_BOOL, False),
        "Type": (_STR, True),
        "UniqueId": (_STR, True),
        "CreatorEmail": (_STR, True),
        "RoomUniqueId": (_STR, True),
        "CreatedAt": (_STR, False),
        "Payload": (_OBJ, False),
        "ParentCommentUniqueId": (_STR, False),
    },
}
_TIME_KEYS = {"CreateAt", "CreatedAt"}
_JSON_TYPE = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}


def read_import_file(path: str | Path) -> list[Any]:
    """Read an import file: a JSON array of objects.

    Raises:
        ImportFileError: the file is missing, not JSON, or not an array.
    """
    p = Path(path)
    try:
        data = loads(p.read_bytes())
    except FileNotFoundError:
        raise ImportFileError(f"import file {str(p)!r} does not exist") from None
    except OSError as e:
        raise ImportFileError(f"cannot read import file {str(p)!r}: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ImportFileError(f"import file {str(p)!r} is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ImportFileError(
            f"import file {str(p)!r} must hold a JSON array of rows, not {type(data).__name__}"
        )
    return data


def reference_values(path: str | Path, *keys: str) -> set[str]:
    """Values of ``keys`` in a users or rooms file (an import file or an export), as a set.

    Used to check that creators, participants and rooms of a later import exist.
    """
    return {
        str(row[k])
        for row in read_import_file(path)
        if isinstance(row, dict)
        for k in keys
        if row.get(k)
    }


def _is_email(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local and domain) and " " not in value


def _check_fields(
    kind: ImportType, row: dict[str, Any], report: Callable[[Severity, str], None]
) -> None:
    fields = _FIELDS[kind]
    for key, (types, required) in fields.items():
        value = row.get(key)
        if value is None or (required and value == ""):
            if required:
                report("error", f"{key} is required")
            continue
        if type(value) not in types:
            want = " or ".join(_JSON_TYPE[t] for t in types)
            report("error", f"{key} must be {want}, got {dumps_text(value)[:60]}")
        elif key in _TIME_KEYS and value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                report("error", f"{key} {value!r} is not a timestamp like 2017-05-10T11:46:30Z")
    for key in ("Email", "CreatorEmail"):
        value = row.get(key)
        if isinstance(value, str) and value and not _is_email(value):
            report("error", f"{key} {value!r} is not an email address")
    avatar = row.get("AvatarUrl")
    if isinstance(avatar, str) and avatar and not avatar.startswith("https://"):
        report("warning", f"AvatarUrl {avatar!r} should use https")
    extra = sorted(set(row) - set(fields))
    if kind == "users" and extra:
        report("warning", f"unknown key(s) {', '.join(extra)} will be discarded by Qiscus")


def _unique(
    rows: Sequence[Any], key: str, problems: list[Problem], label: str | None = None
) -> None:
    first: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        value = row.get(key) if isinstance(row, dict) else None
        if not isinstance(value, str) or not value:
            continue
        normalized = value.lower() if key == "Email" else value
        if normalized in first:
            problems.append(
                Problem(n, "error", f"{label or key} {value!r} duplicates row {first[normalized]}")
            )
        else:
            first[normalized] = n


def _check_buttons(buttons: Any, where: str) -> list[str]:
    if not isinstance(buttons, list):
        return [f"{where}buttons must be an array"]
    out = []
    for i, button in enumerate(buttons, 1):
        ok = isinstance(button, dict) and isinstance(button.get("label"), str)
        ok = ok and button.get("type") in {"postback", "link"}
        ok = ok and isinstance(button.get("payload"), dict)
        if not ok:
            out.append(
                f"{where}button {i} needs a string label, type 'postback' or 'link', and an "
                "object payload"
            )
    return out


def _need_strings(payload: dict[str, Any], keys: Iterable[str], where: str = "") -> list[str]:
    return [f"{where}{k} must be a string" for k in keys if not isinstance(payload.get(k), str)]


def _payload_errors(kind: str, payload: Any) -> list[str]:
    """Why ``payload`` is not valid for a comment of type ``kind`` (empty when it is)."""
    if kind == "text":
        return []
    if kind == "reply":
        if not isinstance(payload, dict):
            return ['a reply needs Payload {"text": ..., "replied_comment_id": 1}']
        out = _need_strings(payload, ["text"], "Payload.")
        rid = payload.get("replied_comment_id")
        if type(rid) is not int or rid != 1:
            out.append(f"Payload.replied_comment_id must be the integer 1 for imports, got {rid!r}")
        return out
    if payload is None:
        return [] if kind in {"custom", "system_event"} else [f"type {kind!r} needs a Payload"]
    if not isinstance(payload, dict):
        return ["Payload must be an object"]
    if kind == "buttons":
        return _need_strings(payload, ["text"], "Payload.") + _check_buttons(
            payload.get("buttons"), "Payload."
        )
    if kind == "card":
        out = _need_strings(payload, ["text", "title"], "Payload.")
        return out + _check_buttons(payload.get("buttons", []), "Payload.")
    if kind == "carousel":
        cards = payload.get("cards")
        if not isinstance(cards, list) or not cards:
            return ["Payload.cards must be a non-empty array"]
        out = []
        for i, card in enumerate(cards, 1):
            if not isinstance(card, dict):
                out.append(f"Payload.cards[{i}] must be an object")
                continue
            out += _need_strings(card, ["title"], f"Payload.cards[{i}].")
            out += _check_buttons(card.get("buttons", []), f"Payload.cards[{i}].")
        return out
    if kind == "account_linking":
        return _need_strings(payload, ["text", "url", "redirect_url"], "Payload.")
    if kind == "button_postback_response":
        return _need_strings(payload, ["url", "method"], "Payload.")
    if kind == "file_attachment":
        return _need_strings(payload, ["url"], "Payload.")
    return []


def _check_comments(
    rows: Sequence[Any], problems: list[Problem], known_rooms: set[str] | None
) -> None:
    position = {
        r["UniqueId"]: n
        for n, r in reversed(list(enumerate(rows, 1)))
        if isinstance(r, dict) and isinstance(r.get("UniqueId"), str) and r["UniqueId"]
    }
    on_server: dict[str, list[int]] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("Type"), str):
            continue
        kind = row["Type"]
        if kind not in {"text", "reply"}:
            problems.append(
                Problem(
                    n, "warning", f"type {kind!r}: Qiscus advises importing only text and reply"
                )
            )
        for message in _payload_errors(kind, row.get("Payload")):
            problems.append(Problem(n, "error", message))
        room = row.get("RoomUniqueId")
        if known_rooms is not None and isinstance(room, str) and room and room not in known_rooms:
            problems.append(Problem(n, "error", f"RoomUniqueId {room!r} is not a known room"))
        parent = row.get("ParentCommentUniqueId")
        if kind != "reply" or not isinstance(parent, str):
            if kind == "reply":
                problems.append(Problem(n, "error", "a reply needs ParentCommentUniqueId"))
            continue
        if not parent:
            problems.append(Problem(n, "error", "a reply needs ParentCommentUniqueId"))
        elif parent not in position:
            on_server.setdefault(parent, []).append(n)
        elif position[parent] == n:
            problems.append(Problem(n, "error", "a reply cannot be its own parent"))
        elif position[parent] > n:
            problems.append(
                Problem(
                    n,
                    "error",
                    f"ParentCommentUniqueId {parent!r} is defined later, at row "
                    f"{position[parent]}: move the parent before its reply",
                )
            )
    for parent, rows_ in on_server.items():
        where = ", ".join(str(r) for r in rows_)
        problems.append(
            Problem(
                rows_[0],
                "note",
                f"parent comment {parent!r} (replied to by row(s) {where}) is not in this file "
                "and must already exist on the server",
            )
        )


def _check_rooms(rows: Sequence[Any], problems: list[Problem]) -> None:
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            continue
        kind, creator = row.get("Type"), row.get("CreatorEmail")
        members = row.get("ParticipantEmails")
        if isinstance(kind, str) and kind not in {"single", "group"}:
            problems.append(Problem(n, "error", f"Type {kind!r} must be 'single' or 'group'"))
        if not isinstance(members, list):
            continue
        bad = [m for m in members if not isinstance(m, str) or not _is_email(m)]
        if bad:
            problems.append(
                Problem(n, "error", f"ParticipantEmails holds non-email value(s) {bad!r}")
            )
        if not members:
            problems.append(Problem(n, "error", "ParticipantEmails is empty"))
        if kind == "single":
            distinct = set(members)
            if len(distinct) != 2:
                problems.append(
                    Problem(
                        n,
                        "error",
                        f"a single room needs exactly 2 participants, got {len(distinct)}",
                    )
                )
            if isinstance(creator, str) and creator not in distinct:
                problems.append(
                    Problem(
                        n,
                        "error",
                        f"CreatorEmail {creator!r} must be one of the single room's participants",
                    )
                )


def _check_people(
    rows: Sequence[Any], problems: list[Problem], known_emails: set[str] | None
) -> None:
    needed: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            continue
        people = [row.get("CreatorEmail")]
        if isinstance(row.get("ParticipantEmails"), list):
            people += row["ParticipantEmails"]
        for email in people:
            if not isinstance(email, str) or not email:
                continue
            if known_emails is None:
                needed.setdefault(email, n)
            elif email not in known_emails:
                problems.append(Problem(n, "error", f"user {email!r} is not in the users file"))
    if needed:
        sample = ", ".join(repr(e) for e in list(needed)[:3])
        more = f" and {len(needed) - 3} more" if len(needed) > 3 else ""
        problems.append(
            Problem(
                None,
                "note",
                f"{len(needed)} user(s) ({sample}{more}) must already exist on the server; "
                "pass --users FILE to check them",
            )
        )


def validate_rows(
    kind: ImportType,
    rows: Sequence[Any],
    *,
    known_emails: set[str] | None = None,
    known_rooms: set[str] | None = None,
) -> list[Problem]:
    """Every problem of an import file's rows, in row order (file-level notes last).

    Args:
        kind: ``users``, ``rooms`` or ``comments``.
        rows: the decoded JSON array.
        known_emails: users known to exist (from a users file); ``None`` leaves the check to the
            server and adds a note.
        known_rooms: room unique ids known to exist (from a rooms file), for comments.

    Raises:
        ImportFileError: ``kind`` is not one of the three resources.
    """
    if kind not in _FIELDS:
        raise ImportFileError(f"import type {kind!r} must be one of users, rooms, comments")
    problems: list[Problem] = []
    if not rows:
        problems.append(Problem(None, "error", "the file holds no rows"))
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            problems.append(Problem(n, "error", f"a row must be an object, got {row!r:.60}"))
            continue

        def report(severity: Severity, message: str, n: int = n) -> None:
            problems.append(Problem(n, severity, message))

        _check_fields(kind, row, report)
    if kind == "users":
        _unique(rows, "Email", problems)
        _unique(rows, "AuthenticationToken", problems)
    else:
        _unique(rows, "UniqueId", problems)
        _check_people(rows, problems, known_emails)
    if kind == "rooms":
        _check_rooms(rows, problems)
    if kind == "comments":
        _check_comments(rows, problems, known_rooms)
    return sorted(problems, key=lambda p: (p.row is None, p.row or 0))


def split_rows(rows: Sequence[Any], max_bytes: int = MAX_IMPORT_BYTES) -> list[bytes]:
    """Split rows into JSON arrays of at most ``max_bytes`` each, keeping file order.

    Order is kept, so a reply whose parent comes earlier in the file never lands in an earlier
    chunk than its parent; upload the chunks in the returned order.

    Raises:
        ImportFileError: a single row is larger than ``max_bytes``.
    """
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 2  # the enclosing brackets
    for n, row in enumerate(rows, 1):
        encoded = dumps(row)
        if len(encoded) + 2 > max_bytes:
            raise ImportFileError(
                f"row {n} alone is {len(encoded)} bytes, over the {max_bytes}-byte import limit"
            )
        extra = len(encoded) + (1 if current else 0)
        if current and size + extra > max_bytes:
            chunks.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
            extra = len(encoded)
        current.append(encoded)
        size += extra
    if current:
        chunks.append(b"[" + b",".join(current) + b"]")
    return chunks
