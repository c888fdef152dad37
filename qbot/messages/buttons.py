"""Buttons: the ``buttons`` comment, and the button list that cards share with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from qbot.errors import MessageBuildError
from qbot.messages._validate import (
    MAX_MESSAGE_LENGTH,
    require_json,
    require_text,
    require_url,
)
from qbot.messages.base import Message, Outgoing, OutgoingComment
from qbot.messages.postback import pack_postback
from qbot.names import plain

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner

# Clients echo the postback button's {url, method, payload} verbatim and never call the URL
# (no Qiscus source shows it being called), so qbot leaves it empty rather than invent one.
POSTBACK_URL = ""
POSTBACK_METHOD = "post"


@dataclass(frozen=True, slots=True)
class Button:
    """What a tap does: post ``action``/``data`` back to the bot, or open ``url``.

    Exactly one of ``action`` and ``url`` is set. Built by ``.postback()``/``.link()``.
    """

    label: str
    action: str | None = None
    data: Any = None
    postback_text: str | None = None
    url: str | None = None

    @classmethod
    def postback(
        cls,
        owner: str,
        label: str,
        *,
        action: str,
        data: Any = None,
        postback_text: str | None = None,
    ) -> Button:
        """A validated postback action; ``owner`` names the builder in error messages."""
        require_text(f"{owner} postback label", label)
        require_text(f"{owner} postback action for {label!r}", action)
        if postback_text is not None:
            require_text(f"{owner} postback_text for {label!r}", postback_text)
        data = require_json(f"{owner} postback data for {label!r}", data)
        # A typed Action member is stored (and packed) as its plain string value.
        action = plain(action)
        return cls(label=label, action=action, data=data, postback_text=postback_text)

    @classmethod
    def link(cls, owner: str, label: str, url: str) -> Button:
        """A validated link action; ``owner`` names the builder in error messages."""
        require_text(f"{owner} link label", label)
        require_url(f"{owner} link url for {label!r}", url)
        return cls(label=label, url=url)

    def to_wire(self, signer: PostbackSigner | None) -> dict[str, Any]:
        """The button (or ``default_action``) object Qiscus clients render."""
        if self.url is not None:
            return {"label": self.label, "type": "link", "payload": {"url": self.url}}
        if self.action is None:
            raise MessageBuildError(f"button {self.label!r} has neither an action nor a url")
        wire: dict[str, Any] = {"label": self.label, "type": "postback"}
        if self.postback_text is not None:
            wire["postback_text"] = self.postback_text
        wire["payload"] = {
            "url": POSTBACK_URL,
            "method": POSTBACK_METHOD,
            "payload": pack_postback(self.action, self.data, signer),
        }
        return wire


class ButtonList:
    """The chainable ``.postback()``/``.link()`` methods shared by :class:`Buttons` and cards."""

    _owner = "Buttons"

    def __init__(self) -> None:
        self.buttons: list[Button] = []

    def postback(
        self,
        label: str,
        *,
        action: str,
        data: Any = None,
        postback_text: str | None = None,
    ) -> Self:
        """Add a button whose tap posts ``action`` and ``data`` back to the bot.

        Args:
            label: the button's text.
            action: routed on with ``@bot.postback(action=...)``; a string or a member of an
                :class:`~qbot.names.Action` class (``Act.CONFIRM``).
            data: JSON-serialisable data, handed to the handler as ``ctx.postback.data``.
            postback_text: the text some clients show as the user's answer instead of the label.

        Returns:
            This builder, to chain further calls.

        Raises:
            MessageBuildError: empty label/action, or data that is not JSON-serialisable.
        """
        self.buttons.append(
            Button.postback(
                self._owner, label, action=action, data=data, postback_text=postback_text
            )
        )
        return self

    def link(self, label: str, url: str) -> Self:
        """Add a button that opens ``url`` in the user's browser.

        Raises:
            MessageBuildError: empty label, or a URL that is not absolute http(s).
        """
        self.buttons.append(Button.link(self._owner, label, url))
        return self

    def _buttons_wire(self, signer: PostbackSigner | None) -> list[dict[str, Any]]:
        return [button.to_wire(signer) for button in self.buttons]


class Buttons(ButtonList, Message):
    """A ``buttons`` comment: a text with buttons under it.

    Args:
        text: the text above the buttons; at most 4000 characters.

    Raises:
        MessageBuildError: empty or too long text; no buttons at send time.

    Example:
        ``Buttons("Pick one").postback("Yes", action="confirm", data={"n": 7}).link("Docs", url)``
    """

    _owner = "Buttons"

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = require_text("Buttons text", text, max_length=MAX_MESSAGE_LENGTH)

    def __repr__(self) -> str:
        return f"Buttons({self.text!r}, buttons={self.buttons!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``buttons`` comment with payload ``{text, buttons}``."""
        if not self.buttons:
            raise MessageBuildError(
                f"Buttons({self.text[:40]!r}) has no buttons: add .postback(...) or .link(...), "
                "or send it as Text"
            )
        payload = {"text": self.text, "buttons": self._buttons_wire(signer)}
        return [OutgoingComment(type="buttons", message=self.text, payload=payload)]
