"""The async Omnichannel API client: send as the bot, hand rooms to agents, read the customer.

```python
async with OmnichannelClient("kovof-123", secret_key) as omni:
    await omni.send_bot_message("123", "hello")           # reaches the customer on WhatsApp
    await omni.activate_bot("123", False)                 # the bot stops receiving the room
    agent = await omni.least_busy_agent("support")
    if agent is not None:
        await omni.assign_agent("123", agent.id)
```

Every call goes through the same transport as `QiscusClient` (one pooled session, the same
`RetryPolicy`: 5xx, 429 and network failures are retried) and fails with the same error tree
(`qbot.errors`). ``/bot`` has answered HTTP 200 with a plain-text error (``sender_email is
invalid``): such an answer, or a JSON body that carries an error, raises `QiscusAPIError` with
status 200, so a reply counts as sent only when Omnichannel said so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError

from qbot._http import Transport
from qbot._retry import RetryPolicy
from qbot.errors import ConfigError, MessageBuildError, QiscusAPIError
from qbot.messages.base import OutgoingComment, OutgoingSystemEvent
from qbot.omnichannel.menus import TextMenu, text_menu
from qbot.omnichannel.models import (
    Agent,
    BotMessage,
    Channels,
    CustomerRoom,
    Division,
    Id,
    OfficeHours,
    ResolvedService,
    RoomTag,
    ServiceRecord,
    TemplateSent,
)
from qbot.omnichannel.templates import ApprovedTemplate, Template

if TYPE_CHECKING:
    from qbot.config import Settings
    from qbot.messages.postback import PostbackSigner

__all__ = ["DEFAULT_BASE_URL", "OmnichannelClient", "admin_email", "phone_digits"]

DEFAULT_BASE_URL = "https://multichannel.qiscus.com"
M = TypeVar("M", bound=BaseModel)
_FAILED_STATUSES = frozenset({"error", "failed", "fail"})


def admin_email(app_code: str) -> str:
    """The app admin Omnichannel shows as the bot: ``{app_code}_admin@qismo.com``."""
    return f"{app_code}_admin@qismo.com"


def _data(body: Any) -> Any:
    """The ``data`` Omnichannel nests its answers in (``results`` on SDK-style answers)."""
    if isinstance(body, dict):
        for key in ("data", "results"):
            if key in body:
                return body[key]
    return body


def _nested(value: Any, key: str) -> Any:
    """``value[key]`` when the answer nests the object under ``key``, else ``value``."""
    if isinstance(value, dict) and isinstance(value.get(key), dict | list):
        return value[key]
    return value


def _items(value: Any, key: str) -> list[Any]:
    """A listing that is either ``[...]`` or ``{key: [...]}``."""
    value = _nested(value, key)
    return value if isinstance(value, list) else []


def _properties(value: Any) -> list[dict[str, Any]]:
    """``user_properties`` from a user_info answer (``{extras: {user_properties}}`` or flat)."""
    for key in ("extras", "user_properties"):
        value = _nested(value, key)
    return [p for p in value if isinstance(p, dict)] if isinstance(value, list) else []


def _form(values: Mapping[str, Any]) -> Any:
    """A form body factory (admin endpoints are documented as form fields), ``None`` dropped."""

    def build() -> aiohttp.FormData:
        form = aiohttp.FormData()
        for key, value in values.items():
            if value is None:
                continue
            form.add_field(key, str(value).lower() if isinstance(value, bool) else str(value))
        return form

    return build


class OmnichannelClient:
    """An async client for the Qiscus Omnichannel API.

    Args:
        app_code: the Omnichannel app code (the same string as the Chat SDK app id).
        secret_key: the app's secret key, sent as ``Qiscus-Secret-Key`` (and as
            ``QISCUS_SDK_SECRET``, which ``/bot`` documents); never logged.
        base_url: the API; ``https://multichannel.qiscus.com`` by default.
        timeout: seconds one try may take before it counts as a network failure.
        retry: when to retry; defaults to `RetryPolicy()`. ``RetryPolicy(max_attempts=1)`` disables.
        session: an ``aiohttp.ClientSession`` to share; the client then never closes it.

    Raises:
        ConfigError: on an empty app code or secret key, or a base URL that is not http(s).
    """

    def __init__(
        self,
        app_code: str,
        secret_key: str | SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        secret = secret_key if isinstance(secret_key, SecretStr) else SecretStr(secret_key)
        if not app_code:
            raise ConfigError("OmnichannelClient needs an app_code: set omnichannel.app_code")
        if not secret.get_secret_value():
            raise ConfigError("OmnichannelClient needs a secret_key: set qiscus.secret_key")
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(
                f"omnichannel base_url must start with http:// or https://, got {base_url!r}"
            )
        if timeout <= 0:
            raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds")
        self.app_code = app_code
        self.base_url = base
        self.bot_email = admin_email(app_code)
        headers = {
            "Qiscus-App-Id": app_code,
            "Qiscus-Secret-Key": secret.get_secret_value(),
            "QISCUS_SDK_SECRET": secret.get_secret_value(),
            "Accept": "application/json",
        }
        self._http = Transport(
            base_url=base,
            headers=headers,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            session=session,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession | None = None
    ) -> OmnichannelClient:
        """The client of ``settings.omnichannel``, with ``qiscus``'s secret, timeout and retries."""
        q, omni = settings.qiscus, settings.omnichannel
        retry = RetryPolicy(max_attempts=q.max_attempts, max_total_time=q.max_retry_time)
        return cls(
            omni.app_code or q.app_id,
            q.secret_key,
            omni.base_url,
            timeout=q.timeout,
            retry=retry,
            session=session,
        )

    def __repr__(self) -> str:
        return f"OmnichannelClient(app_code={self.app_code!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> OmnichannelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pooled session (unless it was passed in). The client reopens one if reused."""
        await self._http.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
    ) -> Any:
        body = await self._http.request(
            method,
            path,
            params=params,
            json_body=json_body,
            form=_form(form) if form is not None else None,
        )
        problem = _failure(body)
        if problem is not None:
            raise QiscusAPIError(200, path, f"the body reports an error: {problem}", body)
        return _data(body)

    def _parse(self, model: type[M], data: Any, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            raise QiscusAPIError(
                200, path, f"unexpected {model.__name__} shape from Omnichannel: {e}", data
            ) from e

    def _parse_all(self, model: type[M], items: list[Any], path: str) -> list[M]:
        return [self._parse(model, item, path) for item in items]

    # -- sending as the bot ----------------------------------------------------------------------
    async def send_bot_message(
        self,
        room_id: Id,
        message: str,
        type: str = "text",
        payload: Mapping[str, Any] | None = None,
        *,
        extras: Mapping[str, Any] | None = None,
    ) -> BotMessage:
        """Post a message to the customer as the bot (``POST /{app_code}/bot``).

        Args:
            room_id: the room id from the webhook; sent as a string.
            message: the text; for rich types their fallback text.
            type: ``text``, ``buttons``, ``card``, ``carousel``, ``file_attachment``,
                ``custom``... (the Chat SDK comment types).
            payload: the type's payload object, sent as an object (``buttons``:
                ``{text, buttons}``; ``carousel``: ``{cards}``; ``file_attachment``:
                ``{url, caption}``).
            extras: free-form metadata passed through.

        Raises:
            QiscusAPIError: Omnichannel refused, including a 200 whose body is not a JSON success.
        """
        body: dict[str, Any] = {
            "sender_email": self.bot_email,
            "room_id": str(room_id),
            "type": type,
            "message": message,
        }
        if payload is not None:
            body["payload"] = dict(payload)
        if extras is not None:
            body["extras"] = dict(extras)
        path = f"/{self.app_code}/bot"
        data = await self._call("POST", path, json_body=body)
        return self._parse(BotMessage, _nested(data, "comment") if data else {}, path)

    async def send(self, room_id: Id, comment: OutgoingComment | OutgoingSystemEvent) -> BotMessage:
        """Send what a builder produced (``Buttons(...).to_outgoing()[0]``) as the bot.

        Raises:
            MessageBuildError: ``comment`` is not an `OutgoingComment` (system events cannot be
                posted through ``/bot``).
        """
        if not isinstance(comment, OutgoingComment):
            raise MessageBuildError(
                f"Omnichannel's /bot posts comments only, not {type(comment).__name__}: "
                "system events cannot reach a customer's channel"
            )
        return await self.send_bot_message(
            room_id, comment.message, comment.type, comment.payload, extras=comment.extras
        )

    async def send_text_menu(self, room_id: Id, comment: OutgoingComment) -> TextMenu:
        """Send a ``buttons``, ``card`` or ``carousel`` comment as numbered text (`text_menu`).

        Returns:
            The menu sent; keep its ``choices`` to read the customer's answer with `match_choice`.

        Raises:
            MessageBuildError: the comment is not one of those types.
        """
        menu = text_menu(comment.type, comment.payload or {}, comment.message)
        await self.send_bot_message(room_id, menu.text, extras=comment.extras)
        return menu

    async def send_file(self, room_id: Id, url: str, caption: str = "") -> BotMessage:
        """Send a file (an image, a PDF...) by URL as a ``file_attachment``."""
        message = f"[file] {url} [/file]"
        payload = {"url": url, "caption": caption}
        return await self.send_bot_message(room_id, message, "file_attachment", payload)

    # -- WhatsApp templates ----------------------------------------------------------------------
    async def send_template(
        self,
        channel_id: Id,
        to: str,
        template: Template | Mapping[str, Any],
        *,
        signer: PostbackSigner | None = None,
    ) -> TemplateSent:
        """Send an approved WhatsApp template to a phone number (allowed outside the window).

        ``POST /whatsapp/v1/{app_code}/{channel_id}/messages`` with the Cloud API body
        ``{to, type: "template", template: {namespace, name, language, components}}``.

        Args:
            channel_id: the WhatsApp channel (number) to send from.
            to: the customer's phone number; digits only are sent (``+62 812-...`` →
                ``62812...``).
            template: a `Template` (its limits checked when built), or the ``template``
                object as the Cloud API takes it.
            signer: signs the quick-reply buttons' postbacks.

        Raises:
            MessageBuildError: ``to`` has no digits.
            QiscusAPIError: Omnichannel refused (an unknown template, a wrong namespace...).
        """
        number = phone_digits(to)
        wire = template.wire(signer) if isinstance(template, Template) else dict(template)
        body = {"to": number, "type": "template", "template": wire}
        path = f"/whatsapp/v1/{self.app_code}/{channel_id}/messages"
        data = await self._call("POST", path, json_body=body)
        return self._parse(TemplateSent, data if isinstance(data, dict) else {}, path)

    async def templates(
        self,
        *,
        channel_id: Id | None = None,
        approved: bool | None = True,
        page: int = 1,
        limit: int = 100,
    ) -> list[ApprovedTemplate]:
        """The app's WhatsApp templates (``GET /api/v2/admin/hsm``), approved ones by default.

        Omnichannel documents no endpoint for this; qbot calls the one the dashboard and
        public integrations use (``?approved=true&channel_id=...&page=&limit=``, answering
        ``{data: {hsm_templates: [...]}}``).
        """
        query: dict[str, str] = {"page": str(page), "limit": str(limit)}
        if approved is not None:
            query["approved"] = str(approved).lower()
        if channel_id is not None:
            query["channel_id"] = str(channel_id)
        path = "/api/v2/admin/hsm"
        data = await self._call("GET", path, params=query)
        return self._parse_all(ApprovedTemplate, _items(data, "hsm_templates"), path)

    async def template(self, name: str, *, channel_id: Id | None = None) -> ApprovedTemplate | None:
        """The approved template called ``name``, ``None`` when the app has none."""
        for page in range(1, 51):  # 5,000 templates is more than any app has
            found = await self.templates(channel_id=channel_id, page=page)
            for candidate in found:
                if candidate.name == name:
                    return candidate
            if len(found) < 100:
                return None
        return None

    # -- handing a room to a human and back ------------------------------------------------------
    async def activate_bot(self, room_id: Id, active: bool = True) -> ServiceRecord:
        """Turn the bot on (``True``) or off for one room; answers the room's service record."""
        path = f"/bot/{room_id}/activate"
        data = await self._call("POST", path, json_body={"is_active": active})
        return self._parse(ServiceRecord, data or {}, path)

    async def assign_agent(
        self,
        room_id: Id,
        agent_id: Id,
        *,
        replace_latest_agent: bool | None = None,
        max_agent: int | None = None,
    ) -> Agent:
        """Assign an agent to a room; returns the added agent."""
        path = "/api/v1/admin/service/assign_agent"
        form = {
            "room_id": str(room_id),
            "agent_id": str(agent_id),
            "replace_latest_agent": replace_latest_agent,
            "max_agent": max_agent,
        }
        data = await self._call("POST", path, form=form)
        return self._parse(Agent, _nested(data, "added_agent"), path)

    async def available_agents(self, room_id: Id) -> list[Agent]:
        """The agents who can take the room now, with their ``current_customer_count``."""
        path = "/api/v2/admin/service/available_agents"
        data = await self._call("GET", path, params={"room_id": str(room_id)})
        return self._parse_all(Agent, _items(data, "agents"), path)

    async def agents_by_division(
        self,
        division_ids: Sequence[Id] | Id,
        *,
        is_available: bool | None = None,
        sort: Literal["asc", "desc"] | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> list[Agent]:
        """Agents of the divisions; ``sort="asc"`` lists those with the fewest customers first."""
        ids = [division_ids] if isinstance(division_ids, int | str) else list(division_ids)
        query: list[tuple[str, str]] = [("division_ids[]", str(i)) for i in ids]
        if is_available is not None:
            query.append(("is_available", str(is_available).lower()))
        optional = {"sort": sort, "page": page, "limit": limit}
        query.extend((k, str(v)) for k, v in optional.items() if v is not None)
        path = "/api/v2/admin/agents/by_division"
        return self._parse_all(
            Agent, _items(await self._call("GET", path, params=query), "agents"), path
        )

    async def agents(
        self,
        *,
        page: int | None = None,
        limit: int | None = None,
        search: str | None = None,
        scope: str | None = None,
    ) -> list[Agent]:
        """All agents (one page); ``search`` matches within ``scope`` (``name``, ``email``...)."""
        optional = {"page": page, "limit": limit, "search": search, "scope": scope}
        query = {k: str(v) for k, v in optional.items() if v is not None}
        path = "/api/v2/admin/agents"
        return self._parse_all(
            Agent, _items(await self._call("GET", path, params=query), "agents"), path
        )

    async def divisions(self) -> list[Division]:
        """The app's divisions."""
        path = "/api/v2/divisions"
        data = await self._call("GET", path)
        return self._parse_all(Division, _items(data, "divisions"), path)

    async def division(self, division: Id) -> Division:
        """A division by id or by name (case-insensitive).

        Raises:
            ConfigError: no division has that id or name; the message lists the known ones.
        """
        known = await self.divisions()
        wanted = str(division).strip()
        for candidate in known:
            if str(candidate.id) == wanted or candidate.name.casefold() == wanted.casefold():
                return candidate
        names = ", ".join(repr(d.name) for d in known) or "none"
        raise ConfigError(f"no Omnichannel division {division!r}: the app has {names}")

    async def least_busy_agent(self, division: Id) -> Agent | None:
        """The available agent of ``division`` (an id or a name) serving the fewest customers.

        Returns:
            The agent, or ``None`` when nobody in the division is available.

        Raises:
            ConfigError: the division does not exist.
        """
        found = await self.division(division)
        agents = await self.agents_by_division(found.id, is_available=True, sort="asc")
        available = [a for a in agents if a.is_available is not False]
        if not available:
            return None
        # Sorted by the server already; sort again in case it ignored ``sort``.
        return min(available, key=lambda a: a.current_customer_count or 0)

    async def mark_as_resolved(
        self, room_id: Id, notes: str | None = None, last_comment_id: Id | None = None
    ) -> ResolvedService:
        """Resolve a room (Omnichannel then calls the mark-as-resolved webhook)."""
        path = "/api/v1/admin/service/mark_as_resolved"
        form = {"room_id": str(room_id), "notes": notes, "last_comment_id": last_comment_id}
        data = await self._call("POST", path, form=form)
        return self._parse(ResolvedService, _nested(data, "service"), path)

    # -- the customer ----------------------------------------------------------------------------
    async def room_tags(self, room_id: Id) -> list[RoomTag]:
        """The room's tags."""
        path = f"/api/v1/room_tag/{room_id}"
        return self._parse_all(RoomTag, _items(await self._call("GET", path), "tags"), path)

    async def add_room_tag(self, room_id: Id, tag: str) -> RoomTag:
        """Tag the room (``vip``, ``complaint``...); returns the tag."""
        if not tag.strip():
            raise MessageBuildError("a room tag must not be empty")
        path = "/api/v1/room_tag/create"
        data = await self._call("POST", path, form={"room_id": str(room_id), "tag": tag})
        return self._parse(RoomTag, _nested(data, "tag") or {"name": tag}, path)

    async def user_info(self, room_id: Id) -> dict[str, Any]:
        """The customer's properties ("additional info") of the room, as ``{key: value}``."""
        path = f"/api/v1/qiscus/room/{room_id}/user_info"
        props = _properties(await self._call("GET", path))
        return {str(p.get("key")): p.get("value") for p in props if p.get("key") is not None}

    async def set_user_info(self, room_id: Id, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the customer's properties with ``properties`` (the API replaces the list).

        Use `update_user_info` to change some keys and keep the others.
        """
        path = f"/api/v1/qiscus/room/{room_id}/user_info"
        body = {"user_properties": [{"key": k, "value": v} for k, v in properties.items()]}
        props = _properties(await self._call("POST", path, json_body=body))
        return {str(p.get("key")): p.get("value") for p in props if p.get("key") is not None}

    async def update_user_info(self, room_id: Id, **properties: Any) -> dict[str, Any]:
        """Merge ``properties`` into the customer's: read, merge, then write the whole list."""
        merged = {**await self.user_info(room_id), **properties}
        await self.set_user_info(room_id, merged)
        return merged

    async def customer_room(self, room_id: Id) -> CustomerRoom:
        """The room's details on the desk: channel, source, bot or agent, resolved."""
        path = f"/api/v2/customer_rooms/{room_id}"
        data = await self._call("GET", path)
        return self._parse(CustomerRoom, _nested(data, "customer_room"), path)

    async def customer_rooms(
        self,
        *,
        status: Literal["unresolved", "resolved", "expired", "almost_expired"] | None = None,
        limit: int | None = None,
    ) -> list[CustomerRoom]:
        """One page of the app's customer rooms, newest first (``POST /api/v2/customer_rooms``)."""
        body = {k: v for k, v in {"status": status, "limit": limit}.items() if v is not None}
        path = "/api/v2/customer_rooms"
        data = await self._call("POST", path, json_body=body)
        return self._parse_all(CustomerRoom, _items(data, "customer_rooms"), path)

    async def channels(self) -> Channels:
        """Every configured channel, grouped by kind (``Channels.by_source()`` flattens them)."""
        path = "/api/v2/channels"
        return self._parse(Channels, await self._call("GET", path) or {}, path)

    async def office_hours(self) -> OfficeHours:
        """When agents work, and the messages customers get outside those hours."""
        path = "/api/v1/admin/office_hours"
        return self._parse(OfficeHours, await self._call("GET", path) or {}, path)

    # -- the app's webhooks ----------------------------------------------------------------------
    async def set_bot_webhook(self, url: str, enabled: bool = True) -> None:
        """Register the bot webhook URL (where customers' messages are delivered)."""
        form = {"bot_webhook_url": url, "is_bot_enabled": enabled}
        await self._call("POST", "/api/v1/app/bot/integrate", form=form)

    async def set_resolved_webhook(self, url: str, enabled: bool = True) -> None:
        """Register the mark-as-resolved webhook URL."""
        form = {"webhook_url": url, "is_webhook_enabled": enabled}
        await self._call("POST", "/api/v1/app/webhook/mark_as_resolved", form=form)


def phone_digits(phone: str) -> str:
    """A phone number as WhatsApp takes it: digits only (``+62 812-3456`` → ``628123456``).

    Raises:
        MessageBuildError: not 7 to 15 digits (E.164), or other characters than ``+-() ./``.
    """
    text = str(phone).strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if any(ch not in "+-() ./0123456789" for ch in text) or not 7 <= len(digits) <= 15:
        raise MessageBuildError(
            f"{phone!r} is not a phone number (7 to 15 digits, country code first)"
        )
    return digits


def _failure(body: Any) -> str | None:
    """Why a 200 JSON answer is not a success, or ``None`` when it is one."""
    if not isinstance(body, dict):
        return None
    for key in ("error", "errors"):
        problem = body.get(key)
        if problem:
            if isinstance(problem, dict) and problem.get("message"):
                return str(problem["message"])
            return str(problem)[:500]
    if body.get("success") is False:
        return str(body.get("message") or "success is false")
    status = body.get("status")
    if isinstance(status, str) and status.casefold() in _FAILED_STATUSES:
        return str(body.get("message") or f"status {status!r}")
    return None
