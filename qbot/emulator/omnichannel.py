"""The Omnichannel side of the emulator: ``/bot``, the agent desk calls and the resolved webhook.

Served on the emulator's own host, at the real paths, so a bot points both ``qiscus.base_url``
and ``omnichannel.base_url`` at the emulator:

    ``POST /{app_code}/bot``                           send as the bot (comments land in the room)
    ``POST /bot/{room_id}/activate``                   bot on/off for a room
    ``POST /api/v1/admin/service/assign_agent``        assign an agent (who joins the room)
    ``GET  /api/v2/admin/service/available_agents``    agents who can take a room
    ``GET  /api/v2/admin/agents/by_division``          agents of divisions
    ``GET  /api/v2/admin/agents``, ``/api/v2/divisions``
    ``POST /api/v1/admin/service/mark_as_resolved``    resolve: sends the resolved webhook
    ``GET  /api/v1/room_tag/{room_id}``, ``POST /api/v1/room_tag/create``
    ``GET|POST /api/v1/qiscus/room/{room_id}/user_info``
    ``GET  /api/v2/customer_rooms/{room_id}``, ``POST /api/v2/customer_rooms``
    ``GET  /api/v2/channels``, ``/api/v1/admin/office_hours``
    ``POST /api/v1/app/bot/integrate``, ``/api/v1/app/webhook/mark_as_resolved``
    ``GET  /api/v2/admin/hsm``, ``POST /whatsapp/v1/{app_code}/{channel_id}/messages``
                                                       WhatsApp templates (`qbot.emulator.whatsapp`)
    ``GET  /emulator/api/omnichannel``                the desk's state, for the page

Agents and divisions are seeded (:data:`SEED_AGENTS`, :data:`SEED_DIVISIONS`); the desk's
state (who handles which room, tags, customer properties) lives in memory for the emulator's
lifetime. Every call is recorded for the inspector like the REST calls. As the real endpoint
does, ``/bot`` answers a wrong ``sender_email`` with HTTP 200 and a plain-text error.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from qbot._json import loads
from qbot.emulator.calls import BodyError, Call
from qbot.emulator.core import Emulator
from qbot.emulator.desk import (
    OFFICE_HOURS,
    SEED_CHANNELS,
    DeskError,
    OmnichannelDesk,
    Service,
    as_bool,
    as_int,
    customer_of,
    required,
    room_number,
)
from qbot.emulator.whatsapp import TemplateCatalog
from qbot.emulator.whatsapp import page_routes as whatsapp_page_routes

__all__ = ["OMNICHANNEL_KEY", "OmnichannelApi", "register_omnichannel"]

_BOT_TYPES = frozenset(
    {"text", "buttons", "card", "carousel", "file_attachment", "custom", "reply", "account_linking"}
)
_PAYLOAD_LISTS = {"buttons": "buttons", "carousel": "cards"}


def _ok(data: Any) -> web.Response:
    return web.json_response({"status": 200, "data": data})


def _params(call: Call, match_info: Mapping[str, str]) -> dict[str, Any]:
    """The call's path, query and body fields in one dict (``a[]`` names lose their ``[]``)."""
    params: dict[str, Any] = dict(match_info)
    params.update(call.query)
    if call.body is None:
        return params
    if not isinstance(call.body, dict):
        raise DeskError(400, f"request body must be a JSON object, got {call.body!r:.80}")
    params.update({k.removesuffix("[]"): v for k, v in call.body.items()})
    return params


class OmnichannelApi:
    """The Omnichannel endpoints over a desk: each call checked, fault-injectable, recorded."""

    def __init__(self, desk: OmnichannelDesk) -> None:
        self.desk = desk
        self.em = desk.em
        self.whatsapp = desk.whatsapp = TemplateCatalog(desk)

    def _sorted(self, agents: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
        return sorted(
            agents, key=lambda a: a["current_customer_count"], reverse=str(order) == "desc"
        )

    def routes(self) -> list[web.RouteDef]:
        """The Omnichannel endpoints, each checked, fault-injectable and recorded."""
        table: list[tuple[str, str, Callable[..., Awaitable[web.StreamResponse]]]] = [
            ("POST", "/{app_code}/bot", self.send_bot),
            ("POST", "/bot/{room_id}/activate", self.activate),
            ("POST", "/api/v1/admin/service/assign_agent", self.assign_agent),
            ("GET", "/api/v2/admin/service/available_agents", self.available_agents),
            ("GET", "/api/v2/admin/agents/by_division", self.agents_by_division),
            ("GET", "/api/v2/admin/agents", self.list_agents),
            ("GET", "/api/v2/divisions", self.list_divisions),
            ("POST", "/api/v1/admin/service/mark_as_resolved", self.mark_as_resolved),
            ("GET", "/api/v1/room_tag/{room_id}", self.room_tags),
            ("POST", "/api/v1/room_tag/create", self.create_tag),
            ("GET", "/api/v1/qiscus/room/{room_id}/user_info", self.user_info),
            ("POST", "/api/v1/qiscus/room/{room_id}/user_info", self.set_user_info),
            ("GET", "/api/v2/customer_rooms/{room_id}", self.customer_room),
            ("POST", "/api/v2/customer_rooms", self.customer_rooms),
            ("GET", "/api/v2/channels", self.channels),
            ("GET", "/api/v1/admin/office_hours", self.office_hours),
            ("POST", "/api/v1/app/bot/integrate", self.integrate_bot),
            ("POST", "/api/v1/app/webhook/mark_as_resolved", self.integrate_resolved),
            *self.whatsapp.routes(),
        ]
        return [web.route(method, path, self._wrap(fn)) for method, path, fn in table]

    def _wrap(
        self, fn: Callable[[dict[str, Any], web.Request], Awaitable[web.StreamResponse]]
    ) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            # The emulator's one call log: recorded in ``Emulator.calls``, faults of
            # ``Emulator.fail_next``/``delay``/``hang`` (match these calls by full path).
            log = self.em.call_log
            params: dict[str, Any] = dict(request.match_info)
            response: web.StreamResponse
            try:
                try:
                    call = await log.record(request)
                except BodyError as e:
                    raise DeskError(400, str(e)) from e
                params = _params(call, request.match_info)
                injected = await log.before(call)
                if injected is not None:
                    response = injected
                else:
                    self._check_auth(request)
                    response = await fn(params, request)
            except DeskError as e:
                response = web.json_response(
                    {"status": e.status, "error": {"message": e.message}}, status=e.status
                )
            room = params.get("room_id")
            await self.em.record_call(
                room_number(room) if room is not None else None,
                request.method,
                request.path,
                params,
                response.status,
            )
            log.changed()
            return response

        return handler

    def _check_auth(self, request: web.Request) -> None:
        cfg = self.em.config
        secret = (
            request.headers.get("Qiscus-Secret-Key")
            or request.headers.get("QISCUS_SDK_SECRET")
            or request.headers.get("QISCUS-SDK-SECRET")
        )
        if secret is None:
            raise DeskError(401, "missing header Qiscus-Secret-Key: send the app's secret key")
        if not hmac.compare_digest(secret, cfg.secret_key):
            raise DeskError(
                401, "wrong Qiscus-Secret-Key: use the secret key the emulator runs with"
            )
        app_id = request.headers.get("Qiscus-App-Id")
        is_bot = request.path.endswith("/bot")
        if app_id is None and not is_bot:
            raise DeskError(401, "missing header Qiscus-App-Id: send the app code")
        if app_id is not None and app_id != cfg.app_id:
            raise DeskError(401, f"unknown app code {app_id!r}: the emulator serves {cfg.app_id!r}")

    async def send_bot(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        if params["app_code"] != self.em.config.app_id:
            raise DeskError(404, f"unknown app code {params['app_code']!r} in the /bot path")
        if params.get("sender_email") != self.desk.admin_email:
            # What the real endpoint does: a plain-text error with HTTP 200.
            return web.Response(status=200, text="sender_email is invalid")
        service = await self.desk.service(required(params, "room_id"))
        kind = str(params.get("type") or "text")
        if kind not in _BOT_TYPES:
            raise DeskError(400, f"unknown message type {kind!r}")
        payload = params.get("payload")
        if isinstance(payload, str) and payload.strip():
            try:
                payload = loads(payload)
            except ValueError as e:
                raise DeskError(400, f"payload must be a JSON object: {e}") from e
        if kind != "text" and not isinstance(payload, dict):
            raise DeskError(400, f"payload of a {kind!r} message must be an object")
        listed = _PAYLOAD_LISTS.get(kind)
        if listed and not isinstance(payload.get(listed), list):  # type: ignore[union-attr]
            raise DeskError(400, f"payload.{listed} must be a list")
        if kind == "file_attachment" and not payload.get("url"):  # type: ignore[union-attr]
            raise DeskError(400, "payload.url of a file_attachment is required")
        message = str(params.get("message") or "")
        if not message and kind == "text":
            raise DeskError(400, "message is required for a text message")
        await self.desk.ensure_admin()
        comment = await self.em.store.add_comment(
            room_id=service.room_id,
            email=self.desk.admin_email,
            comment_type=kind,
            message=message,
            payload=payload if isinstance(payload, dict) else None,
            extras=params.get("extras") if isinstance(params.get("extras"), dict) else None,
        )
        # Shown, never echoed to the bot webhook: the admin is not the bot's Chat SDK user.
        self.em.publish({"event": "comment", "comment": comment})
        return _ok({"comment": comment})

    async def activate(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        active = as_bool(required(params, "is_active"), "is_active")
        service = await self.desk.service(params["room_id"])
        service.is_handled_by_bot = active
        service.is_waiting = not active and not service.agent_ids and not service.resolved
        return _ok(service.record())

    async def assign_agent(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        replace = params.get("replace_latest_agent")
        agent = await self.desk.assign(
            required(params, "room_id"),
            required(params, "agent_id"),
            replace=replace is not None and as_bool(replace, "replace_latest_agent"),
        )
        return _ok({"added_agent": agent})

    async def available_agents(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        await self.desk.service(required(params, "room_id"))
        views = [self.desk.agent_view(i) for i in self.desk.agents]
        available = [a for a in views if a["is_available"]]
        return _ok({"agents": self._sorted(available, "asc")})

    async def agents_by_division(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        raw = required(params, "division_ids")
        wanted = {as_int(v, "division_ids") for v in (raw if isinstance(raw, list) else [raw])}
        views = [
            self.desk.agent_view(i)
            for i, a in self.desk.agents.items()
            if wanted & {*a["division_ids"]}
        ]
        if params.get("is_available") is not None:
            on = as_bool(params["is_available"], "is_available")
            views = [a for a in views if a["is_available"] == on]
        views = self._sorted(views, params.get("sort", "asc"))
        page = as_int(params.get("page", 1), "page")
        limit = as_int(params.get("limit", 20), "limit")
        return _ok(views[(page - 1) * limit : page * limit])

    async def list_agents(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        views = [self.desk.agent_view(i) for i in self.desk.agents]
        search = str(params.get("search") or "").casefold()
        scope = str(params.get("scope") or "")
        if search:
            fields = [scope] if scope in ("name", "email") else ["name", "email"]
            views = [a for a in views if any(search in str(a[f]).casefold() for f in fields)]
        page = as_int(params.get("page", 1), "page")
        limit = as_int(params.get("limit", 20), "limit")
        meta = {"total_count": len(views), "page": page, "limit": limit}
        return web.json_response(
            {
                "status": 200,
                "data": {"agents": views[(page - 1) * limit : page * limit]},
                "meta": meta,
            }
        )

    async def list_divisions(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        return _ok(list(self.desk.divisions))

    async def mark_as_resolved(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        notes = params.get("notes")
        body = await self.desk.resolve(
            required(params, "room_id"), notes=str(notes) if notes is not None else None
        )
        if params.get("last_comment_id") is not None:
            body["service"]["last_comment_id"] = str(params["last_comment_id"])
        return _ok({"service": body["service"]})

    def _tag(self, name: str) -> dict[str, Any]:
        tag_id = self.desk.tag_id(name)
        return {"id": tag_id, "name": name}

    async def room_tags(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        service = await self.desk.service(params["room_id"])
        return _ok([self._tag(t) for t in service.tags])

    async def create_tag(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        service = await self.desk.service(required(params, "room_id"))
        name = str(required(params, "tag")).strip()
        if name not in service.tags:
            service.tags.append(name)
        return _ok(self._tag(name))

    async def user_info(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        service = await self.desk.service(params["room_id"])
        return _ok({"extras": {"user_properties": list(service.user_properties)}})

    async def set_user_info(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        service = await self.desk.service(params["room_id"])
        props = params.get("user_properties")
        if not isinstance(props, list) or not all(
            isinstance(p, dict) and isinstance(p.get("key"), str) for p in props
        ):
            raise DeskError(400, "user_properties must be a list of {key, value} objects")
        # As the real API: the list replaces what was there.
        service.user_properties = [{"key": p["key"], "value": p.get("value")} for p in props]
        return _ok({"extras": {"user_properties": list(service.user_properties)}})

    async def _customer_room(self, service: Service) -> dict[str, Any]:
        room = await self.em.store.get_room(service.room_id)
        agents = [self.desk.agent_view(i) for i in service.agent_ids]
        customer = await customer_of(self.desk, service)
        return {
            "id": service.room_id,
            "room_id": str(service.room_id),
            "name": room["name"] if room else "",
            "source": service.source,
            "channel_id": service.channel_id,
            "user_id": customer.get("user_id"),
            "is_handled_by_bot": service.is_handled_by_bot,
            "is_waiting": service.is_waiting,
            "is_resolved": service.resolved,
            "last_comment_text": room["last_comment_message"] if room else None,
            "agents": agents,
            "tags": list(service.tags),
        }

    async def customer_room(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        service = await self.desk.service(params["room_id"])
        return _ok({"customer_room": await self._customer_room(service)})

    async def customer_rooms(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        status = params.get("status")
        if status not in (None, "unresolved", "resolved"):
            raise DeskError(400, f"status {status!r} must be 'unresolved' or 'resolved'")
        services = sorted(self.desk.services.values(), key=lambda s: s.room_id, reverse=True)
        if status is not None:
            services = [s for s in services if s.resolved == (status == "resolved")]
        limit = as_int(params.get("limit", 50), "limit")
        rooms = [await self._customer_room(s) for s in services[:limit]]
        return _ok({"customer_rooms": rooms})

    async def channels(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        return _ok({kind: list(items) for kind, items in SEED_CHANNELS.items()})

    async def office_hours(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        return _ok(dict(OFFICE_HOURS))

    async def integrate_bot(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        url = str(required(params, "bot_webhook_url"))
        enabled = as_bool(params.get("is_bot_enabled", True), "is_bot_enabled")
        self.desk.bot_webhook_url = url if enabled else None
        return _ok({"bot_webhook_url": url, "is_bot_enabled": enabled})

    async def integrate_resolved(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        url = str(required(params, "webhook_url"))
        enabled = as_bool(params.get("is_webhook_enabled", True), "is_webhook_enabled")
        self.desk.resolved_webhook_url = url if enabled else None
        return _ok({"webhook_url": url, "is_webhook_enabled": enabled})


OMNICHANNEL_KEY: web.AppKey[OmnichannelDesk] = web.AppKey("qbot_omnichannel", OmnichannelDesk)


def register_omnichannel(app: web.Application, emulator: Emulator) -> OmnichannelDesk:
    """Serve the Omnichannel endpoints on the emulator app; the desk is ``app[OMNICHANNEL_KEY]``."""
    desk = OmnichannelDesk(emulator)
    app[OMNICHANNEL_KEY] = desk
    app.add_routes(OmnichannelApi(desk).routes())

    async def snapshot(request: web.Request) -> web.Response:
        state = desk.snapshot()
        # The page lists rooms by who writes (a name, a number), not by room id.
        for service in state["services"]:
            customer = await customer_of(desk, desk.services[int(service["room_id"])])
            service["customer"] = {"user_id": customer["user_id"], "name": customer["name"]}
        return web.json_response(state)

    # For the page, like the other /emulator/api routes: not Qiscus endpoints, not recorded.
    app.router.add_get("/emulator/api/omnichannel", snapshot)
    app.add_routes(_page_routes(desk))
    app.add_routes(whatsapp_page_routes(desk.whatsapp))

    async def close(app: web.Application) -> None:
        await desk.close()

    app.on_cleanup.append(close)
    return desk


def _page_routes(desk: OmnichannelDesk) -> list[web.RouteDef]:
    """The page's side of the desk: a customer on a channel, an agent who answers and resolves."""

    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=loads)
        except ValueError as e:
            raise DeskError(400, f"request body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise DeskError(400, "request body must be a JSON object")
        return body

    def guarded(
        fn: Callable[[web.Request], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return await fn(request)
            except DeskError as e:
                return web.json_response({"error": e.message}, status=e.status)

        return handler

    async def customer(request: web.Request) -> web.Response:
        body = await body_of(request)
        email = str(required(body, "email")).strip()
        digits = "".join(c for c in email if c.isdigit())
        if "@" not in email:
            # WhatsApp customers are their numbers: +62 812-3456-7890 → 6281234567890.
            if not digits or len(digits) < 6 or any(c not in "+- ()0123456789" for c in email):
                raise DeskError(400, f"{email!r} is not an email address or a phone number")
            email = digits
        name = str(body.get("name") or email.split("@")[0])
        room = await desk.open_room(email, name, source=str(body.get("source") or "wa"))
        return web.json_response({**room, "customer": email})

    async def agent_message(request: web.Request) -> web.Response:
        body = await body_of(request)
        service = await desk.service(request.match_info["room_id"])
        text = str(required(body, "text"))
        agent_id = as_int(body.get("agent_id") or (service.agent_ids or [0])[-1], "agent_id")
        if agent_id not in service.agent_ids:
            await desk.assign(service.room_id, agent_id)
        agent = desk.agents[agent_id]
        comment = await desk.em.user_post(service.room_id, agent["email"], text=text)
        return web.json_response(comment)

    async def resolve(request: web.Request) -> web.Response:
        body = await body_of(request) if request.body_exists else {}
        agent = body.get("agent_id")
        resolved = await desk.resolve(
            request.match_info["room_id"], agent_id=as_int(agent, "agent_id") if agent else None
        )
        return web.json_response(resolved)

    return [
        web.post("/emulator/api/omnichannel/customers", guarded(customer)),
        web.post("/emulator/api/omnichannel/rooms/{room_id}/agent", guarded(agent_message)),
        web.post("/emulator/api/omnichannel/rooms/{room_id}/resolve", guarded(resolve)),
    ]
