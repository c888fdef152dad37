"""Account linking (a login web view) and custom comments (``{type, content}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qbot.errors import MessageBuildError
from qbot.messages._validate import (
    MAX_MESSAGE_LENGTH,
    optional_text,
    require_json,
    require_mapping,
    require_text,
    require_url,
)
from qbot.messages.base import Message, Outgoing, OutgoingComment

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner

_LINKING_PARAMS = ("button_text", "view_title", "success_message")


class AccountLinking(Message):
    """An ``account_linking`` comment: a button opening ``url`` in a web view.

    The web view closes when it reaches ``redirect_url``; nothing is posted back to the bot, so
    your login page must tell your backend itself.

    Args:
        text: the text above the button.
        url: the http(s) login page.
        redirect_url: the http(s) URL that closes the web view.
        button_text: the button's label.
        view_title: the web view's title.
        success_message: shown after the web view closes.
        params: extra JSON-serialisable values sent in ``payload.params``.

    Raises:
        MessageBuildError: empty text or button text, URLs that are not absolute http(s), params
            that are not a JSON dict or that repeat one of the keyword arguments.
    """

    def __init__(
        self,
        *,
        text: str,
        url: str,
        redirect_url: str,
        button_text: str = "Login",
        view_title: str = "",
        success_message: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        self.text = require_text("AccountLinking text", text, max_length=MAX_MESSAGE_LENGTH)
        self.url = require_url("AccountLinking url", url)
        self.redirect_url = require_url("AccountLinking redirect_url", redirect_url)
        self.button_text = require_text("AccountLinking button_text", button_text)
        self.view_title = optional_text("AccountLinking view_title", view_title)
        self.success_message = optional_text("AccountLinking success_message", success_message)
        extra = {} if params is None else require_mapping("AccountLinking params", params)
        for key in _LINKING_PARAMS:
            if key in extra:
                raise MessageBuildError(
                    f"AccountLinking params must not contain {key!r} (got {extra[key]!r}): "
                    f"pass it as the {key}= keyword instead"
                )
        self.params = extra

    def __repr__(self) -> str:
        return f"AccountLinking(text={self.text!r}, url={self.url!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``account_linking`` comment; labels travel inside ``payload.params``."""
        params = {
            **self.params,
            "button_text": self.button_text,
            "view_title": self.view_title,
            "success_message": self.success_message,
        }
        payload = {
            "text": self.text,
            "url": self.url,
            "redirect_url": self.redirect_url,
            "params": params,
        }
        return [OutgoingComment(type="account_linking", message=self.text, payload=payload)]


class Custom(Message):
    """A ``custom`` comment: your own ``{"type": ..., "content": ...}`` for your own client UI.

    Args:
        payload: a dict with a non-empty string ``type`` and a JSON-serialisable ``content``.
        text: the comment text older clients show; defaults to ``[<type>]``.

    Raises:
        MessageBuildError: the payload lacks ``type`` or ``content`` or is not JSON-serialisable.

    Example:
        ``Custom({"type": "promo", "content": {"code": "HEMAT10"}}, text="Promo: HEMAT10")``
    """

    def __init__(self, payload: dict[str, Any], *, text: str | None = None) -> None:
        checked = require_mapping("Custom payload", payload)
        kind = checked.get("type")
        if not isinstance(kind, str) or not kind.strip():
            raise MessageBuildError(
                f"Custom payload needs a non-empty string 'type', got {kind!r} in {payload!r}"
            )
        if "content" not in checked:
            raise MessageBuildError(
                f"Custom payload needs a 'content' key (Qiscus custom is {{type, content}}), "
                f"got keys {sorted(checked)!r}"
            )
        require_json("Custom payload content", checked["content"])
        self.payload = checked
        self.text = (
            f"[{kind}]"
            if text is None
            else require_text("Custom text", text, max_length=MAX_MESSAGE_LENGTH)
        )

    def __repr__(self) -> str:
        return f"Custom({self.payload!r}, text={self.text!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``custom`` comment carrying the payload unchanged."""
        return [OutgoingComment(type="custom", message=self.text, payload=dict(self.payload))]
