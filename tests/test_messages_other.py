"""AccountLinking, Custom, SystemEvent, as_message and message_from_spec."""

from __future__ import annotations

from typing import Any

import pytest

from qbot.errors import MessageBuildError
from qbot.messages import (
    AccountLinking,
    Buttons,
    Card,
    Carousel,
    Custom,
    OutgoingComment,
    OutgoingSystemEvent,
    Reply,
    SystemEvent,
    Text,
    as_message,
    message_from_spec,
)


def test_account_linking_wire_form_matches_rest_api() -> None:
    message = AccountLinking(
        text="silahkan login",
        url="http://google.com",
        redirect_url="http://google.com/redirect",
        button_text="ini button",
        view_title="title",
        success_message="sip!",
        params={"user_id": 1, "topic_id": 1},
    )
    [comment] = message.to_outgoing()
    assert comment == OutgoingComment(
        type="account_linking",
        message="silahkan login",
        payload={
            "text": "silahkan login",
            "url": "http://google.com",
            "redirect_url": "http://google.com/redirect",
            "params": {
                "user_id": 1,
                "topic_id": 1,
                "button_text": "ini button",
                "view_title": "title",
                "success_message": "sip!",
            },
        },
    )


def test_account_linking_defaults() -> None:
    [comment] = AccountLinking(
        text="login", url="https://a.io/login", redirect_url="https://a.io/done"
    ).to_outgoing()
    assert isinstance(comment, OutgoingComment)
    assert comment.payload is not None
    assert comment.payload["params"] == {
        "button_text": "Login",
        "view_title": "",
        "success_message": "",
    }


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"text": ""}, r"AccountLinking text must not be empty"),
        ({"url": "mailto:x@y.z"}, r"AccountLinking url .* got 'mailto:x@y.z'"),
        ({"redirect_url": "nope"}, r"AccountLinking redirect_url .* got 'nope'"),
        ({"button_text": ""}, r"AccountLinking button_text must not be empty"),
        ({"params": {"button_text": "x"}}, r"params must not contain 'button_text'.*keyword"),
        ({"params": {"at": object}}, r"AccountLinking params must be JSON-serialisable"),
    ],
)
def test_account_linking_validation(kwargs: dict[str, Any], pattern: str) -> None:
    args: dict[str, Any] = {
        "text": "login",
        "url": "https://a.io/login",
        "redirect_url": "https://a.io/done",
        **kwargs,
    }
    with pytest.raises(MessageBuildError, match=pattern):
        AccountLinking(**args)


def test_custom_wire_form_and_fallback_text() -> None:
    payload = {"type": "promo", "content": {"code": "HEMAT10"}}
    [comment] = Custom(payload).to_outgoing()
    assert comment == OutgoingComment(type="custom", message="[promo]", payload=payload)
    [with_text] = Custom(payload, text="Promo HEMAT10").to_outgoing()
    assert isinstance(with_text, OutgoingComment)
    assert with_text.message == "Promo HEMAT10"


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ({"content": {}}, r"non-empty string 'type', got None"),
        ({"type": "", "content": {}}, r"non-empty string 'type', got ''"),
        ({"type": "promo"}, r"needs a 'content' key .* got keys \['type'\]"),
        ({"type": "promo", "content": {1, 2}}, r"Custom payload must be JSON-serialisable"),
        (["type", "content"], r"Custom payload must be a dict, got \['type', 'content'\]"),
    ],
)
def test_custom_validation(payload: Any, pattern: str) -> None:
    with pytest.raises(MessageBuildError, match=pattern):
        Custom(payload)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            SystemEvent("create_room", updated_room_name="Qiscus"),
            OutgoingSystemEvent("create_room", updated_room_name="Qiscus"),
        ),
        (
            SystemEvent("add_member", subject_email="u@q.com", object_email=["ani@q.com"]),
            OutgoingSystemEvent("add_member", subject_email="u@q.com", object_email=["ani@q.com"]),
        ),
        (SystemEvent("join_room"), OutgoingSystemEvent("join_room")),
        (
            SystemEvent("remove_member", object_email=("a@q.com", "b@q.com")),
            OutgoingSystemEvent("remove_member", object_email=["a@q.com", "b@q.com"]),
        ),
        (SystemEvent("left_room"), OutgoingSystemEvent("left_room")),
        (
            SystemEvent("change_room_name", updated_room_name="Family"),
            OutgoingSystemEvent("change_room_name", updated_room_name="Family"),
        ),
        (SystemEvent("change_room_avatar"), OutgoingSystemEvent("change_room_avatar")),
        (
            SystemEvent.custom({"type": "add_admin", "admin_email": "admin@email.com"}),
            OutgoingSystemEvent(
                "custom", payload={"type": "add_admin", "admin_email": "admin@email.com"}
            ),
        ),
    ],
)
def test_system_event_wire_forms(event: SystemEvent, expected: OutgoingSystemEvent) -> None:
    assert event.to_outgoing() == [expected]


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: SystemEvent("kick"), r"'kick' is not one of create_room, add_member, join_room"),
        (lambda: SystemEvent("add_member"), r"'add_member' needs object_email=\[\.\.\.\]"),
        (lambda: SystemEvent("remove_member", object_email=[]), r"needs object_email"),
        (
            lambda: SystemEvent("add_member", object_email="a@q.com"),
            r"must be a list of emails, got the string 'a@q.com'",
        ),
        (lambda: SystemEvent("create_room"), r"'create_room' updated_room_name must be a string"),
        (
            lambda: SystemEvent("change_room_name", updated_room_name=""),
            r"'change_room_name' updated_room_name must not be empty",
        ),
        (lambda: SystemEvent.custom({}), r"payload must not be empty"),
    ],
)
def test_system_event_validation(build: Any, pattern: str) -> None:
    with pytest.raises(MessageBuildError, match=pattern):
        build()


def test_as_message() -> None:
    text = as_message("hi")
    assert isinstance(text, Text)
    assert text.text == "hi"
    buttons = Buttons("b").link("x", "https://x.io")
    assert as_message(buttons) is buttons
    with pytest.raises(MessageBuildError, match=r"cannot send a dict \(\{'a': 1\}\)"):
        as_message({"a": 1})  # type: ignore[arg-type]


def test_spec_builds_buttons_like_the_builder() -> None:
    spec = {
        "type": "buttons",
        "text": "Pick",
        "buttons": [
            {"label": "Yes", "action": "confirm", "data": {"n": 7}, "postback_text": "OK"},
            {"label": "Docs", "url": "https://x.io/docs"},
        ],
    }
    expected = (
        Buttons("Pick")
        .postback("Yes", action="confirm", data={"n": 7}, postback_text="OK")
        .link("Docs", "https://x.io/docs")
    )
    assert message_from_spec(spec).to_outgoing() == expected.to_outgoing()


def test_spec_builds_every_type() -> None:
    specs: list[tuple[dict[str, Any], Any]] = [
        (
            {"type": "text", "text": "hi", "disable_link_preview": True},
            Text("hi", disable_link_preview=True),
        ),
        ({"type": "reply", "text": "r", "replied_comment_id": 5}, Reply("r", replied_comment_id=5)),
        (
            {"type": "custom", "payload": {"type": "t", "content": 1}, "text": "c"},
            Custom({"type": "t", "content": 1}, text="c"),
        ),
        (
            {
                "type": "account_linking",
                "text": "l",
                "url": "https://a.io",
                "redirect_url": "https://a.io/r",
                "params": {"x": 1},
            },
            AccountLinking(
                text="l", url="https://a.io", redirect_url="https://a.io/r", params={"x": 1}
            ),
        ),
        (
            {
                "type": "card",
                "title": "T",
                "image_url": "https://i.io/p.png",
                "buttons": [{"label": "Go", "action": "go"}],
            },
            Card(title="T", image_url="https://i.io/p.png").postback("Go", action="go"),
        ),
        (
            {
                "type": "carousel",
                "cards": [
                    {"title": "A", "default_action": {"action": "pick", "data": 1}},
                    {"title": "B", "default_action": {"url": "https://b.io"}},
                ],
            },
            Carousel(
                [
                    Card(title="A").default_postback("pick", data=1),
                    Card(title="B").default_link("https://b.io"),
                ]
            ),
        ),
        (
            {
                "type": "system_event",
                "system_event_type": "add_member",
                "object_email": ["a@q.com"],
            },
            SystemEvent("add_member", object_email=["a@q.com"]),
        ),
        (
            {"type": "system_event", "system_event_type": "custom", "payload": {"type": "x"}},
            SystemEvent.custom({"type": "x"}),
        ),
    ]
    for spec, expected in specs:
        assert message_from_spec(spec).to_outgoing() == expected.to_outgoing(), spec


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"text": "hi"}, r"^type: missing required key"),
        ({"type": "video"}, r"^type: unknown message type 'video'"),
        ({"type": "text"}, r"^text: missing required key"),
        ({"type": "text", "text": "hi", "colour": "red"}, r"^colour: unknown key \(allowed:"),
        ({"type": "text", "text": ""}, r"^text: Text text must not be empty"),
        (
            {"type": "text", "text": "x", "disable_link_preview": "yes"},
            r"^disable_link_preview: expected true or false, got 'yes'",
        ),
        (
            {"type": "buttons", "text": "t", "buttons": "Yes"},
            r"^buttons: expected a list, got 'Yes'",
        ),
        (
            {"type": "buttons", "text": "t", "buttons": [{"label": "x"}]},
            r"^buttons\[0\]\.action: missing required key",
        ),
        (
            {
                "type": "buttons",
                "text": "t",
                "buttons": [{"label": "a", "action": "a"}, {"label": "b", "url": "ftp://x"}],
            },
            r"^buttons\[1\]: .*link url for 'b' .* got 'ftp://x'",
        ),
        (
            {
                "type": "buttons",
                "text": "t",
                "buttons": [{"label": "a", "url": "https://a.io", "data": 1}],
            },
            r"^buttons\[0\]\.data: unknown key",
        ),
        (
            {
                "type": "buttons",
                "text": "t",
                "buttons": [{"type": "postback", "label": "a", "action": "a"}],
            },
            r"^buttons\[0\]\.type: unknown key",
        ),
        (
            {
                "type": "carousel",
                "cards": [
                    {"title": "A", "url": "https://a.io"},
                    {"title": "B", "buttons": [{"label": "", "action": "b"}]},
                ],
            },
            r"^cards\[1\]\.buttons\[0\]: .*label must not be empty",
        ),
        (
            {"type": "carousel", "cards": [{"title": "A", "default_action": {"url": "nope"}}]},
            r"^cards\[0\]\.default_action: .* got 'nope'",
        ),
        ({"type": "carousel", "cards": ["A"]}, r"^cards\[0\]: expected a mapping, got 'A'"),
        (
            {"type": "system_event", "system_event_type": "kick"},
            r"^system_event: system_event_type 'kick' is not one of",
        ),
        ({"type": "reply", "text": "x", "replied_comment_id": "5"}, r"^reply: .*got '5'"),
    ],
)
def test_spec_errors_name_the_key_path(spec: dict[str, Any], pattern: str) -> None:
    with pytest.raises(MessageBuildError, match=pattern):
        message_from_spec(spec)
