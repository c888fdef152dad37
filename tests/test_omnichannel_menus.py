"""Text menus: rich messages as numbered text, and the customer's answer mapped to its button."""

from __future__ import annotations

import pytest

from qbot.errors import MessageBuildError
from qbot.messages import Buttons, Card, Carousel, PostbackSigner, Text, unpack_postback
from qbot.messages.base import OutgoingComment
from qbot.omnichannel import MenuChoice, TextMenu, match_choice, text_menu


def render(message: Buttons | Card | Carousel, signer: PostbackSigner | None = None) -> TextMenu:
    [outgoing] = message.to_outgoing(signer=signer)
    assert isinstance(outgoing, OutgoingComment)
    assert outgoing.payload is not None
    return text_menu(outgoing.type, outgoing.payload, outgoing.message)


def test_buttons_become_numbered_lines_with_links_listed_after() -> None:
    menu = render(
        Buttons("How can we help?")
        .postback("Track my order", action="track")
        .link("Opening hours", "https://shop.example/hours")
        .postback("Talk to an agent", action="human")
    )

    assert menu.text == (
        "How can we help?\n\n"
        "1. Track my order\n"
        "2. Talk to an agent\n\n"
        "Opening hours: https://shop.example/hours"
    )
    assert [(c.number, c.label) for c in menu.choices] == [
        (1, "Track my order"),
        (2, "Talk to an agent"),
    ]


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("1", "Track my order"),
        (" 2 ", "Talk to an agent"),
        ("2.", "Talk to an agent"),
        ("1)", "Track my order"),
        ("#2", "Talk to an agent"),
        ("track my order", "Track my order"),
        ("  TALK   to an AGENT ", "Talk to an agent"),
    ],
)
def test_the_number_or_the_label_names_a_choice(answer: str, label: str) -> None:
    menu = render(
        Buttons("Pick")
        .postback("Track my order", action="track")
        .postback("Talk to an agent", action="human")
    )

    choice = match_choice(answer, menu.choices)

    assert choice is not None
    assert choice.label == label


@pytest.mark.parametrize("answer", ["3", "0", "", "   ", "track", "1 2", "Opening hours"])
def test_an_answer_that_names_no_choice_matches_nothing(answer: str) -> None:
    menu = render(
        Buttons("Pick")
        .postback("Track my order", action="track")
        .postback("Talk to an agent", action="human")
        .link("Opening hours", "https://shop.example/hours")
    )

    assert match_choice(answer, menu.choices) is None


def test_a_chosen_answer_carries_the_signed_postback_a_tap_would() -> None:
    signer = PostbackSigner("postback-secret")
    menu = render(
        Buttons("Rate us").postback("Great", action="rate", data={"score": 5}), signer=signer
    )

    choice = match_choice("1", menu.choices)
    assert choice is not None
    text, payload = choice.postback_response()

    assert text == "Great"
    postback = unpack_postback(payload, signer)
    assert postback is not None
    assert (postback.action, postback.data) == ("rate", {"score": 5})


def test_postback_text_is_what_the_response_says() -> None:
    menu = render(Buttons("Sure?").postback("Yes", action="confirm", postback_text="Yes, please"))

    assert menu.choices[0].postback_response()[0] == "Yes, please"


def test_a_card_shows_title_description_and_link_then_its_choices() -> None:
    menu = render(
        Card(
            title="Red shoes",
            description="Size 42, in stock",
            url="https://shop.example/shoes",
            text="Our pick for you",
        ).postback("Buy", action="buy", data={"sku": 7})
    )

    assert menu.text == (
        "Our pick for you\n\nRed shoes\nSize 42, in stock\nhttps://shop.example/shoes\n1. Buy"
    )
    assert menu.choices[0].label == "Buy"


def test_a_carousel_numbers_choices_across_cards_in_display_order() -> None:
    menu = render(
        Carousel(
            [
                Card(title="Basic", description="Rp 50k").postback("Choose Basic", action="plan"),
                Card(title="Pro", description="Rp 90k")
                .postback("Choose Pro", action="plan", data="pro")
                .link("Compare", "https://shop.example/compare"),
                # No postback button: the card's postback default action is chosen by its title.
                Card(title="Enterprise").default_postback(action="plan", data="ent"),
            ]
        )
    )

    assert menu.text == (
        "Basic\nRp 50k\n1. Choose Basic\n\n"
        "Pro\nRp 90k\n2. Choose Pro\n\n"
        "Enterprise\n3. Enterprise\n\n"
        "Compare: https://shop.example/compare"
    )
    choice = match_choice("3", menu.choices)
    assert choice is not None
    postback = unpack_postback(choice.payload, None)
    assert postback is not None
    assert postback.data == "ent"


def test_a_label_two_choices_share_is_chosen_by_number_only() -> None:
    menu = render(
        Carousel(
            [
                Card(title="A", url="https://a.example").postback("Buy", action="buy", data="a"),
                Card(title="B", url="https://b.example").postback("Buy", action="buy", data="b"),
            ]
        )
    )

    assert match_choice("buy", menu.choices) is None
    second = match_choice("2", menu.choices)
    assert second is not None
    postback = unpack_postback(second.payload, None)
    assert postback is not None
    assert postback.data == "b"


def test_choices_survive_a_json_round_trip_for_room_state() -> None:
    menu = render(Buttons("Pick").postback("One", action="one", data={"n": 1}))

    stored = [c.model_dump(mode="json") for c in menu.choices]
    restored = [MenuChoice.model_validate(c) for c in stored]

    assert restored == list(menu.choices)
    assert match_choice("one", restored) == menu.choices[0]


def test_other_types_are_refused_with_a_named_error() -> None:
    [outgoing] = Text("hello").to_outgoing()

    with pytest.raises(MessageBuildError, match="not 'text'"):
        text_menu(outgoing.type, {}, "hello")  # type: ignore[union-attr]
    with pytest.raises(MessageBuildError, match=r"payload\.cards"):
        text_menu("carousel", {"cards": []})


def test_a_card_link_a_button_lists_is_shown_once_with_its_label() -> None:
    menu = render(
        Card(title="Order #123", url="https://shop.example/orders/123")
        .postback("Where is it?", action="track")
        .link("Order page", "https://shop.example/orders/123")
    )

    assert menu.text == (
        "Order #123\n1. Where is it?\n\nOrder page: https://shop.example/orders/123"
    )
