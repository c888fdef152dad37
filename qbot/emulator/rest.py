"""The Qiscus server REST API a bot calls, served under ``/api/v2/rest`` and ``/api/v2.1/rest``.

Requests are checked like Qiscus does (credentials, required fields, known rooms and users) and
errors come back in Qiscus's shape: ``{"status": 4xx, "error": {"message", "errors"}}``. Every
call is recorded for the inspector.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from qbot._json import loads
from qbot.emulator.core import SYSTEM_EVENT_TYPES, Emulator

EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("qbot_emulator", Emulator)

_POSTABLE_TYPES = frozenset(
    {
        "text",
        "buttons",
        "button_postback_response",
        "card",
        "carousel",
        "custom",
        "account_linking",
        "reply",
        "file_attachment",
        "location",
        "contact_person",
    }
)


class RestError(Exception):
    """A request Qiscus would refuse; becomes a JSON error response."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        errors = {self.field: [self.message]} if self.field else {}
        return web.json_response(
            {
                "status": self.status,
                "error": {
                    "message": self.message,
                    "errors": errors,
                    "detailed_messages": [self.message],
                },
            },
            status=self.status,
        )


def _ok(results: dict[str, Any]) -> web.Response:
    return web.json_response({"status": 200, "results": results})


def _flatten(multi: MultiMapping[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in multi:
        name = key.removesuffix("[]")
        values = multi.getall(key)
        out[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
    return out


async def _params(request: web.Request) -> dict[str, Any]:
    params = _flatten(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json(loads=loads)
            except ValueError as e:
                raise RestError(400, f"request body is not valid JSON: {e}") from e
            if not isinstance(body, dict):
                raise RestError(400, f"request body must be a JSON object, got {body!r:.80}")
            params.update({k.removesuffix("[]"): v for k, v in body.items()})
        else:
            params.update(_flatten(await request.post()))  # type: ignore[arg-type]
    return params


def _check_auth(request: web.Request, emulator: Emulator) -> None:
    cfg = emulator.config
    secret = request.headers.get("QISCUS-SDK-SECRET") or request.headers.get("QISCUS_SDK_SECRET")
    if secret is None:
        raise RestError(401, "missing header QISCUS-SDK-SECRET: send the app's secret key")
    if not hmac.compare_digest(secret, cfg.secret_key):
        raise RestError(401, "wrong QISCUS-SDK-SECRET: use the secret key the emulator runs with")
    app_id = request.headers.get("QISCUS-SDK-APP-ID") or request.headers.get("QISCUS_SDK_APP_ID")
    if app_id is None and "/v2.1/" in request.path:
        raise RestError(401, "missing header QISCUS-SDK-APP-ID: v2.1 needs the app id")
    if app_id is not None and app_id != cfg.app_id:
        raise RestError(401, f"unknown app id {app_id!r}: the emulator serves {cfg.app_id!r}")


def _required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "" or value == []:
        raise RestError(400, f"{name} is required", name)
    return value


def _as_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RestError(400, f"{name} must be a list of emails, got {value!r:.80}", name)


def _as_int(value: Any, name: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise RestError(400, f"{name} must be an integer, got {value!r:.80}", name) from e


def _json_value(value: Any, name: str) -> Any:
    if isinstance(value, str) and value.strip():
        try:
            return loads(value)
        except ValueError as e:
            raise RestError(400, f"{name} must be a JSON object: {e}", name) from e
    return value if value != "" else None


class RestApi:
    """Handlers of the REST endpoints; each checks auth and records itself for the inspector."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator

    async def _room(self, value: Any) -> dict[str, Any]:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            room = await self.em.store.get_room(int(value))
        else:
            room = await self.em.store.get_room_by_unique_id(str(value))
        if room is None:
            raise RestError(404, f"room {value!r} not found", "room_id")
        return room

    async def _user(self, email: str, field: str) -> dict[str, Any]:
        user = await self.em.store.get_user(email)
        if user is None:
            raise RestError(
                404, f"user {email!r} not found: register it with login_or_register", field
            )
        return user

    def routes(self) -> list[web.RouteDef]:
        """The endpoints, once for each API version."""
        table = {
            "login_or_register": self.login_or_register,
            "create_room": self.create_room,
            "get_or_create_room_with_target": self.get_or_create_room_with_target,
            "post_comment": self.post_comment,
            "post_system_event_message": self.post_system_event_message,
            "load_comments": self.load_comments,
            "get_user_rooms": self.get_user_rooms,
            "get_rooms_info": self.get_rooms_info,
            "add_room_participants": self.add_room_participants,
            "remove_room_participants": self.remove_room_participants,
        }
        routes = []
        for version in ("v2", "v2.1"):
            for name, fn in table.items():
                routes.append(web.route("*", f"/api/{version}/rest/{name}", self._wrap(fn)))
        return routes

    def _wrap(self, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            params: dict[str, Any] = {}
            try:
                _check_auth(request, self.em)
                params = await _params(request)
                response: web.Response = await fn(params)
            except RestError as e:
                response = e.response()
            room_id = params.get("room_id")
            await self.em.record_call(
                int(room_id) if isinstance(room_id, int | str) and str(room_id).isdigit() else None,
                request.method,
                request.path,
                params,
                response.status,
            )
            return response

        return handler

    async def login_or_register(self, params: dict[str, Any]) -> web.Response:
        email = str(_required(params, "email"))
        name = str(params.get("username") or email.split("@")[0])
        user = await self.em.store.upsert_user(email, name, str(params.get("avatar_url") or ""))
        return _ok({"user": user})

    async def create_room(self, params: dict[str, Any]) -> web.Response:
        name = str(params.get("name") or _required(params, "room_name"))
        creator = str(_required(params, "creator"))
        members = _as_list(_required(params, "participants"), "participants")
        for email in [creator, *members]:
            await self._user(email, "participants")
        room = await self.em.store.create_room(
            name=name,
            room_type="group",
            creator=creator,
            participants=members,
            unique_id=params.get("room_unique_id") or None,
            avatar_url=str(params.get("avatar_url") or ""),
        )
        self.em.publish({"event": "room", "room": room})
        return _ok(self._room_summary(room))

    async def get_or_create_room_with_target(self, params: dict[str, Any]) -> web.Response:
        emails = _as_list(_required(params, "emails"), "emails")
        if len(emails) != 2:
            raise RestError(400, f"emails must hold exactly 2 emails, got {emails!r}", "emails")
        for email in emails:
            await self._user(email, "emails")
        room = await self.em.store.find_single_room(emails[0], emails[1])
        if room is None:
            room = await self.em.store.create_room(
                name=" ".join(emails),
                room_type="single",
                creator=emails[0],
                participants=[emails[1]],
            )
            self.em.publish({"event": "room", "room": room})
        comments = await self.em.store.comments(room["id"])
        return _ok({"comments": comments, "room": self._room_detail(room)})

    async def post_comment(self, params: dict[str, Any]) -> web.Response:
        sender_email = params.get("sender_email") or params.get("user_id")
        if not sender_email:
            raise RestError(400, "sender_email (v2) or user_id (v2.1) is required", "sender_email")
        sender = await self._user(str(sender_email), "sender_email")
        room = await self._room(_required(params, "room_id"))
        comment_type = str(params.get("type") or "text")
        if comment_type == "system_event":
            raise RestError(
                400, "type 'system_event' cannot be posted here: use post_system_event_message"
            )
        if comment_type not in _POSTABLE_TYPES:
            raise RestError(400, f"unknown comment type {comment_type!r}", "type")
        payload = _json_value(params.get("payload"), "payload")
        extras = _json_value(params.get("extras"), "extras")
        message = str(params.get("message") or "")
        payload = await self._check_payload(comment_type, payload, message)
        if not message and comment_type == "text":
            raise RestError(400, "message is required for a text comment", "message")
        if len(message) > 4000:
            raise RestError(400, f"message is {len(message)} characters; the limit is 4000")
        comment = await self.em.store.add_comment(
            room_id=room["id"],
            email=sender["email"],
            comment_type=comment_type,
            message=message,
            payload=payload,
            extras=extras,
            unique_temp_id=params.get("unique_temp_id") or None,
            disable_link_preview=str(params.get("disable_link_preview")).lower() == "true",
        )
        await self.em.rest_post(comment)
        return _ok({"comment": comment})

    async def _check_payload(self, comment_type: str, payload: Any, message: str) -> Any:
        if comment_type == "text":
            return payload
        if not isinstance(payload, dict):
            raise RestError(
                400, f"payload of a {comment_type!r} comment must be an object", "payload"
            )
        if comment_type == "buttons" and not isinstance(payload.get("buttons"), list):
            raise RestError(400, "payload.buttons must be a list of buttons", "payload")
        if comment_type == "carousel" and not isinstance(payload.get("cards"), list):
            raise RestError(400, "payload.cards must be a list of cards", "payload")
        if comment_type == "card":
            # Qiscus takes image_url (v2) or image (v2.1) and always answers with image.
            payload = dict(payload)
            if "image_url" in payload:
                payload["image"] = payload.pop("image_url")
        if comment_type == "account_linking" and not payload.get("url"):
            raise RestError(400, "payload.url of an account_linking comment is required")
        if comment_type == "reply":
            replied = await self.em.store.get_comment(
                _as_int(payload.get("replied_comment_id"), "replied_comment_id")
            )
            if replied is None:
                raise RestError(
                    404, f"replied comment {payload.get('replied_comment_id')!r} not found"
                )
            payload = {
                **payload,
                "text": payload.get("text") or message,
                "replied_comment_type": replied["type"],
                "replied_comment_message": replied["message"],
                "replied_comment_payload": replied["payload"],
                "replied_comment_sender_username": replied["username"],
                "replied_comment_sender_email": replied["email"],
            }
        return payload

    async def post_system_event_message(self, params: dict[str, Any]) -> web.Response:
        event_type = str(_required(params, "system_event_type"))
        if event_type not in SYSTEM_EVENT_TYPES:
            raise RestError(
                400,
                f"unknown system_event_type {event_type!r}; one of {', '.join(SYSTEM_EVENT_TYPES)}",
                "system_event_type",
            )
        room = await self._room(_required(params, "room_id"))
        subject = str(params.get("subject_email") or "")
        if event_type != "custom":
            await self._user(str(_required(params, "subject_email")), "subject_email")
        objects = _as_list(params.get("object_email") or [], "object_email")
        if event_type in ("add_member", "remove_member") and not objects:
            raise RestError(400, f"object_email is required for {event_type!r}", "object_email")
        payload = _json_value(params.get("payload"), "payload")
        comment = await self.em.system_event(
            room["id"],
            event_type,
            subject,
            object_emails=objects,
            room_name=str(params.get("updated_room_name") or room["name"]),
            payload=payload if isinstance(payload, dict) else None,
        )
        if event_type == "change_room_name" and params.get("updated_room_name"):
            await self.em.store.rename_room(room["id"], str(params["updated_room_name"]))
        return _ok({"comment": comment})

    async def load_comments(self, params: dict[str, Any]) -> web.Response:
        room = await self._room(_required(params, "room_id"))
        comments = await self.em.store.comments(
            room["id"],
            limit=min(_as_int(params.get("limit"), "limit", 20), 100),
            page=_as_int(params.get("page"), "page", 1),
        )
        return _ok({"comments": comments})

    async def get_user_rooms(self, params: dict[str, Any]) -> web.Response:
        email = str(_required(params, "user_email"))
        await self._user(email, "user_email")
        page = _as_int(params.get("page"), "page", 1)
        rooms = await self.em.store.user_rooms(email)
        show = str(params.get("show_participants")).lower() == "true"
        info = [self._room_info(r, show) for r in rooms[(page - 1) * 20 : page * 20]]
        return _ok({"meta": {"current_page": page, "total_room": len(rooms)}, "rooms_info": info})

    async def get_rooms_info(self, params: dict[str, Any]) -> web.Response:
        ids = _as_list(_required(params, "room_id"), "room_id")
        rooms = [await self._room(i) for i in ids]
        return _ok({"rooms_info": [self._room_info(r, False) for r in rooms]})

    async def add_room_participants(self, params: dict[str, Any]) -> web.Response:
        room = await self._room(_required(params, "room_id"))
        emails = _as_list(_required(params, "emails"), "emails")
        for email in emails:
            await self._user(email, "emails")
        await self.em.store.add_participants(room["id"], emails)
        return await self._participants_changed(room["id"])

    async def remove_room_participants(self, params: dict[str, Any]) -> web.Response:
        room = await self._room(_required(params, "room_id"))
        emails = _as_list(_required(params, "emails"), "emails")
        await self.em.store.remove_participants(room["id"], emails)
        return await self._participants_changed(room["id"])

    async def _participants_changed(self, room_id: int) -> web.Response:
        room = await self._room(room_id)
        self.em.publish({"event": "room", "room": room})
        return _ok(self._room_summary(room))

    @staticmethod
    def _room_summary(room: dict[str, Any]) -> dict[str, Any]:
        return {
            "creator": room["creator"],
            "participants": [p["email"] for p in room["participants"]],
            "room_id": room["id"],
            "room_id_str": room["id_str"],
            "room_name": room["name"],
            "room_type": room["type"],
            "room_unique_id": room["unique_id"],
        }

    @staticmethod
    def _room_detail(room: dict[str, Any]) -> dict[str, Any]:
        return {
            "avatar_url": room["avatar_url"],
            "chat_type": room["type"],
            "id": room["id"],
            "id_str": room["id_str"],
            "last_comment_id": room["last_comment_id"],
            "last_comment_message": room["last_comment_message"],
            "last_topic_id": room["id"],
            "options": room["options"],
            "participants": room["participants"],
            "room_name": room["name"],
            "unique_id": room["unique_id"],
        }

    @staticmethod
    def _room_info(room: dict[str, Any], show_participants: bool) -> dict[str, Any]:
        info = {
            "last_comment_id": room["last_comment_id"],
            "last_comment_message": room["last_comment_message"],
            "last_comment_timestamp": room["last_comment_timestamp"],
            "room_avatar_url": room["avatar_url"],
            "room_id": room["id"],
            "room_id_str": room["id_str"],
            "room_name": room["name"],
            "room_type": room["type"],
            "unread_count": 0,
        }
        if show_participants:
            info["participants"] = room["participants"]
        return info
