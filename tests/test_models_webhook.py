"""Every documented webhook shape (tests/examples) parses; unknown fields never reject one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from webhooks import EXAMPLES, example, sdk_body

from qbot.models import (
    ContactPerson,
    CustomPayload,
    FileAttachment,
    Location,
    PostbackResponse,
    ReplyPayload,
    SystemEventPayload,
    Update,
)


def test_webhook_documented_sdk_body_parses() -> None:
    update = Update.model_validate(example("sdk-documented.json"))
    assert update.event_type == "post_comment_mobile"
    assert update.sender.email == "user1@gmail.com"
    assert update.sender.name == "User1"
    assert update.room.id == 1
    assert update.room.participants[1].username == "User2"
    assert update.message.text == "ini pesan"
    assert update.message.payload == {}
    # The documented body has no message id at all: nothing to dedupe on.
    assert update.dedupe_key is None


def test_webhook_omnichannel_body_uses_unique_temp_id_as_identity() -> None:
    update = Update.model_validate(example("omnichannel-documented-2025.json"))
    assert update.app_code == "kovof-123"
    assert update.channel is not None
    assert update.channel.source == "wa"
    assert update.room.id == "123"
    assert update.room.options["channel_details"]["channel_id"] == 963
    assert update.message.id == 0
    assert update.message.payload is None
    assert update.message.identity is not None
    assert update.message.identity.startswith("utid:wa_wamid.")
    assert update.message.comment_id is None
    assert update.dedupe_key == f"123:{update.message.identity}"


def test_webhook_type_only_inside_payload() -> None:
    body = sdk_body("hi", event="post_comment_rest")
    body["payload"]["type"] = body.pop("type")
    assert Update.model_validate(body).event_type == "post_comment_rest"


def test_webhook_type_missing_everywhere_defaults_to_mobile() -> None:
    body = sdk_body("hi")
    del body["type"]
    assert Update.model_validate(body).event_type == "post_comment_mobile"


@pytest.mark.parametrize("options", [None, "", '{"a": 1}', {"a": 1}, "not json"])
def test_webhook_room_options_any_form(options: object) -> None:
    body = sdk_body("hi")
    body["payload"]["room"]["options"] = options
    room = Update.model_validate(body).room
    assert isinstance(room.options, dict)
    if options in ('{"a": 1}', {"a": 1}):
        assert room.options == {"a": 1}


def test_webhook_options_absent_and_participants_null() -> None:
    body = sdk_body("hi")
    del body["payload"]["room"]["options"]
    body["payload"]["room"]["participants"] = None
    room = Update.model_validate(body).room
    assert room.options == {}
    assert room.participants == []
    assert Update.model_validate_json(json.dumps(body)).room.participants == []


@pytest.mark.parametrize("payload", [None, {}, '{"x": 1}'])
def test_webhook_message_payload_null_empty_or_string(payload: object) -> None:
    body = sdk_body("hi")
    body["payload"]["message"]["payload"] = payload
    message = Update.model_validate(body).message
    assert message.payload in (None, {}, {"x": 1})


def test_webhook_unknown_fields_everywhere_are_kept() -> None:
    body = sdk_body("hi")
    body["brand_new"] = 1
    body["payload"]["from"]["nickname"] = "u"
    body["payload"]["room"]["is_resolved"] = True
    body["payload"]["message"]["reactions"] = []
    update = Update.model_validate(body)
    assert update.model_extra == {"brand_new": 1}
    assert update.room.model_extra == {"is_resolved": True}


def test_webhook_string_id_twins_and_rfc3339_unix_timestamp() -> None:
    body = sdk_body("hi", message_id="555", room_id="77")
    body["payload"]["message"]["id_str"] = "555"
    body["payload"]["message"]["unix_timestamp"] = "2025-07-11T05:46:37Z"
    update = Update.model_validate(body)
    assert update.message.comment_id == 555
    assert update.dedupe_key == "77:id:555"


def test_webhook_missing_room_is_rejected_naming_the_field() -> None:
    body = sdk_body("hi")
    del body["payload"]["room"]
    with pytest.raises(ValidationError) as info:
        Update.model_validate(body)
    assert info.value.errors()[0]["loc"] == ("payload", "room")


@pytest.mark.parametrize(
    ("type_", "payload", "model", "check"),
    [
        (
            "file_attachment",
            {"url": "https://f/x.pdf", "caption": "inv", "file_name": "x.pdf", "size": 10},
            FileAttachment,
            ("file_name", "x.pdf"),
        ),
        (
            "location",
            {"name": "Monas", "address": "Jakarta", "latitude": -6.17, "longitude": 106.8},
            Location,
            ("latitude", -6.17),
        ),
        (
            "contact_person",
            {"name": "Ani", "value": "0812", "type": "phone"},
            ContactPerson,
            ("value", "0812"),
        ),
        ("custom", {"type": "promo", "content": {"x": 1}}, CustomPayload, ("type", "promo")),
        (
            "reply",
            {"text": "yes", "replied_comment_id": 9, "replied_comment_message": "ok?"},
            ReplyPayload,
            ("replied_comment_id", 9),
        ),
        (
            "button_postback_response",
            {"url": "", "method": "post", "payload": {"a": 1}},
            PostbackResponse,
            ("payload", {"a": 1}),
        ),
        (
            "system_event",
            {"type": "add_member", "subject_email": "a@b"},
            SystemEventPayload,
            ("type", "add_member"),
        ),
    ],
)
def test_webhook_every_message_type_has_a_typed_payload(
    type_: str, payload: dict[str, object], model: type, check: tuple[str, object]
) -> None:
    message = Update.model_validate(sdk_body("x", type=type_, payload=payload)).message
    parsed = message.parsed_payload()
    assert isinstance(parsed, model)
    assert getattr(parsed, check[0]) == check[1]


@pytest.mark.parametrize("rich", ["buttons", "card", "carousel", "account_linking"])
def test_webhook_rich_types_from_other_bots_keep_their_payload(rich: str) -> None:
    payload = {"text": "t", "buttons": []}
    message = Update.model_validate(sdk_body("x", type=rich, payload=payload)).message
    assert message.parsed_payload() == payload


def test_webhook_models_are_frozen() -> None:
    update = Update.model_validate(copy.deepcopy(example("sdk-documented.json")))
    with pytest.raises(ValidationError):
        update.message.text = "changed"  # type: ignore[misc]


def test_webhook_sent_at_from_any_timestamp_field() -> None:
    body = sdk_body("hi")
    message = Update.model_validate(body).message
    assert message.sent_at is not None
    assert message.sent_at.isoformat() == "2025-07-11T05:46:37+00:00"
    body["payload"]["message"]["unix_timestamp"] = "2025-07-11T05:46:37Z"
    assert Update.model_validate(body).message.sent_at == message.sent_at
    for key in ("unix_timestamp", "created_at", "timestamp"):
        body["payload"]["message"][key] = None
    assert Update.model_validate(body).message.sent_at is None


def test_webhook_parsing_bytes_and_dicts_agree() -> None:
    for body in (sdk_body("hi"), example("omnichannel-documented-2025.json")):
        assert Update.model_validate_json(json.dumps(body)) == Update.model_validate(body)


def test_example_bodies_live_inside_the_repository() -> None:
    """A fresh clone has nothing beside it: the documented bodies the tests read are in tests/."""
    repo = Path(__file__).resolve().parents[1]
    assert EXAMPLES.resolve().is_relative_to(repo)
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == [
        "omnichannel-documented-2025.json",
        "sdk-documented.json",
    ]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("payload", "room", "options"), '{"color": "\\ud800"}'),
        (("payload", "message", "extras"), {"k": ["ok", "\udc00"]}),
        (("payload", "message", "unknown_field"), "\ud800"),
        (("payload", "from", "name"), "a\udfffb"),
    ],
)
def test_update_refuses_lone_surrogates_from_bytes_and_dicts(
    where: tuple[str, ...], value: Any
) -> None:
    body = sdk_body("hi")
    node = body
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ValidationError, match="surrogate"):
        Update.model_validate(body)
    with pytest.raises(ValidationError):  # as bytes: the JSON reader or the model refuses
        Update.model_validate_json(json.dumps(body))


def test_update_identity_hashes_content_when_there_is_no_id() -> None:
    body = sdk_body("same words", message_id=0)
    body["payload"]["message"]["unique_temp_id"] = None
    first = Update.model_validate(body)
    assert first.identity is not None and first.identity.startswith("hash:")
    assert Update.model_validate(body).dedupe_key == first.dedupe_key
    body["payload"]["message"]["unix_timestamp"] += 1
    assert Update.model_validate(body).dedupe_key != first.dedupe_key
    for stamp in ("unix_timestamp", "created_at", "timestamp"):
        body["payload"]["message"][stamp] = None
    assert Update.model_validate(body).identity is None
