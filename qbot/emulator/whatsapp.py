"""The emulated WhatsApp side of Omnichannel: the app's approved templates, and sending them.

    ``GET  /api/v2/admin/hsm``                              the app's templates (``approved``,
                                                            ``channel_id``, ``page``, ``limit``)
    ``POST /whatsapp/v1/{app_code}/{channel_id}/messages``  send a template (Cloud API body)
    ``GET|POST /emulator/api/omnichannel/templates``        the page's and the harness's view:
                                                            every template and what was sent

A sent template is checked as WhatsApp would (the template exists, is approved in that
language, gets as many parameters as its placeholders, within WhatsApp's limits), then lands in
the customer's room (opened if the number has none yet) as a ``custom`` comment whose payload
is ``{"type": "whatsapp_template", "content": {...}}``: the page shows it the way WhatsApp does
(header, body with the variables filled, footer, quick-reply buttons). It is not echoed to the
bot webhook. A tap on a quick reply arrives as the customer's text message, the button's label.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qbot._json import loads
from qbot.emulator.desk import SEED_CHANNELS, DeskError, as_bool, as_int, customer_of, required
from qbot.omnichannel.templates import MAX_BODY, MAX_HEADER, fill, placeholders

if TYPE_CHECKING:
    from qbot._json import loads
from qbot.emulator.desk import OmnichannelDesk

__all__ = ["NAMESPACE", "SEED_TEMPLATES", "SentTemplate", "TemplateCatalog"]

NAMESPACE = "b2c7e0f4_5d1a_4a8e_9c3b_71f0d6e2a9c4"
"""The emulated WhatsApp Business account's template namespace."""


def _detail(
    language: str,
    content: str,
    *,
    header: str | None = None,
    footer: str | None = None,
    buttons: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "language": language,
        "content": content,
        "header_type": "text" if header else None,
        "header_content": header,
        "footer": footer,
        "buttons": [{"type": "QUICK_REPLY", "text": label} for label in buttons],
    }


SEED_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "order_shipped",
        "category": "UTILITY",
        "details": [
            _detail(
                "id",
                "Halo {{1}}, pesanan {{2}} sudah dikirim dan diperkirakan tiba {{3}}.",
                header="Pesanan dikirim",
                footer="Balas STOP untuk berhenti menerima kabar pesanan",
                buttons=("Lacak pesanan", "Hubungi CS"),
            ),
            _detail(
                "en",
                "Hi {{1}}, your order {{2}} has shipped and should arrive {{3}}.",
                header="Order shipped",
                footer="Reply STOP to stop order updates",
                buttons=("Track order", "Contact us"),
            ),
        ],
    },
    {
        "name": "payment_reminder",
        "category": "UTILITY",
        "details": [
            _detail(
                "id",
                "Halo {{1}}, tagihan sebesar {{2}} jatuh tempo pada {{3}}. "
                "Abaikan pesan ini jika Anda sudah membayar.",
                header="Tagihan {{1}}",
                buttons=("Sudah bayar", "Kirim tautan bayar"),
            )
        ],
    },
    {
        "name": "otp_code",
        "category": "AUTHENTICATION",
        "details": [
            _detail(
                "id",
                "{{1}} adalah kode verifikasi Anda. Demi keamanan, jangan bagikan kode ini.",
                footer="Kode berlaku 5 menit.",
            )
        ],
    },
    {
        "name": "followup_check",
        "category": "UTILITY",
        "details": [
            _detail(
                "id",
                "Halo {{1}}, apakah kendala Anda sudah teratasi?",
                buttons=("Sudah", "Belum", "Bicara dengan agen"),
            )
        ],
    },
    {
        "name": "continue_chat",
        "category": "UTILITY",
        "details": [
            _detail(
                "id",
                "Kami punya kabar terbaru untuk Anda. "
                "Balas pesan ini untuk melanjutkan percakapan.",
                buttons=("Lanjutkan",),
            )
        ],
    },
    {
        "name": "promo_weekend",
        "category": "MARKETING",
        "approved": False,
        "details": [_detail("id", "Diskon {{1}} khusus akhir pekan ini!")],
    },
)
"""The templates an emulated app starts with (``promo_weekend`` is still waiting for approval)."""


@dataclass(slots=True)
class SentTemplate:
    """A template the emulated WhatsApp delivered (``TemplateCatalog.sent``)."""

    room_id: int
    to: str
    channel_id: int
    name: str
    language: str
    variables: list[str]
    header: str | None
    buttons: list[dict[str, Any]] = field(default_factory=list)
    message_id: str = ""


class TemplateCatalog:
    """The app's templates on the emulated desk, and the templates sent (for tests)."""

    def __init__(self, desk: OmnichannelDesk) -> None:
        self.desk = desk
        self.templates: dict[str, dict[str, Any]] = {}
        self.sent: list[SentTemplate] = []
        self._rooms: dict[str, int] = {}  # phone -> its WhatsApp room
        self._seen: set[int] = set()  # the rooms already looked at for _rooms
        for seed in SEED_TEMPLATES:
            self.add(
                seed["name"],
                seed["details"],
                category=seed["category"],
                approved=seed.get("approved", True),
            )

    def add(
        self,
        name: str,
        details: list[dict[str, Any]],
        *,
        category: str = "UTILITY",
        approved: bool = True,
    ) -> dict[str, Any]:
        """Add (or replace) a template: ``details`` are its languages (``_detail`` shape).

        Raises:
            DeskError: an empty name, no language, a body over WhatsApp's limits.
        """
        name = str(name or "").strip()
        if not name:
            raise DeskError(400, "a template needs a name")
        if not isinstance(details, list) or not details:
            raise DeskError(400, f"template {name!r} needs at least one language")
        wa = SEED_CHANNELS["wa_channels"][0]["id"]
        rows = []
        for index, raw in enumerate(details, 1):
            if not isinstance(raw, dict):
                raise DeskError(400, f"template {name!r}: language #{index} must be an object")
            language = str(raw.get("language") or "").strip()
            content = str(raw.get("content") or "")
            if not language or not content.strip():
                raise DeskError(400, f"template {name!r}: each language needs language and content")
            if len(content) > MAX_BODY or placeholders(content) > 15:
                raise DeskError(400, f"template {name!r}: body over WhatsApp's limits")
            buttons = raw.get("buttons") or []
            if not isinstance(buttons, list) or len(buttons) > 3:
                raise DeskError(400, f"template {name!r}: at most 3 quick-reply buttons")
            rows.append(
                {
                    "id": len(self.templates) * 10 + index,
                    "language": language,
                    "content": content,
                    "header_type": "text" if raw.get("header_content") else None,
                    "header_content": raw.get("header_content"),
                    "header_default_value": None,
                    "footer": raw.get("footer"),
                    "buttons": [
                        b if isinstance(b, dict) else {"type": "QUICK_REPLY", "text": str(b)}
                        for b in buttons
                    ],
                    "approval_status": 1 if approved else 0,
                }
            )
        existing = self.templates.get(name)
        template = {
            "id": existing["id"] if existing else len(self.templates) + 1,
            "name": name,
            "namespace": NAMESPACE,
            "category": category.upper(),
            "channel_id": wa,
            "status": "approved" if approved else "pending",
            "hsm_details": rows,
        }
        self.templates[name] = template
        return template

    def listing(self, *, approved: bool | None, channel_id: int | None) -> list[dict[str, Any]]:
        found = list(self.templates.values())
        if approved is not None:
            found = [t for t in found if (t["status"] == "approved") == approved]
        if channel_id is not None:
            found = [t for t in found if t["channel_id"] == channel_id]
        return found

    # --- the endpoints --------------------------------------------------------------------------

    async def list_templates(
        self, params: dict[str, Any], request: web.Request
    ) -> web.StreamResponse:
        approved = params.get("approved")
        channel = params.get("channel_id")
        found = self.listing(
            approved=None if approved in (None, "") else as_bool(approved, "approved"),
            channel_id=None if channel in (None, "") else as_int(channel, "channel_id"),
        )
        page = as_int(params.get("page", 1), "page")
        limit = as_int(params.get("limit", 10), "limit")
        if page < 1 or not 1 <= limit <= 1000:
            raise DeskError(400, "page must be 1 or more and limit from 1 to 1000")
        meta = {"total": len(found), "page": page, "limit": limit}
        shown = found[(page - 1) * limit : page * limit]
        return web.json_response({"status": 200, "data": {"hsm_templates": shown}, "meta": meta})

    async def send(self, params: dict[str, Any], request: web.Request) -> web.StreamResponse:
        em = self.desk.em
        if params["app_code"] != em.config.app_id:
            raise DeskError(404, f"unknown app code {params['app_code']!r} in the path")
        channel_id = as_int(params["channel_id"], "channel_id")
        if channel_id not in {c["id"] for c in SEED_CHANNELS["wa_channels"]}:
            raise DeskError(404, f"no WhatsApp channel {channel_id} in this app")
        to = str(required(params, "to"))
        if not to.isdigit() or not 6 <= len(to) <= 16:
            raise DeskError(400, f"to {to!r} must be a phone number in digits, country code first")
        if params.get("type") != "template":
            raise DeskError(400, f"type must be 'template', got {params.get('type')!r}")
        wire = params.get("template")
        if not isinstance(wire, dict):
            raise DeskError(400, "template must be an object")
        name = str(required(wire, "name"))
        template = self.templates.get(name)
        if template is None:
            raise DeskError(404, f"template {name!r} does not exist (132001)")
        if template["status"] != "approved":
            raise DeskError(400, f"template {name!r} is not approved yet")
        namespace = wire.get("namespace")
        if namespace not in (None, "", template["namespace"]):
            raise DeskError(400, f"namespace {namespace!r} is not this account's")
        language = wire.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if (
            isinstance(language, dict)
            and language.get("policy", "deterministic") != "deterministic"
        ):
            raise DeskError(400, "language.policy must be 'deterministic'")
        detail = next((d for d in template["hsm_details"] if d["language"] == code), None)
        if detail is None:
            raise DeskError(400, f"template {name!r} does not exist in language {code!r} (132001)")
        header, variables, payloads = _parameters(wire.get("components"))
        content = _render(name, detail, header, variables, payloads)
        room_id = await self._room_of(to, channel_id)
        params["room_id"] = str(room_id)  # the inspector lists the call under the room
        message_id = "wamid." + secrets.token_hex(16)
        await self.desk.ensure_admin()
        comment = await em.store.add_comment(
            room_id=room_id,
            email=self.desk.admin_email,
            comment_type="custom",
            message=_as_text(content),
            payload={"type": "whatsapp_template", "content": content},
        )
        em.publish({"event": "comment", "comment": comment})
        self.sent.append(
            SentTemplate(
                room_id=room_id,
                to=to,
                channel_id=channel_id,
                name=name,
                language=str(code),
                variables=variables,
                header=header,
                buttons=content["buttons"],
                message_id=message_id,
            )
        )
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": message_id}],
            }
        )

    async def _room_of(self, to: str, channel_id: int) -> int:
        """The customer's WhatsApp room on the channel; opened as Omnichannel would if none."""
        desk = self.desk
        # Each room is looked at once (a broadcast to 1,000 new numbers must not be O(n^2)).
        for service in list(desk.services.values()):
            if service.room_id in self._seen or service.source != "wa" or service.resolved:
                continue
            self._seen.add(service.room_id)
            user = str((await customer_of(desk, service)).get("user_id") or "")
            if "@" not in user and (digits := "".join(c for c in user if c.isdigit())):
                self._rooms[digits] = service.room_id
        known = desk.services.get(self._rooms.get(to, -1))
        if known is not None and not known.resolved:
            return known.room_id
        room = await desk.open_room(to, f"+{to}", source="wa")
        self._rooms[to] = int(room["id"])
        self._seen.add(int(room["id"]))
        return int(room["id"])

    def routes(self) -> list[tuple[str, str, Callable[..., Awaitable[web.StreamResponse]]]]:
        """The Omnichannel endpoints (wrapped by `OmnichannelApi`: recorded, fault-injectable)."""
        return [
            ("GET", "/api/v2/admin/hsm", self.list_templates),
            ("POST", "/whatsapp/v1/{app_code}/{channel_id}/messages", self.send),
        ]

    def view(self) -> dict[str, Any]:
        """Every template and what was sent, for the page and tests."""
        return {
            "templates": list(self.templates.values()),
            "sent": [
                {
                    "room_id": s.room_id,
                    "to": s.to,
                    "name": s.name,
                    "language": s.language,
                    "variables": s.variables,
                    "message_id": s.message_id,
                }
                for s in self.sent
            ],
        }


def _parameters(components: Any) -> tuple[str | None, list[str], list[str]]:
    """``(header, body variables, quick-reply payloads by index)`` of Cloud API components."""
    if components is None:
        return None, [], []
    if not isinstance(components, list):
        raise DeskError(400, "template.components must be a list")
    header: str | None = None
    body: list[str] = []
    buttons: dict[int, str] = {}
    for part in components:
        if not isinstance(part, dict):
            raise DeskError(400, "each component must be an object")
        kind = part.get("type")
        values = part.get("parameters") or []
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise DeskError(400, f"{kind} component parameters must be a list of objects")
        if kind in ("header", "body"):
            texts = []
            for value in values:
                text = value.get("text")
                if value.get("type") != "text" or not isinstance(text, str) or not text.strip():
                    raise DeskError(400, f"{kind} parameters must be non-empty text (131008)")
                texts.append(text)
            if kind == "header":
                header = texts[0] if texts else None
            else:
                body = texts
        elif kind == "button":
            if part.get("sub_type") != "quick_reply":
                raise DeskError(400, f"button sub_type {part.get('sub_type')!r} is not supported")
            index = as_int(part.get("index"), "button index")
            payload = values[0].get("payload") if values else None
            if not isinstance(payload, str):
                raise DeskError(400, f"quick-reply button {index} needs a payload string")
            buttons[index] = payload
        else:
            raise DeskError(400, f"unknown component type {kind!r}")
    return header, body, [buttons[i] for i in sorted(buttons)]


def _render(
    name: str, detail: dict[str, Any], header: str | None, variables: list[str], payloads: list[str]
) -> dict[str, Any]:
    """The template as WhatsApp shows it, after WhatsApp's checks."""
    wanted = placeholders(detail["content"])
    if len(variables) != wanted:
        raise DeskError(
            400,
            f"template {name!r} takes {wanted} body parameters, got {len(variables)} (132000)",
        )
    header_wanted = placeholders(detail.get("header_content"))
    if header_wanted and header is None:
        raise DeskError(400, f"template {name!r}'s header needs a parameter (132000)")
    if header is not None and not header_wanted:
        raise DeskError(400, f"template {name!r} has no header parameter (132000)")
    shown_header = fill(detail.get("header_content"), [header] if header else []) or None
    if shown_header is not None and len(shown_header) > MAX_HEADER:
        raise DeskError(400, f"header is {len(shown_header)} characters, at most {MAX_HEADER}")
    body = fill(detail["content"], variables)
    if len(body) > MAX_BODY:
        raise DeskError(400, f"body is {len(body)} characters, at most {MAX_BODY}")
    labels = [str(b.get("text") or "") for b in detail.get("buttons") or []]
    if len(payloads) > len(labels):
        raise DeskError(400, f"template {name!r} has {len(labels)} quick replies")
    buttons = [
        {"label": label, "payload": payloads[i] if i < len(payloads) else None}
        for i, label in enumerate(labels)
    ]
    return {
        "name": name,
        "language": detail["language"],
        "header": shown_header,
        "body": body,
        "footer": detail.get("footer"),
        "buttons": buttons,
    }


def _as_text(content: dict[str, Any]) -> str:
    """The template as plain text (the comment's ``message``)."""
    parts = [f"*{content['header']}*"] if content["header"] else []
    parts.append(content["body"])
    if content["footer"]:
        parts.append(f"_{content['footer']}_")
    parts.extend(f"[{b['label']}]" for b in content["buttons"])
    return "\n".join(parts)


def page_routes(catalog: TemplateCatalog) -> list[web.RouteDef]:
    """``GET|POST /emulator/api/omnichannel/templates``: list, and add a template."""

    async def show(request: web.Request) -> web.Response:
        return web.json_response(catalog.view())

    async def add(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=loads)
        except ValueError as e:
            return web.json_response({"error": f"request body is not valid JSON: {e}"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "request body must be a JSON object"}, status=400)
        try:
            detail = {
                "language": body.get("language") or "id",
                "content": body.get("body") or body.get("content"),
                "header_content": body.get("header"),
                "footer": body.get("footer"),
                "buttons": body.get("buttons") or [],
            }
            approved = body.get("approved", True)
            template = catalog.add(
                str(body.get("name") or ""),
                [detail],
                category=str(body.get("category") or "UTILITY"),
                approved=as_bool(approved, "approved"),
            )
        except DeskError as e:
            return web.json_response({"error": e.message}, status=e.status)
        return web.json_response(template)

    return [
        web.get("/emulator/api/omnichannel/templates", show),
        web.post("/emulator/api/omnichannel/templates", add),
    ]
