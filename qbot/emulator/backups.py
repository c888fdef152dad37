"""Exports and imports (Qiscus "backups"): ``exports``, ``exports/{id}``, ``imports``, downloads.

Kept in memory, not in the store: a restart of the emulator forgets them. An export progresses
0 → 50 → 100 over successive ``GET exports/{id}`` and, once finished, links to its JSON file
(the comments posted in the date range, UTC days; every user and room: their creation time is
not kept). An import is checked (multipart file, 4 MB at most, a JSON array) and applied when the
imports are next listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qbot._json import dumps, loads
from qbot.emulator.answers import Handler, Params, RestError, as_int, ok, required
from qbot.emulator.calls import UploadedFile

if TYPE_CHECKING:
    from qbot.emulator.core import Emulator

#: The largest import file Qiscus takes.
IMPORT_LIMIT = 4 * 1024 * 1024
RESOURCES = ("users", "rooms", "comments")
PAGE_SIZE = 20


@dataclass
class Backups:
    """The exports and imports made so far.

    Attributes:
        exports: export records by unique id, oldest first (``_data`` holds a finished file).
        imports: import records by unique id, oldest first.
        imported_rows: ``(type, rows)`` of every accepted upload, in order.
    """

    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    imported_rows: list[tuple[str, list[Any]]] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _resource(params: Params) -> str:
    kind = str(required(params, "type"))
    if kind not in RESOURCES:
        raise RestError(400, f"type {kind!r} must be one of {', '.join(RESOURCES)}", "type")
    return kind


def _page(records: dict[str, dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    page = as_int(params.get("page"), "page", 1)
    recent = list(reversed(records.values()))[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return [_public(r) for r in recent]


class BackupApi:
    """The handlers of the export and import endpoints."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self.state = emulator.backups

    def table(self) -> list[tuple[str, str, Handler]]:
        """``(method, endpoint, handler)`` of each endpoint."""
        return [
            ("POST", "exports", self.create_export),
            ("GET", "exports", self.list_exports),
            ("GET", "exports/{unique_id}", self.get_export),
            ("DELETE", "exports/{unique_id}", self.delete_export),
            ("POST", "imports", self.create_import),
            ("GET", "imports", self.list_imports),
        ]

    def _export(self, params: Params) -> dict[str, Any]:
        unique_id = str(params["unique_id"])
        export = self.state.exports.get(unique_id)
        if export is None:
            raise RestError(404, f"backup {unique_id!r} not found")
        return export

    async def create_export(self, params: Params) -> web.Response:
        kind = _resource(params)
        days: list[date] = []
        for key in ("start_date", "end_date"):
            value = str(required(params, key))
            try:
                days.append(date.fromisoformat(value))
            except ValueError:
                raise RestError(
                    400, f"{key} {value!r} must use the format YYYY-MM-DD", key
                ) from None
        created = _now()
        unique_id = str(uuid.uuid4())
        self.state.exports[unique_id] = {
            "created_at": created,
            "download_url": "",
            "error_message": "",
            "original_filename": f"{created}_exported_{kind}.json",
            "percentage": 0,
            "resource_name": kind,
            "size": 0,
            "status": "started",
            "total_rows": 0,
            "unique_id": unique_id,
            "_days": (days[0], days[1]),
        }
        return ok(_public(self.state.exports[unique_id]))

    async def get_export(self, params: Params) -> web.Response:
        export = self._export(params)
        if export["percentage"] < 100:
            export["percentage"] += 50
            export["status"] = "on progress" if export["percentage"] < 100 else "finished"
        if export["status"] == "finished" and not export["download_url"]:
            rows = await self._rows(export["resource_name"], *export["_days"])
            export["_data"] = dumps(rows)
            export.update(
                download_url=f"{self.em.base_url}/download/{export['unique_id']}.json",
                size=len(export["_data"]),
                total_rows=len(rows),
            )
        return ok({"backup_history": _public(export)})

    async def _rows(self, resource: str, start: date, end: date) -> list[dict[str, Any]]:
        """What the export holds: comments posted from ``start`` to ``end`` (UTC days, both
        included); every user and room (the store keeps no creation time for them)."""
        if resource == "users":
            return await self.em.store.list_users()
        if resource == "rooms":
            return await self.em.store.list_rooms()
        return [
            c
            for c in await self.em.store.list_comments()
            if start <= datetime.fromtimestamp(c["unix_timestamp"], UTC).date() <= end
        ]

    async def list_exports(self, params: Params) -> web.Response:
        return ok({"backup_histories": _page(self.state.exports, params)})

    async def delete_export(self, params: Params) -> web.Response:
        export = self._export(params)
        del self.state.exports[export["unique_id"]]
        return ok({"backup_history": _public(export)})

    async def download(self, unique_id: str) -> web.Response:
        """The file of a finished export (served without credentials, as a storage host does)."""
        export = self.state.exports.get(unique_id)
        if export is None or "_data" not in export:
            return web.json_response(
                {"error": f"no finished export {unique_id!r} to download"}, status=404
            )
        return web.Response(body=export["_data"], content_type="application/json")

    async def create_import(self, params: Params) -> web.Response:
        kind = _resource(params)
        upload = required(params, "file")
        if not isinstance(upload, UploadedFile):
            raise RestError(400, "file must be sent as a multipart file part", "file")
        name = upload.filename or "import.json"
        if len(upload.data) > IMPORT_LIMIT:
            raise RestError(400, f"file {name!r} is larger than the 4 MB import limit", "file")
        try:
            rows = loads(upload.data)
        except ValueError:
            raise RestError(400, f"file {name!r} is not valid JSON", "file") from None
        if not isinstance(rows, list):
            raise RestError(400, f"file {name!r} must hold a JSON array", "file")
        unique_id = str(uuid.uuid4())
        self.state.imports[unique_id] = {
            "created_at": _now(),
            "errors": {"Message": "", "Data": None},
            "original_filename": name,
            "resource_name": kind,
            "size": len(upload.data),
            "status": "started",
            "total_rows": 0,
            "unique_id": unique_id,
            "_rows": rows,
        }
        self.state.imported_rows.append((kind, rows))
        return ok({"backup_history": _public(self.state.imports[unique_id])})

    async def list_imports(self, params: Params) -> web.Response:
        for record in self.state.imports.values():
            if record["status"] == "started":
                await self._apply(record["resource_name"], record["_rows"])
                record.update(status="finished", total_rows=len(record["_rows"]), errors={})
        return ok({"backup_histories": _page(self.state.imports, params)})

    async def _apply(self, resource: str, rows: list[Any]) -> None:
        store = self.em.store
        for row in rows:
            if not isinstance(row, dict):
                continue
            if resource == "users" and row.get("Email"):
                await self.em.add_user(str(row["Email"]), row.get("Name"))
            elif resource == "rooms" and row.get("ParticipantEmails"):
                unique_id = row.get("UniqueId") or None
                if unique_id and await store.get_room_by_unique_id(str(unique_id)) is not None:
                    continue  # already imported: a room's unique id is unique
                emails = [str(e) for e in row["ParticipantEmails"]]
                for email in emails:
                    await self.em.add_user(email)
                creator = str(row.get("CreatorEmail") or emails[0])
                await self.em.add_user(creator)
                await store.create_room(
                    name=str(row.get("Name", "")),
                    room_type=str(row.get("Type", "group")),
                    creator=creator,
                    participants=emails,
                    unique_id=str(unique_id) if unique_id else None,
                )
            elif resource == "comments" and row.get("RoomUniqueId"):
                room = await store.get_room_by_unique_id(str(row["RoomUniqueId"]))
                if room is None:
                    continue  # Qiscus skips rows whose room is missing
                sender = str(row.get("CreatorEmail") or "unknown@example.com")
                await self.em.add_user(sender)
                await store.add_comment(
                    room_id=room["id"],
                    email=sender,
                    comment_type=str(row.get("Type", "text")),
                    message=str(row.get("Message", "")),
                )
