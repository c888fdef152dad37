"""Cards and carousels of cards.

A standalone ``card`` follows rest-api-v2's request structure (``image_url``). Carousels are not
in rest-api-v2; their format comes from what Qiscus's clients render (the Android SDK's
``QiscusCarouselItemView``): ``{"cards": [...]}`` where each card has ``image``, ``title``,
``description``, ``buttons`` and a ``default_action`` (a button object run when the card itself
is tapped; clients fail on a card without one, so qbot always fills it in).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from qbot.errors import MessageBuildError
from qbot.messages._validate import (
    MAX_MESSAGE_LENGTH,
    optional_text,
    require_text,
    require_url,
)
from qbot.messages.base import Message, Outgoing, OutgoingComment
from qbot.messages.buttons import Button, ButtonList

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner


class Card(ButtonList, Message):
    """A ``card`` comment: image, title, description, link and buttons.

    Args:
        title: the card's title; must not be empty.
        description: text under the title.
        image_url: an http(s) image URL.
        url: the http(s) page a tap on the card opens.
        text: the comment text shown with the card (the title when empty).

    Raises:
        MessageBuildError: an empty title, a URL that is not absolute http(s), texts over 4000
            characters.

    Example:
        ``Card(title="Blouse", url="https://shop.example/b").postback("Buy", action="buy")``
    """

    _owner = "Card"

    def __init__(
        self,
        *,
        title: str,
        description: str = "",
        image_url: str | None = None,
        url: str | None = None,
        text: str = "",
    ) -> None:
        super().__init__()
        self.title = require_text("Card title", title, max_length=MAX_MESSAGE_LENGTH)
        self.description = optional_text(
            "Card description", description, max_length=MAX_MESSAGE_LENGTH
        )
        self.image_url = None if image_url is None else require_url("Card image_url", image_url)
        self.url = None if url is None else require_url("Card url", url)
        self.text = optional_text("Card text", text, max_length=MAX_MESSAGE_LENGTH)
        self.default_action: Button | None = None

    def __repr__(self) -> str:
        return f"Card(title={self.title!r}, buttons={self.buttons!r})"

    def default_postback(
        self, action: str, *, data: Any = None, postback_text: str | None = None
    ) -> Self:
        """In a carousel, make a tap on the card itself post ``action``/``data`` to the bot.

        Raises:
            MessageBuildError: an empty action, or data that is not JSON-serialisable.
        """
        self.default_action = Button.postback(
            "Card default", self.title, action=action, data=data, postback_text=postback_text
        )
        return self

    def default_link(self, url: str) -> Self:
        """In a carousel, make a tap on the card itself open ``url``.

        Raises:
            MessageBuildError: a URL that is not absolute http(s).
        """
        self.default_action = Button.link("Card default", self.title, url)
        return self

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``card`` comment; the payload uses rest-api-v2's request fields."""
        payload: dict[str, Any] = {"text": self.text}
        if self.image_url is not None:
            payload["image_url"] = self.image_url
        payload["title"] = self.title
        payload["description"] = self.description
        if self.url is not None:
            payload["url"] = self.url
        payload["buttons"] = self._buttons_wire(signer)
        return [OutgoingComment(type="card", message=self.text or self.title, payload=payload)]

    def carousel_item(self, signer: PostbackSigner | None = None) -> dict[str, Any]:
        """This card as one entry of a carousel's ``cards``.

        The ``default_action`` is, in order: the one set with ``default_postback()``/
        ``default_link()``, a link to ``url``, the first button.

        Raises:
            MessageBuildError: none of those exists.
        """
        default = self.default_action
        if default is None and self.url is not None:
            default = Button(label=self.title, url=self.url)
        if default is None and self.buttons:
            default = self.buttons[0]
        if default is None:
            raise MessageBuildError(
                f"carousel card {self.title!r} needs a default action for taps on the card: "
                "give it url=..., a button, or call .default_postback(...)/.default_link(...)"
            )
        item: dict[str, Any] = {"title": self.title, "description": self.description}
        if self.image_url is not None:
            # Clients render "image"; "image_url" mirrors the v2 card request field.
            item["image"] = self.image_url
            item["image_url"] = self.image_url
        if self.url is not None:
            item["url"] = self.url
        item["buttons"] = self._buttons_wire(signer)
        item["default_action"] = default.to_wire(signer)
        return item


class Carousel(Message):
    """A ``carousel`` comment: cards the user swipes through.

    Args:
        cards: the cards, in order; more can be added with :meth:`add`.
        text: the comment text; defaults to the card titles, one per line.

    Raises:
        MessageBuildError: something other than a Card; no cards at send time.

    Example:
        ``Carousel([Card(title="A", url="https://a.example"), Card(title="B", url=...)])``
    """

    __slots__ = ("cards", "text")

    def __init__(self, cards: Iterable[Card] = (), *, text: str = "") -> None:
        self.text = optional_text("Carousel text", text, max_length=MAX_MESSAGE_LENGTH)
        self.cards: list[Card] = []
        for card in cards:
            self.add(card)

    def __repr__(self) -> str:
        return f"Carousel({self.cards!r})"

    def add(self, card: Card) -> Self:
        """Append a card; returns this carousel to chain calls.

        Raises:
            MessageBuildError: ``card`` is not a :class:`Card`.
        """
        if not isinstance(card, Card):
            raise MessageBuildError(f"Carousel cards must be Card objects, got {card!r}")
        self.cards.append(card)
        return self

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``carousel`` comment with payload ``{"cards": [...]}``."""
        if not self.cards:
            raise MessageBuildError("Carousel has no cards: add at least one with .add(Card(...))")
        items = [card.carousel_item(signer) for card in self.cards]
        message = self.text or "\n".join(card.title for card in self.cards)[:MAX_MESSAGE_LENGTH]
        return [OutgoingComment(type="carousel", message=message, payload={"cards": items})]
