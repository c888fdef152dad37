"""Typed results of the Omnichannel API and the webhooks it sends besides the bot webhook.

Every model is lenient the way Omnichannel needs: unknown fields are kept (``extra="allow"``),
ids may be integers or strings, missing fields take a default. An agent's
``authentication_token`` (some payloads carry it) is dropped on parsing so that it can never
reach a log.

| call                                                   | result                     |
|--------------------------------------------------------|----------------------------|
| ``POST /{app_code}/bot``                               | `BotMessage`               |
| ``POST /bot/{room_id}/activate``                       | `ServiceRecord`            |
| assign_agent                                           | `Agent` (the added agent)  |
| available_agents, agents/by_division, agents           | ``list[Agent]``            |
| divisions                                              | ``list[Division]``         |
| mark_as_resolved                                       | `ResolvedService`          |
| room_tag (list, create)                                | ``list[RoomTag]``, `RoomTag` |
| customer_rooms (one, list)                             | `CustomerRoom`, ``list[CustomerRoom]`` |
| channels                                               | `Channels`                 |
| office_hours                                           | `OfficeHours`              |
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Agent",
    "AgentAllocationWebhook",
    "BotMessage",
    "Channel",
    "Channels",
    "CustomerRoom",
    "Division",
    "Id",
    "NewSessionWebhook",
    "OfficeHours",
    "ResolvedService",
    "ResolvedWebhook",
    "RoomTag",
    "ServiceRecord",
    "TemplateSent",
]

Id = int | str
"""Omnichannel ids: room ids are strings on the wire, agent and division ids integers."""

_SECRET_KEYS = frozenset({"authentication_token"})


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_secrets(cls, value: Any) -> Any:
        if isinstance(value, dict) and _SECRET_KEYS & value.keys():
            return {k: v for k, v in value.items() if k not in _SECRET_KEYS}
        return value


class Division(_Result):
    """A group of agents (``support``, ``sales``...); agents list theirs as ``user_roles``."""

    id: Id
    name: str = ""


class Agent(_Result):
    """A human agent of the desk.

    Attributes:
        current_customer_count: the rooms the agent serves now (available_agents and
            agents/by_division report it); ``None`` when the call does not say.
        user_roles: the agent's divisions, when the call lists them.
    """

    id: Id
    name: str = ""
    email: str = ""
    is_available: bool | None = None
    current_customer_count: int | None = None
    type: int | str | None = None
    type_as_string: str | None = None
    user_roles: list[Division] = Field(default_factory=list)

    @field_validator("user_roles", mode="before")
    @classmethod
    def _null_roles(cls, value: Any) -> Any:
        return value or []


class BotMessage(_Result):
    """What ``/bot`` answered for a sent message: the comment, when it returned one."""

    id: Id | None = None
    room_id: Id | None = None
    message: str = ""
    type: str = ""
    unique_temp_id: str | None = None


class TemplateSent(_Result):
    """What the WhatsApp messages endpoint answered for a template (Cloud API shape)."""

    messages: list[dict[str, Any]] = Field(default_factory=list)
    contacts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def message_id(self) -> str | None:
        """WhatsApp's id of the sent message (``wamid...``), when answered."""
        first = self.messages[0] if self.messages else {}
        value = first.get("id") if isinstance(first, dict) else None
        return str(value) if value is not None else None


class ServiceRecord(_Result):
    """A room's service on the desk: who handles it and whether it is waiting or resolved."""

    room_id: Id | None = None
    is_handled_by_bot: bool | None = None
    is_waiting: bool | None = None
    resolved: bool | None = None
    channel_id: Id | None = None
    source: str | None = None


class ResolvedService(_Result):
    """The service mark_as_resolved closed."""

    id: Id | None = None
    room_id: Id | None = None
    is_resolved: bool | None = None
    notes: str | None = None
    first_comment_id: Id | None = None
    last_comment_id: Id | None = None
    source: str | None = None


class RoomTag(_Result):
    """A tag on a room (``vip``, ``complaint``...)."""

    id: Id | None = None
    name: str = ""


class CustomerRoom(_Result):
    """A customer's room on the desk (``customer_rooms``)."""

    room_id: Id
    id: Id | None = None
    name: str = ""
    source: str | None = None
    channel_id: Id | None = None
    user_id: str | None = None
    is_handled_by_bot: bool | None = None
    is_waiting: bool | None = None
    is_resolved: bool | None = None
    last_comment_text: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        # The room list says ``resolved``, the room detail ``is_resolved``: read both.
        if isinstance(value, dict) and "is_resolved" not in value and "resolved" in value:
            return {**value, "is_resolved": value["resolved"]}
        return value


class Channel(_Result):
    """One configured channel (a WhatsApp number, a widget, a Line account...)."""

    id: Id
    name: str = ""
    is_active: bool | None = None
    badge_url: str | None = None


class Channels(_Result):
    """Every channel of the app, by kind, as ``GET /api/v2/channels`` groups them.

    ``by_source()`` flattens them into ``{"wa": [...], "qiscus": [...], ...}``.
    """

    qiscus_channels: list[Channel] = Field(default_factory=list)
    wa_channels: list[Channel] = Field(default_factory=list)
    ig_channels: list[Channel] = Field(default_factory=list)
    fb_channels: list[Channel] = Field(default_factory=list)
    line_channels: list[Channel] = Field(default_factory=list)
    telegram_channels: list[Channel] = Field(default_factory=list)
    custom_channels: list[Channel] = Field(default_factory=list)

    def by_source(self) -> dict[str, list[Channel]]:
        """Channels keyed by source (``qiscus`` is the web widget); empty kinds left out."""
        out: dict[str, list[Channel]] = {}
        for name in type(self).model_fields:
            channels: list[Channel] = getattr(self, name)
            if channels:
                out[name.removesuffix("_channels")] = channels
        return out


class OfficeHour(_Result):
    """One day's opening: ``day`` 1 (Monday) to 7, times as ``HH:MM``."""

    day: int | None = None
    starttime: str = ""
    endtime: str = ""


class OfficeHours(_Result):
    """When agents work, and what customers are told outside those hours."""

    timezone: str | None = None
    online_message: str | None = None
    offline_message: str | None = None
    office_hours: list[OfficeHour] = Field(default_factory=list)

    @field_validator("office_hours", mode="before")
    @classmethod
    def _null_hours(cls, value: Any) -> Any:
        return value or []


# --- the webhooks Omnichannel sends besides the bot webhook --------------------------------------


class ResolvedBy(_Result):
    """Who resolved the room."""

    id: Id | None = None
    email: str = ""
    name: str = ""
    type: str | int | None = None
    is_available: bool | None = None


class Customer(_Result):
    """The customer of a resolved room; ``additional_info`` is its property list."""

    user_id: str | None = None
    name: str = ""
    avatar: str | None = None
    additional_info: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("additional_info", mode="before")
    @classmethod
    def _null_info(cls, value: Any) -> Any:
        return value or []


class ResolvedWebhook(_Result):
    """The mark-as-resolved webhook body: ``room_id`` reads ``service.room_id``."""

    service: ResolvedService
    resolved_by: ResolvedBy = Field(default_factory=ResolvedBy)
    customer: Customer = Field(default_factory=Customer)

    @property
    def room_id(self) -> str:
        """The resolved room's id, as a string."""
        return str(self.service.room_id or "")


class RoomLog(_Result):
    """``room_log`` of a new-session webhook."""

    room_id: Id
    channel_id: Id | None = None
    source: str | None = None
    user_id: str | None = None
    is_waiting: bool | None = None
    resolved: bool | None = None
    has_no_message: bool | None = None
    extras: Any = None
    created_at: str | None = None


class NewSessionWebhook(_Result):
    """The new-session webhook body: a customer started a conversation."""

    is_new_session: bool = True
    webhook_type: str = "NEW_SESSION_WEBHOOK"
    payload: dict[str, Any] = Field(default_factory=dict)
    room_log: RoomLog

    @property
    def room_id(self) -> str:
        """The new session's room id, as a string."""
        return str(self.room_log.room_id)


class AgentAllocationWebhook(_Result):
    """The custom agent allocation webhook body; ``candidate_agent`` is Omnichannel's pick."""

    room_id: Id
    app_id: str | None = None
    source: str | None = None
    name: str = ""
    email: str = ""
    avatar_url: str | None = None
    extras: Any = None
    is_resolved: bool | None = None
    candidate_agent: Agent | None = None
