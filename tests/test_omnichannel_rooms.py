"""Room detection: which webhooks come from Omnichannel rooms, and on which channel."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from qbot.errors import ConfigError
from qbot.models.webhook import Update
from qbot.omnichannel import detect_room, normalise_source

EXAMPLES = Path(__file__).parent / "examples"


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return body


@pytest.mark.parametrize("parse", [False, True], ids=["raw", "update"])
def test_the_documented_omnichannel_body_is_an_omnichannel_room_on_whatsapp(parse: bool) -> None:
    body = example("omnichannel-documented-2025.json")

    room = detect_room(Update.model_validate(body) if parse else body)

    assert room.omnichannel is True
    assert room.source == "wa"
    assert room.channel_id == 123
    assert room.channel_name == "Qiscus 123"
    assert room.app_code == "kovof-123"


@pytest.mark.parametrize("parse", [False, True], ids=["raw", "update"])
def test_the_documented_sdk_body_is_not_an_omnichannel_room(parse: bool) -> None:
    body = example("sdk-documented.json")

    room = detect_room(Update.model_validate(body) if parse else body)

    assert room.omnichannel is False
    assert room.source is None
    assert room.app_code is None


@pytest.mark.parametrize("key", ["source", "channel"])
def test_room_options_naming_a_source_or_channel_mark_an_omnichannel_room(key: str) -> None:
    # Older deliveries carry no top-level app_code/channel: room.options says it alone.
    body = example("sdk-documented.json")
    body["payload"]["room"]["options"] = json.dumps(
        {key: "line", "channel_details": {"channel_id": 9, "name": "Line Shop"}}
    )

    for update in (body, Update.model_validate(body)):
        room = detect_room(update)
        assert room.omnichannel is True
        assert room.source == "line"
        assert room.channel_id == 9
        assert room.channel_name == "Line Shop"


def test_options_given_as_an_object_are_read_too() -> None:
    body = example("sdk-documented.json")
    body["payload"]["room"]["options"] = {"source": "telegram"}

    assert detect_room(body).source == "telegram"
    assert detect_room(Update.model_validate(body)).omnichannel is True


def test_a_top_level_channel_alone_marks_the_room() -> None:
    body = example("omnichannel-documented-2025.json")
    del body["app_code"]
    body["payload"]["room"]["options"] = "{}"

    room = detect_room(body)

    assert room.omnichannel is True
    assert room.source == "wa"


def test_a_top_level_app_code_alone_marks_the_room_without_a_source() -> None:
    body = example("sdk-documented.json")
    body["app_code"] = "kovof-123"

    room = detect_room(body)

    assert room.omnichannel is True
    assert room.source is None


def test_always_and_never_force_the_answer_and_still_read_the_channel() -> None:
    omni = example("omnichannel-documented-2025.json")
    sdk = example("sdk-documented.json")

    assert detect_room(sdk, "always").omnichannel is True
    never = detect_room(omni, "never")
    assert never.omnichannel is False
    assert never.source == "wa"


def test_an_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'sometimes' must be one of auto, always, never"):
        detect_room(example("sdk-documented.json"), "sometimes")  # type: ignore[arg-type]


def test_unreadable_options_are_not_an_omnichannel_sign() -> None:
    body = example("sdk-documented.json")
    body["payload"]["room"]["options"] = "{not json"

    assert detect_room(body).omnichannel is False
    assert detect_room(Update.model_validate(body)).omnichannel is False


def test_the_top_level_channel_source_wins_over_room_options() -> None:
    body = copy.deepcopy(example("omnichannel-documented-2025.json"))
    body["channel"]["source"] = "ig"

    assert detect_room(body).source == "ig"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("wa", "wa"),
        (" WA ", "wa"),
        ("WhatsApp", "wa"),
        ("instagram", "ig"),
        ("Messenger", "fb"),
        ("qiscus", "qiscus"),
        ("custom_channel", "custom_channel"),
        ("", None),
        (None, None),
        (7, None),
    ],
)
def test_sources_are_normalised_to_omnichannel_spelling(given: Any, expected: str | None) -> None:
    assert normalise_source(given) == expected
