"""Buttons, Card and Carousel: exact wire payloads and validation messages."""

from __future__ import annotations

from typing import Any

import pytest

from qbot.errors import MessageBuildError
from qbot.messages import (
    Buttons,
    Card,
    Carousel,
    OutgoingComment,
    PostbackSigner,
    unpack_postback,
)


def _one(outgoing: list[Any]) -> OutgoingComment:
    [comment] = outgoing
    assert isinstance(comment, OutgoingComment)
    return comment


def test_buttons_wire_form_matches_rest_api() -> None:
    message = (
        Buttons("silahkan pencet")
        .postback("button1", action="confirm", data={"n": 7}, postback_text="Yes please")
        .link("button2", "http://somewhere.com/button2?id=123")
    )
    comment = _one(message.to_outgoing())
    assert comment.type == "buttons"
    assert comment.message == "silahkan pencet"
    assert comment.payload == {
        "text": "silahkan pencet",
        "buttons": [
            {
                "label": "button1",
                "type": "postback",
                "postback_text": "Yes please",
                "payload": {
                    "url": "",
                    "method": "post",
                    "payload": {"qbot": 1, "a": "confirm", "d": {"n": 7}},
                },
            },
            {
                "label": "button2",
                "type": "link",
                "payload": {"url": "http://somewhere.com/button2?id=123"},
            },
        ],
    }


def test_buttons_without_data_or_postback_text_omit_them() -> None:
    comment = _one(Buttons("t").postback("Go", action="go").to_outgoing())
    assert comment.payload is not None
    assert comment.payload["buttons"] == [
        {
            "label": "Go",
            "type": "postback",
            "payload": {"url": "", "method": "post", "payload": {"qbot": 1, "a": "go"}},
        }
    ]


def test_buttons_signed_with_the_signer_given_at_send_time() -> None:
    signer = PostbackSigner("s3cret")
    message = Buttons("t").postback("Go", action="go", data=[1, 2])
    comment = _one(message.to_outgoing(signer=signer))
    assert comment.payload is not None
    button_payload = comment.payload["buttons"][0]["payload"]
    packed = button_payload["payload"]
    assert packed["s"] == signer.sign("go", [1, 2], None, None, packed["t"])
    unpacked = unpack_postback(button_payload, signer)
    assert unpacked is not None
    assert unpacked.data == [1, 2]


def test_postback_data_is_stored_as_json_would_return_it() -> None:
    message = Buttons("t").postback("Go", action="go", data={"pair": (1, 2)})
    assert message.buttons[0].data == {"pair": [1, 2]}


def test_buttons_need_at_least_one_button() -> None:
    with pytest.raises(MessageBuildError, match=r"has no buttons: add \.postback"):
        Buttons("lonely").to_outgoing()


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: Buttons(""), r"Buttons text must not be empty, got ''"),
        (lambda: Buttons("x" * 4001), r"Buttons text is 4001 characters"),
        (lambda: Buttons("t").postback("", action="a"), r"postback label must not be empty"),
        (lambda: Buttons("t").postback("L", action=""), r"postback action for 'L' must not be"),
        (
            lambda: Buttons("t").postback("L", action="a", postback_text=""),
            r"postback_text for 'L' must not be empty",
        ),
        (
            lambda: Buttons("t").postback("L", action="a", data={1, 2}),
            r"postback data for 'L' must be JSON-serialisable.*\{1, 2\}",
        ),
        (
            lambda: Buttons("t").postback("L", action="a", data=float("nan")),
            r"postback data for 'L' must be JSON-serialisable.*nan",
        ),
        (lambda: Buttons("t").link("", "https://x.io"), r"link label must not be empty"),
        (
            lambda: Buttons("t").link("Docs", "javascript:alert(1)"),
            r"link url for 'Docs' must be an absolute http:// or https:// URL, "
            r"got 'javascript:alert\(1\)'",
        ),
        (lambda: Buttons("t").link("Docs", "/relative"), r"got '/relative'"),
    ],
)
def test_buttons_validation_names_field_and_value(build: Any, pattern: str) -> None:
    with pytest.raises(MessageBuildError, match=pattern):
        build()


def test_card_wire_form_matches_rest_api_request() -> None:
    card = Card(
        title="Atasan Blouse",
        description="Oleh sippnshop\nRp 49.000",
        image_url="http://url.com/gambar.jpg",
        url="http://url.com/baju?id=123",
        text="Special deal buat sista nih..",
    ).link("button2", "http://somewhere.com/button2?id=123")
    comment = _one(card.to_outgoing())
    assert comment.type == "card"
    assert comment.message == "Special deal buat sista nih.."
    assert comment.payload == {
        "text": "Special deal buat sista nih..",
        "image_url": "http://url.com/gambar.jpg",
        "title": "Atasan Blouse",
        "description": "Oleh sippnshop\nRp 49.000",
        "url": "http://url.com/baju?id=123",
        "buttons": [
            {
                "label": "button2",
                "type": "link",
                "payload": {"url": "http://somewhere.com/button2?id=123"},
            }
        ],
    }


def test_card_without_text_uses_title_as_message_and_omits_unset_urls() -> None:
    comment = _one(Card(title="Plain").to_outgoing())
    assert comment.message == "Plain"
    assert comment.payload == {"text": "", "title": "Plain", "description": "", "buttons": []}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"title": ""}, r"Card title must not be empty, got ''"),
        ({"title": "t", "image_url": "ftp://x/y.png"}, r"Card image_url .* got 'ftp://x/y.png'"),
        ({"title": "t", "url": "www.example.com"}, r"Card url .* got 'www.example.com'"),
        ({"title": "t", "description": 5}, r"Card description must be a string, got 5"),
    ],
)
def test_card_validation_names_field_and_value(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(MessageBuildError, match=pattern):
        Card(**kwargs)


def test_carousel_wire_form_has_a_default_action_per_card() -> None:
    carousel = Carousel(
        [
            Card(title="A", description="first", image_url="https://a.io/a.png")
            .default_postback("pick", data={"id": "a"})
            .postback("Buy A", action="buy", data={"id": "a"}),
            Card(title="B", url="https://b.io"),
        ]
    ).add(Card(title="C").link("Open C", "https://c.io"))
    comment = _one(carousel.to_outgoing())
    assert comment.type == "carousel"
    assert comment.message == "A\nB\nC"
    assert comment.payload == {
        "cards": [
            {
                "title": "A",
                "description": "first",
                "image": "https://a.io/a.png",
                "image_url": "https://a.io/a.png",
                "buttons": [
                    {
                        "label": "Buy A",
                        "type": "postback",
                        "payload": {
                            "url": "",
                            "method": "post",
                            "payload": {"qbot": 1, "a": "buy", "d": {"id": "a"}},
                        },
                    }
                ],
                "default_action": {
                    "label": "A",
                    "type": "postback",
                    "payload": {
                        "url": "",
                        "method": "post",
                        "payload": {"qbot": 1, "a": "pick", "d": {"id": "a"}},
                    },
                },
            },
            {
                "title": "B",
                "description": "",
                "url": "https://b.io",
                "buttons": [],
                "default_action": {
                    "label": "B",
                    "type": "link",
                    "payload": {"url": "https://b.io"},
                },
            },
            {
                "title": "C",
                "description": "",
                "buttons": [
                    {"label": "Open C", "type": "link", "payload": {"url": "https://c.io"}}
                ],
                "default_action": {
                    "label": "Open C",
                    "type": "link",
                    "payload": {"url": "https://c.io"},
                },
            },
        ]
    }


def test_carousel_default_link_and_explicit_text() -> None:
    card = Card(title="D", url="https://d.io/page").default_link("https://d.io/other")
    comment = _one(Carousel([card], text="Pick a shop").to_outgoing())
    assert comment.message == "Pick a shop"
    assert comment.payload is not None
    assert comment.payload["cards"][0]["default_action"]["payload"] == {"url": "https://d.io/other"}


def test_carousel_card_without_any_action_is_rejected() -> None:
    with pytest.raises(MessageBuildError, match=r"carousel card 'Bare' needs a default action"):
        Carousel([Card(title="Bare")]).to_outgoing()


def test_carousel_needs_cards_and_only_cards() -> None:
    with pytest.raises(MessageBuildError, match=r"Carousel has no cards"):
        Carousel().to_outgoing()
    with pytest.raises(MessageBuildError, match=r"Carousel cards must be Card objects, got 'x'"):
        Carousel(["x"])  # type: ignore[list-item]


def test_carousel_postbacks_are_signed() -> None:
    signer = PostbackSigner("k")
    card = Card(title="A").default_postback("pick", data=1)
    comment = _one(Carousel([card]).to_outgoing(signer=signer))
    assert comment.payload is not None
    default = comment.payload["cards"][0]["default_action"]["payload"]
    unpacked = unpack_postback(default, signer)
    assert unpacked is not None
    assert (unpacked.action, unpacked.data) == ("pick", 1)
