"""Inbound webhook bodies, parsed leniently.

One model parses every delivery shape seen in the field: the documented SDK body, real SDK
deliveries (numeric ids, ``unique_temp_id``, timestamps) and Omnichannel bodies (string ids, ids
``0``, ``options`` as a JSON string, ``type`` at the top level, inside ``payload`` or both,
``null`` payloads). Unknown fields are kept, never rejected.

What is refused is what no platform sends and what would break a storage or a reply later: a
string holding a lone UTF-16 surrogate (``"\\ud800"`` decodes to text that cannot be encoded as
UTF-8), anywhere in the body, and a blank room id. The error names the field.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema

from qbot._json import dumps_text, loads


def _encodable(value: Any) -> Any:
    """Refuse a string that UTF-8 cannot encode (a lone surrogate); pass anything else on."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(
                f"contains a lone UTF-16 surrogate ({value[e.start]!r} at {e.start}), which is "
                "not text"
            ) from None
    return value


def _find_unencodable(value: Any, path: str) -> str | None:
    """The dotted path of the first string in ``value`` (keys included) UTF-8 cannot encode."""
    if isinstance(value, str):
        try:
            _encodable(value)
        except ValueError:
            return path
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _find_unencodable(key, path) or _find_unencodable(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_unencodable(item, f"{path}.{index}")
            if found is not None:
                return found
    return None


Id = int | str
"""Qiscus ids: integers from the Chat SDK, strings from Omnichannel."""


def _room_id(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("room id must not be empty: every message belongs to a room")
    return value


RoomId = Annotated[int | str, BeforeValidator(_room_id)]


def _or_empty(value: list[Any] | None) -> list[Any]:
    return [] if value is None else value


class _NullAsEmpty:
    """``null`` read as ``[]``, checked after the list is validated: a "before" validator would
    make pydantic turn the JSON into Python objects first, for every body."""

    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            _or_empty, core_schema.nullable_schema(handler(source))
        )


class _Inbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


def _json_object(value: Any) -> Any:
    """Accept an object, ``null``, or an object encoded as a JSON string."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        try:
            decoded = loads(stripped)
        except ValueError:
            return {"raw": value}
        return decoded if isinstance(decoded, dict) else {"value": decoded}
    return value


def _text_object(value: Any, info: ValidationInfo) -> Any:
    """:func:`_json_object`, refusing an object holding a string UTF-8 cannot encode."""
    decoded = _json_object(value)
    if info.mode == "json" and not isinstance(value, str):
        return decoded  # read from JSON bytes: already checked by the reader
    found = _find_unencodable(decoded, "")
    if found is not None:
        raise ValueError(f"{found.lstrip('.') or 'the value'} contains a lone UTF-16 surrogate")
    return decoded


def _is_blank_id(value: Id | None) -> bool:
    return value is None or value in (0, "0", "")


class User(_Inbound):
    """Who wrote the message (``payload.from``)."""

    id: Id | None = None
    email: str = ""
    name: str = ""
    avatar_url: str | None = None


class Participant(_Inbound):
    """A room member as the webhook lists them (``username``, not ``name``)."""

    id: Id | None = None
    email: str = ""
    username: str = ""
    avatar_url: str | None = None


class Room(_Inbound):
    """The room the message was posted in."""

    id: RoomId
    topic_id: Id | None = None
    type: str = "group"
    name: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    participants: Annotated[list[Participant], _NullAsEmpty()] = Field(default_factory=list)
    is_public_channel: bool = False
    room_avatar: str | None = None

    @field_validator("options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any, info: ValidationInfo) -> Any:
        return _text_object(value, info) or {}


class IncomingMessage(_Inbound):
    """The comment itself. ``payload`` depends on ``type``; see :meth:`parsed_payload`."""

    id: Id | None = None
    comment_before_id: Id | None = None
    unique_temp_id: str | None = None
    type: str = "text"
    text: str = ""
    payload: dict[str, Any] | None = None
    # Kept as sent (RFC 3339 strings; ``unix_timestamp`` an int, or a string in older deliveries),
    # so parsing from bytes and from a dict give the same model; ``sent_at`` reads them.
    created_at: str | None = None
    timestamp: str | None = None
    unix_timestamp: int | str | None = None
    disable_link_preview: bool | None = None
    extras: dict[str, Any] | None = None

    @field_validator("payload", "extras", mode="before")
    @classmethod
    def _decode_object(cls, value: Any, info: ValidationInfo) -> Any:
        return _text_object(value, info)

    @field_validator("text", mode="before")
    @classmethod
    def _null_text(cls, value: Any) -> Any:
        return "" if value is None else value

    @property
    def identity(self) -> str | None:
        """The id that makes a redelivery recognisable: ``id``, else ``unique_temp_id``.

        Omnichannel sends ``id: 0``, so there ``unique_temp_id`` is the only identity.
        """
        if not _is_blank_id(self.id):
            return f"id:{self.id}"
        if self.unique_temp_id:
            return f"utid:{self.unique_temp_id}"
        return None

    @property
    def sent_at(self) -> datetime | None:
        """When the message was sent (UTC), from whichever timestamp field is readable."""
        if isinstance(self.unix_timestamp, int):
            return datetime.fromtimestamp(self.unix_timestamp, UTC)
        for raw in (self.unix_timestamp, self.created_at, self.timestamp):
            if isinstance(raw, str) and raw:
                try:
                    parsed = datetime.fromisoformat(raw)
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return None

    @property
    def comment_id(self) -> int | None:
        """The numeric comment id, when the platform gave one (needed to quote it)."""
        if _is_blank_id(self.id):
            return None
        try:
            return int(self.id)  # type: ignore[arg-type]
        except ValueError:
            return None

    def parsed_payload(self) -> BaseModel | dict[str, Any] | None:
        """The payload as the model of its type (:data:`PAYLOAD_MODELS`), else the raw dict."""
        if not self.payload:
            return None
        model = PAYLOAD_MODELS.get(self.type)
        return model.model_validate(self.payload) if model else self.payload


class WebhookPayload(_Inbound):
    """``payload`` of a webhook body."""

    sender: User = Field(alias="from")
    room: Room
    message: IncomingMessage
    type: str | None = None


class Channel(_Inbound):
    """Omnichannel's channel: where the customer wrote (``source``: wa, line, qiscus, ...)."""

    id: Id | None = None
    name: str = ""
    source: str = ""


def _text_only(data: Any) -> Any:
    found = _find_unencodable(data, "")
    if found is not None:
        raise ValueError(
            f"{found.lstrip('.') or 'a key'} contains a lone UTF-16 surrogate, which is not text"
        )
    return data


class Update(_Inbound):
    """One webhook delivery.

    ``Update.model_validate(body)`` accepts every known shape; ``event_type`` reads ``type`` from
    the top level or from ``payload``.
    """

    type: str | None = None
    payload: WebhookPayload
    app_code: str | None = None
    channel: Channel | None = None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # JSON bytes: pydantic's reader already refuses lone surrogates. Python input (a dict
        # from json.loads, Bot.feed_update) is checked here, once, naming the first bad field.
        # Only Python input: a model "before" validator would have pydantic turn every JSON
        # body into Python objects first (a quarter of each parse: bench/RESULTS.md).
        schema = handler(source)
        return core_schema.json_or_python_schema(
            json_schema=schema,
            python_schema=core_schema.no_info_before_validator_function(_text_only, schema),
        )

    @property
    def event_type(self) -> str:
        """``post_comment_mobile`` (a client wrote) or ``post_comment_rest`` (a Server-API post)."""
        return self.type or self.payload.type or "post_comment_mobile"

    @property
    def sender(self) -> User:
        return self.payload.sender

    @property
    def room(self) -> Room:
        return self.payload.room

    @property
    def message(self) -> IncomingMessage:
        return self.payload.message

    @property
    def identity(self) -> str | None:
        """What makes a redelivery recognisable: :attr:`IncomingMessage.identity`, else a hash.

        A message with ``id: 0`` and no ``unique_temp_id`` is identified by a hash of its sender,
        type, text, payload and timestamps (``hash:<hex>``): the same words from the same person
        a second later are a new message, a redelivery is not. With no timestamp either, there
        is nothing to tell a redelivery from a repeat, so ``None``.
        """
        identity = self.message.identity
        if identity is not None:
            return identity
        message = self.message
        stamps = (message.unix_timestamp, message.created_at, message.timestamp)
        if not any(stamps):
            return None
        sender = self.sender.email or str(self.sender.id or "")
        content = dumps_text(
            [sender, message.type, message.text, message.payload, *stamps],
            str,
            sort_keys=True,
        )
        return "hash:" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:32]

    @property
    def dedupe_key(self) -> str | None:
        """``room:identity``, or ``None`` when the message carries no identity at all."""
        identity = self.identity
        return f"{self.room.id}:{identity}" if identity else None


# --- typed payloads of the comment types a bot receives -----------------------------------------


class FileAttachment(_Inbound):
    """``file_attachment``: the text is ``[file] URL [/file]``."""

    url: str = ""
    caption: str = ""
    file_name: str = ""
    size: int | None = None


class Location(_Inbound):
    """``location``."""

    name: str = ""
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    map_url: str = ""


class ContactPerson(_Inbound):
    """``contact_person``: ``value`` is the phone or email, per ``type``."""

    name: str = ""
    value: str = ""
    type: str = ""


class CustomPayload(_Inbound):
    """``custom``: an app-defined ``{type, content}``."""

    type: str = ""
    content: Any = None


class ReplyPayload(_Inbound):
    """``reply``: the new text and the quoted comment."""

    text: str = ""
    replied_comment_id: Id | None = None
    replied_comment_type: str | None = None
    replied_comment_message: str | None = None
    replied_comment_payload: Any = None
    replied_comment_sender_username: str | None = None
    replied_comment_sender_email: str | None = None


class PostbackResponse(_Inbound):
    """``button_postback_response``: the tapped button's ``payload``, echoed verbatim."""

    url: str = ""
    method: str = ""
    payload: Any = None


class SystemEventPayload(_Inbound):
    """``system_event``: ``type`` is the subtype (``add_member``, ...) or a custom one."""

    type: str = ""
    subject_username: str = ""
    subject_email: str = ""
    object_username: str = ""
    object_email: str = ""
    room_name: str = ""


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "file_attachment": FileAttachment,
    "location": Location,
    "contact_person": ContactPerson,
    "custom": CustomPayload,
    "reply": ReplyPayload,
    "button_postback_response": PostbackResponse,
    "system_event": SystemEventPayload,
}
