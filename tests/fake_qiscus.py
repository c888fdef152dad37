"""A fake Qiscus server: a real aiohttp app on 127.0.0.1, port 0, that records every call.

It serves every endpoint of ``shared/qiscus/rest-api-v2.md`` under both ``/api/v2/rest/...`` and
``/api/v2.1/rest/...``, accepts JSON, urlencoded and multipart bodies, checks the auth headers and
keeps plausible state (users, rooms, comments with increasing ids, exports that progress
0 → 50 → 100 over successive ``GET exports/{id}``, imports that finish on the next listing).

Lenient by default: ``post_comment`` and ``post_system_event_message`` create an unknown room (and
sender) on the fly so bot tests need no setup. ``FakeQiscus(strict=True)`` answers 404 instead.

Usage::

    async with FakeQiscus() as fake:
        client = QiscusClient(fake.app_id, fake.secret_key, base_url=fake.base_url)
        fake.fail("post_comment", 503, times=2)
        ...
        assert fake.posted_comments(room_id=7)[0]["message"] == "hi"
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, MultiMapping

Params = dict[str, Any]
Handler = Callable[[Params], Awaitable[web.StreamResponse]]

PAGE_SIZE = 20
_BODY = web.RequestKey("qiscus_body", object)
IMPORT_LIMIT = 4 * 1024 * 1024
SYSTEM_EVENT_TYPES = {
    "create_room",
    "add_member",
    "join_room",
    "remove_member",
    "left_room",
    "change_room_name",
    "change_room_avatar",
    "custom",
}


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart body."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Call:
    """One request the fake received.

    ``body`` is the decoded JSON value, or for form and multipart bodies a dict of fields (names
    without a trailing ``[]``; repeated or ``[]`` fields as lists; file parts as `UploadedFile`),
    or ``None`` when empty. ``query`` uses the same convention.
    """

    method: str
    path: str
    headers: CIMultiDict[str]
    query: dict[str, Any]
    body: Any
    peer: tuple[str, int] | None = None  # client address: equal peers mean a reused connection


@dataclass
class _Rule:
    path: str
    times: int
    status: int = 0
    retry_after: float | None = None
    body: Any = None
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        if self.path.startswith("/"):
            return path == self.path
        return path.endswith("/rest/" + self.path)


class _Reject(Exception):
    """Raised by handlers to answer a Qiscus-shaped error."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def _error(status: int, message: str, errors: dict[str, list[str]] | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message}
    if errors:
        error["errors"] = errors
    return web.json_response({"status": status, "error": error}, status=status)


def _ok(results: Any) -> web.Response:
    return web.json_response({"results": results, "status": 200})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(items: MultiMapping[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, raw in items.items():
        value: Any = raw
        if isinstance(raw, web.FileField):
            value = UploadedFile(raw.filename, raw.content_type, raw.file.read())
        key = raw_key.removesuffix("[]")
        if raw_key.endswith("[]") or key in out:
            prev = out.get(key, [])
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _require(params: Params, *names: str) -> None:
    missing = {n: ["is required"] for n in names if params.get(n) in (None, "", [])}
    if missing:
        raise _Reject(400, f"missing required parameter(s): {', '.join(missing)}", missing)


class FakeQiscus:
    """A stateful stand-in for the Qiscus server REST API (v2 and v2.1)."""

    def __init__(
        self, *, app_id: str = "fake-app", secret_key: str = "fake-secret", strict: bool = False
    ) -> None:
        self.app_id = app_id
        self.secret_key = secret_key
        self.strict = strict
        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.rooms: dict[int, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.exports: dict[str, dict[str, Any]] = {}
        self.imports: dict[str, dict[str, Any]] = {}
        self.imported_rows: list[tuple[str, list[Any]]] = []
        self._posted: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._fail_rules: list[_Rule] = []
        self._delay_rules: list[_Rule] = []
        self._ids = {"user": 0, "room": 0, "comment": 0}
        self._changed = asyncio.Event()
        self._server: TestServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> FakeQiscus:
        """Start serving on 127.0.0.1 on a free port."""
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        for prefix in ("/api/v2/rest", "/api/v2.1/rest"):
            for method, name, handler in self._routes():
                app.router.add_route(method, f"{prefix}/{name}", self._wrap(handler))
        app.router.add_get("/download/{unique_id}.json", self._download)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        """Stop the server."""
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> FakeQiscus:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, to pass as the client's ``base_url``."""
        if self._server is None:
            raise RuntimeError("FakeQiscus is not started: use 'async with FakeQiscus()'")
        return f"http://127.0.0.1:{self._server.port}"

    # -- test controls ---------------------------------------------------------------------------
    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` calls to ``path`` with ``status``.

        ``path`` is a full path (``/api/v2/rest/post_comment``) or an endpoint name
        (``post_comment``, either version). ``body`` defaults to Qiscus's error JSON; a ``str``
        body is sent as plain text (Qiscus sometimes answers 200 with a plain-text error).
        """
        self._fail_rules.append(_Rule(path, times, status, retry_after, body))

    def delay(self, path: str, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` calls to ``path``."""
        self._delay_rules.append(_Rule(path, times, seconds=seconds))

    def posted_comments(self, room_id: str | int | None = None) -> list[dict[str, Any]]:
        """Bodies of accepted ``post_comment`` calls, oldest first, with ``payload`` decoded."""
        return [b for b in self._posted if room_id is None or str(b.get("room_id")) == str(room_id)]

    def posted_system_events(self, room_id: str | int | None = None) -> list[dict[str, Any]]:
        """Bodies of accepted ``post_system_event_message`` calls, oldest first."""
        return [b for b in self._events if room_id is None or str(b.get("room_id")) == str(room_id)]

    def calls_to(self, name: str) -> list[Call]:
        """Calls whose path ends with ``/rest/{name}`` (either version)."""
        return [c for c in self.calls if c.path.endswith("/rest/" + name)]

    async def wait_for(
        self,
        predicate_or_count: int | Callable[..., bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the fake's documented API takes a timeout
    ) -> None:
        """Wait until ``len(calls) >= count`` or the predicate holds.

        The predicate takes no argument or this fake. Raises TimeoutError naming what was seen.
        """
        if isinstance(predicate_or_count, int):
            count = predicate_or_count

            def check() -> bool:
                return len(self.calls) >= count
        else:
            pred = predicate_or_count
            takes_arg = bool(inspect.signature(pred).parameters)

            def check() -> bool:
                return bool(pred(self) if takes_arg else pred())

        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [f"{c.method} {c.path}" for c in self.calls]
            raise TimeoutError(
                f"FakeQiscus.wait_for({predicate_or_count!r}) timed out after {timeout}s; "
                f"calls so far: {seen}"
            ) from None

    # -- plumbing --------------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()

    @staticmethod
    def _take(rules: list[_Rule], path: str) -> _Rule | None:
        for rule in rules:
            if rule.times > 0 and rule.matches(path):
                rule.times -= 1
                return rule
        return None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json":
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._record(request, raw.decode(errors="replace"))
                return _error(400, "request body is not valid JSON")
        elif request.body_exists:
            body = _fields(await request.post()) or None
        self._record(request, body)
        request[_BODY] = body
        try:
            delay = self._take(self._delay_rules, request.path)
            if delay is not None:
                await asyncio.sleep(delay.seconds)
            failure = self._take(self._fail_rules, request.path)
            if failure is not None:
                return self._failure(failure)
            if request.path.startswith("/api/") and not self._authorized(request):
                return _error(401, "Unauthorized: wrong app id or QISCUS-SDK-SECRET")
            return await handler(request)
        finally:
            self._notify()

    def _record(self, request: web.Request, body: Any) -> None:
        query = _fields(request.query)
        self.calls.append(
            Call(request.method, request.path, CIMultiDict(request.headers), query, body)
        )
        self._notify()

    @staticmethod
    def _failure(rule: _Rule) -> web.Response:
        headers = {} if rule.retry_after is None else {"Retry-After": f"{rule.retry_after:g}"}
        if isinstance(rule.body, str):
            return web.Response(status=rule.status, text=rule.body, headers=headers)
        body = rule.body
        if body is None:
            body = {"status": rule.status, "error": {"message": f"injected failure {rule.status}"}}
        return web.json_response(body, status=rule.status, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        h = request.headers
        secret = h.get("QISCUS-SDK-SECRET", h.get("QISCUS_SDK_SECRET"))
        app_id = h.get("QISCUS-SDK-APP-ID", h.get("QISCUS_SDK_APP_ID"))
        if request.path.startswith("/api/v2.1/") and app_id is None:
            return False
        return secret == self.secret_key and app_id in (None, self.app_id)

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            body = request[_BODY]
            params: Params = _fields(request.query)
            if isinstance(body, dict):
                params.update({k.removesuffix("[]"): v for k, v in body.items()})
            params.update(request.match_info)
            try:
                return await handler(params)
            except _Reject as e:
                return _error(e.status, e.message, e.errors)

        return route

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "create_room", self._create_room),
            ("GET", "get_or_create_room_with_target", self._get_or_create_room),
            ("POST", "get_or_create_room_with_target", self._get_or_create_room),
            ("POST", "get_rooms_info", self._get_rooms_info),
            ("POST", "add_room_participants", self._add_participants),
            ("POST", "remove_room_participants", self._remove_participants),
            ("POST", "post_comment", self._post_comment),
            ("POST", "load_comments", self._load_comments),
            ("GET", "load_comments", self._load_comments),
            ("POST", "login_or_register", self._login_or_register),
            ("POST", "post_system_event_message", self._post_system_event),
            ("POST", "exports", self._create_export),
            ("GET", "exports", self._list_exports),
            ("GET", "exports/{unique_id}", self._get_export),
            ("DELETE", "exports/{unique_id}", self._delete_export),
            ("POST", "imports", self._create_import),
            ("GET", "imports", self._list_imports),
            ("POST", "reset_user_token", self._reset_user_token),
            ("GET", "get_user_rooms", self._get_user_rooms),
        ]

    # -- state helpers ---------------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def add_user(self, email: str, username: str | None = None, **extra: Any) -> dict[str, Any]:
        """Create (or return) a user directly, bypassing HTTP."""
        if email not in self.users:
            self.users[email] = {
                "id": self._next("user"),
                "email": email,
                "username": username or email.split("@")[0],
                "avatar_url": "",
                "token": secrets.token_hex(10),
                **extra,
            }
        return self.users[email]

    def add_room(
        self, name: str, participants: list[str], *, creator: str | None = None, type: str = "group"
    ) -> dict[str, Any]:
        """Create a room directly, bypassing HTTP; its participants become users."""
        for email in participants:
            self.add_user(email)
        room_id = self._next("room")
        self.rooms[room_id] = {
            "id": room_id,
            "name": name,
            "type": type,
            "creator": creator or (participants[0] if participants else ""),
            "participants": list(dict.fromkeys(participants)),
            "avatar_url": "",
            "unique_id": str(uuid.uuid4()),
            "options": None,
        }
        return self.rooms[room_id]

    def _room(self, room_id: Any, *, create_for: str | None = None) -> dict[str, Any]:
        key = str(room_id)
        for room in self.rooms.values():
            if str(room["id"]) == key or room["unique_id"] == key:
                return room
        if create_for is not None and not self.strict and key.isdigit():
            room = self.add_room(f"room {key}", [create_for], creator=create_for)
            del self.rooms[room["id"]]
            room["id"] = int(key)
            self.rooms[int(key)] = room
            self._ids["room"] = max(self._ids["room"], int(key))
            return room
        raise _Reject(404, f"room {key!r} not found")

    def _user(self, email: str, *, create: bool = False) -> dict[str, Any]:
        if email in self.users:
            return self.users[email]
        if create and not self.strict:
            return self.add_user(email)
        raise _Reject(404, f"user {email!r} not found")

    def _room_result(self, room: dict[str, Any]) -> dict[str, Any]:
        return {
            "creator": room["creator"],
            "participants": room["participants"],
            "room_id": room["id"],
            "room_name": room["name"],
            "room_type": room["type"],
        }

    def _participant(self, email: str, room: dict[str, Any]) -> dict[str, Any]:
        user = self.add_user(email)
        last = self._room_comments(room)
        last_id = last[0]["id"] if last else 0
        return {
            "avatar_url": user["avatar_url"],
            "email": email,
            "id": user["id"],
            "last_comment_read_id": last_id,
            "last_comment_received_id": last_id,
            "username": user["username"],
        }

    def _room_comments(self, room: dict[str, Any]) -> list[dict[str, Any]]:
        return [c for c in reversed(self.comments) if c["room_id"] == room["id"]]

    def _room_info(self, room: dict[str, Any], participants: bool) -> dict[str, Any]:
        last = self._room_comments(room)
        info: dict[str, Any] = {
            "last_comment_id": last[0]["id"] if last else 0,
            "last_comment_message": last[0]["message"] if last else "",
            "last_comment_timestamp": last[0]["timestamp"] if last else "0001-01-01T00:00:00Z",
            "room_avatar_url": room["avatar_url"],
            "room_id": room["id"],
            "room_name": room["name"],
            "room_type": room["type"],
            "unread_count": 0,
        }
        if participants:
            info["participants"] = [self._participant(e, room) for e in room["participants"]]
        return info

    def _add_comment(
        self, room: dict[str, Any], sender: dict[str, Any], message: str, **fields: Any
    ) -> dict[str, Any]:
        before = self._room_comments(room)
        comment_id = self._next("comment")
        now = datetime.now(UTC)
        comment = {
            "comment_before_id": before[0]["id"] if before else 0,
            "disable_link_preview": False,
            "email": sender["email"],
            "extras": None,
            "id": comment_id,
            "message": message,
            "payload": None,
            "room_id": room["id"],
            "room_name": room["name"],
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "topic_id": room["id"],
            "type": "text",
            "unique_temp_id": f"fake-{comment_id}",
            "unix_timestamp": int(now.timestamp()),
            "user_avatar": {"avatar": {"url": sender["avatar_url"]}},
            "user_avatar_url": sender["avatar_url"],
            "user_id": sender["id"],
            "username": sender["username"],
        }
        comment.update({k: v for k, v in fields.items() if v is not None})
        self.comments.append(comment)
        return comment

    # -- rooms -----------------------------------------------------------------------------------
    async def _create_room(self, p: Params) -> web.Response:
        _require(p, "name", "participants", "creator")
        participants = _as_list(p["participants"])
        for email in [p["creator"], *participants]:
            self._user(email, create=True)
        room = self.add_room(p["name"], [p["creator"], *participants], creator=p["creator"])
        return _ok(self._room_result(room))

    async def _get_or_create_room(self, p: Params) -> web.Response:
        emails = _as_list(p.get("emails"))
        if len(set(emails)) != 2:
            raise _Reject(400, f"emails must contain exactly 2 distinct emails, got {emails!r}")
        for email in emails:
            self._user(email, create=True)
        room = next(
            (
                r
                for r in self.rooms.values()
                if r["type"] == "single" and set(r["participants"]) == set(emails)
            ),
            None,
        )
        if room is None:
            room = self.add_room(" ".join(emails), emails, type="single")
            room["avatar_url"] = p.get("avatar_url") or ""
        comments = self._room_comments(room)[:PAGE_SIZE]
        last = comments[0] if comments else None
        return _ok(
            {
                "comments": comments,
                "room": {
                    "avatar_url": room["avatar_url"],
                    "chat_type": room["type"],
                    "id": room["id"],
                    "last_comment_id": last["id"] if last else 0,
                    "last_comment_message": last["message"] if last else "",
                    "last_topic_id": room["id"],
                    "options": room["options"],
                    "participants": [
                        {k: v for k, v in self._participant(e, room).items() if "comment" not in k}
                        for e in room["participants"]
                    ],
                    "room_name": room["name"],
                },
            }
        )

    async def _get_rooms_info(self, p: Params) -> web.Response:
        _require(p, "room_id", "user_email")
        ids = {str(i) for i in _as_list(p["room_id"])}
        rooms = [r for r in self.rooms.values() if str(r["id"]) in ids]
        return _ok({"rooms_info": [self._room_info(r, False) for r in rooms]})

    async def _add_participants(self, p: Params) -> web.Response:
        _require(p, "room_id", "emails")
        room = self._room(p["room_id"])
        for email in _as_list(p["emails"]):
            self._user(email, create=True)
            if email not in room["participants"]:
                room["participants"].append(email)
        return _ok(self._room_result(room))

    async def _remove_participants(self, p: Params) -> web.Response:
        _require(p, "room_id", "emails")
        room = self._room(p["room_id"])
        gone = set(_as_list(p["emails"]))
        room["participants"] = [e for e in room["participants"] if e not in gone]
        return _ok(self._room_result(room))

    async def _get_user_rooms(self, p: Params) -> web.Response:
        _require(p, "user_email")
        page = int(p.get("page") or 1)
        mine = sorted(
            (r for r in self.rooms.values() if p["user_email"] in r["participants"]),
            key=lambda r: -int(r["id"]),
        )
        chunk = mine[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        show = _as_bool(p.get("show_participants", False))
        return _ok(
            {
                "meta": {"current_page": page, "total_room": len(mine)},
                "rooms_info": [self._room_info(r, show) for r in chunk],
            }
        )

    # -- comments --------------------------------------------------------------------------------
    async def _post_comment(self, p: Params) -> web.Response:
        sender_email = p.get("sender_email") or p.get("user_id")
        if not sender_email:
            raise _Reject(400, "sender_email (v2) or user_id (v2.1) is required")
        _require(p, "room_id")
        if p.get("message") is None:
            raise _Reject(400, "message is required", {"message": ["is required"]})
        kind = p.get("type") or "text"
        if kind == "system_event":
            raise _Reject(400, "type system_event must be posted with post_system_event_message")
        payload = p.get("payload")
        if isinstance(payload, str) and payload:
            try:
                payload = json.loads(payload)
            except ValueError:
                raise _Reject(400, f"payload is not a valid JSON string: {payload!r}") from None
        room = self._room(p["room_id"], create_for=sender_email)
        sender = self._user(sender_email, create=True)
        comment = self._add_comment(
            room,
            sender,
            p["message"],
            type=kind,
            payload=payload or None,
            unique_temp_id=p.get("unique_temp_id") or None,
            disable_link_preview=_as_bool(p.get("disable_link_preview", False)),
            extras=p.get("extras"),
        )
        self._posted.append({**p, "payload": payload})
        return _ok({"comment": comment})

    async def _load_comments(self, p: Params) -> web.Response:
        _require(p, "room_id")
        room = self._room(p["room_id"])
        page, limit = int(p.get("page") or 1), int(p.get("limit") or PAGE_SIZE)
        comments = self._room_comments(room)[(page - 1) * limit : page * limit]
        return _ok({"comments": comments})

    async def _post_system_event(self, p: Params) -> web.Response:
        _require(p, "system_event_type", "room_id", "subject_email")
        kind = p["system_event_type"]
        if kind not in SYSTEM_EVENT_TYPES:
            raise _Reject(
                400, f"system_event_type {kind!r} must be one of {sorted(SYSTEM_EVENT_TYPES)}"
            )
        objects = _as_list(p.get("object_email"))
        if kind in {"add_member", "remove_member"} and not objects:
            raise _Reject(
                400, f"object_email is required for {kind}", {"object_email": ["required"]}
            )
        if kind in {"change_room_name", "create_room"} and not p.get("updated_room_name"):
            raise _Reject(400, f"updated_room_name is required for {kind}")
        room = self._room(p["room_id"], create_for=p["subject_email"])
        subject = self._user(p["subject_email"], create=True)
        if kind in {"change_room_name", "create_room"}:
            room["name"] = p["updated_room_name"]
        payload = p.get("payload")
        if isinstance(payload, str) and payload:
            payload = json.loads(payload)
        if kind != "custom":
            obj = self.users.get(objects[0]) if objects else None
            payload = {
                "type": kind,
                "subject_username": subject["username"],
                "subject_email": subject["email"],
                "object_username": obj["username"] if obj else "",
                "object_email": obj["email"] if obj else "",
                "room_name": room["name"],
            }
        system = self.add_user(f"system@{self.app_id}.qiscus.com", "System")
        message = f"{subject['username']} {kind.replace('_', ' ')}"
        comment = self._add_comment(room, system, message, type="system_event", payload=payload)
        self._events.append(dict(p))
        return _ok({"comment": comment})

    # -- users -----------------------------------------------------------------------------------
    async def _login_or_register(self, p: Params) -> web.Response:
        _require(p, "email", "username")
        user = self.add_user(p["email"], p["username"])
        user["username"] = p["username"]
        for key in ("avatar_url", "password", "device_token", "device_platform"):
            if p.get(key):
                user[key] = p[key]
        return _ok(
            {"user": {k: user[k] for k in ("id", "email", "username", "avatar_url", "token")}}
        )

    async def _reset_user_token(self, p: Params) -> web.Response:
        _require(p, "user_email")
        user = self._user(p["user_email"])
        user["token"] = secrets.token_hex(10)
        public = {k: v for k, v in user.items() if k not in {"password", "device_token"}}
        return _ok({"user": {**public, "avatar": {"avatar": {"url": user["avatar_url"]}}}})

    # -- exports and imports ---------------------------------------------------------------------
    async def _create_export(self, p: Params) -> web.Response:
        _require(p, "type", "start_date", "end_date")
        if p["type"] not in {"users", "rooms", "comments"}:
            raise _Reject(400, f"type {p['type']!r} must be one of users, rooms, comments")
        for key in ("start_date", "end_date"):
            try:
                date.fromisoformat(str(p[key]))
            except ValueError:
                raise _Reject(400, f"{key} {p[key]!r} must use the format YYYY-MM-DD") from None
        created = _now()
        unique_id = str(uuid.uuid4())
        self.exports[unique_id] = {
            "created_at": created,
            "download_url": "",
            "error_message": "",
            "original_filename": f"{created}_exported_{p['type']}.json",
            "percentage": 0,
            "resource_name": p["type"],
            "size": 0,
            "status": "started",
            "total_rows": 0,
            "unique_id": unique_id,
        }
        return _ok(self.exports[unique_id])

    def _export_rows(self, resource: str) -> list[Any]:
        if resource == "users":
            return [{k: v for k, v in u.items() if k != "password"} for u in self.users.values()]
        if resource == "rooms":
            return list(self.rooms.values())
        return list(self.comments)

    async def _get_export(self, p: Params) -> web.Response:
        export = self.exports.get(p["unique_id"])
        if export is None:
            raise _Reject(404, f"backup {p['unique_id']!r} not found")
        if export["percentage"] < 100:
            export["percentage"] += 50
            export["status"] = "on progress" if export["percentage"] < 100 else "finished"
        if export["status"] == "finished" and not export["download_url"]:
            rows = self._export_rows(export["resource_name"])
            export["_data"] = json.dumps(rows).encode()
            export.update(
                download_url=f"{self.base_url}/download/{export['unique_id']}.json",
                size=len(export["_data"]),
                total_rows=len(rows),
            )
        return _ok({"backup_history": self._public(export)})

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    async def _list_exports(self, p: Params) -> web.Response:
        page = int(p.get("page") or 1)
        recent = list(reversed(self.exports.values()))[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return _ok({"backup_histories": [self._public(e) for e in recent]})

    async def _delete_export(self, p: Params) -> web.Response:
        export = self.exports.pop(p["unique_id"], None)
        if export is None:
            raise _Reject(404, f"backup {p['unique_id']!r} not found")
        return _ok({"backup_history": self._public(export)})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        export = self.exports.get(request.match_info["unique_id"])
        if export is None or "_data" not in export:
            return web.Response(status=404, text="not found")
        return web.Response(body=export["_data"], content_type="application/json")

    async def _create_import(self, p: Params) -> web.Response:
        _require(p, "type", "file")
        if p["type"] not in {"users", "rooms", "comments"}:
            raise _Reject(400, f"type {p['type']!r} must be one of users, rooms, comments")
        upload = p["file"]
        if not isinstance(upload, UploadedFile):
            raise _Reject(400, "file must be sent as a multipart file part")
        if len(upload.data) > IMPORT_LIMIT:
            raise _Reject(400, f"file {upload.filename!r} is larger than the 4 MB import limit")
        try:
            rows = json.loads(upload.data)
        except ValueError:
            raise _Reject(400, f"file {upload.filename!r} is not valid JSON") from None
        if not isinstance(rows, list):
            raise _Reject(400, f"file {upload.filename!r} must hold a JSON array")
        unique_id = str(uuid.uuid4())
        self.imports[unique_id] = {
            "created_at": _now(),
            "errors": {"Message": "", "Data": None},
            "original_filename": upload.filename or "import.json",
            "resource_name": p["type"],
            "size": len(upload.data),
            "status": "started",
            "total_rows": 0,
            "unique_id": unique_id,
            "_rows": rows,
        }
        self.imported_rows.append((p["type"], rows))
        return _ok({"backup_history": self._public(self.imports[unique_id])})

    async def _list_imports(self, p: Params) -> web.Response:
        for record in self.imports.values():
            if record["status"] == "started":
                record.update(status="finished", total_rows=len(record["_rows"]), errors={})
                self._apply_import(record["resource_name"], record["_rows"])
        page = int(p.get("page") or 1)
        recent = list(reversed(self.imports.values()))[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return _ok({"backup_histories": [self._public(r) for r in recent]})

    def _apply_import(self, resource: str, rows: list[Any]) -> None:
        for row in rows:
            if not isinstance(row, dict):
                continue
            if resource == "users" and row.get("Email"):
                self.add_user(row["Email"], row.get("Name"))
            elif resource == "rooms" and row.get("ParticipantEmails"):
                room = self.add_room(
                    row.get("Name", ""),
                    list(row["ParticipantEmails"]),
                    creator=row.get("CreatorEmail"),
                    type=row.get("Type", "group"),
                )
                room["unique_id"] = row.get("UniqueId") or room["unique_id"]
            elif resource == "comments" and row.get("RoomUniqueId"):
                try:
                    room = self._room(row["RoomUniqueId"])
                except _Reject:
                    continue  # the real server skips rows whose room is missing
                sender = self.add_user(row.get("CreatorEmail", "unknown@example.com"))
                self._add_comment(
                    room, sender, row.get("Message", ""), type=row.get("Type", "text")
                )
