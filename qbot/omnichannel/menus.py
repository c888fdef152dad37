"""Text menus: buttons, cards and carousels as numbered text, and the customer's answer read back.

Channels such as WhatsApp do not render Qiscus buttons the way the Qiscus clients do, so bots on
them send menus as text and read the number back::

    Pick one

    1. Track my order
    2. Talk to an agent

```python
menu = text_menu("buttons", payload)            # payload of Buttons(...).to_outgoing()[0]
await omni.send_bot_message(room_id, menu.text)
...
choice = match_choice(customer_text, menu.choices)  # "1", "track my order ", "2." ...
if choice is not None:
    text, payload = choice.postback_response()      # what a tap on the button would post
```

Postback buttons are numbered (across all cards of a carousel, in display order); link buttons
are listed after them as ``label: url`` and cannot be chosen; a card's own ``url`` is shown
under its title unless a link button already lists it. A carousel card without postback
buttons whose ``default_action`` is a postback is numbered by its title. A label shared by two
choices can only be chosen by number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from qbot.errors import MessageBuildError

__all__ = ["MENU_TYPES", "MenuChoice", "TextMenu", "match_choice", "text_menu"]

MENU_TYPES = frozenset({"buttons", "card", "carousel"})
"""Comment types `text_menu` renders."""

_NUMBER = re.compile(r"^\s*#?(\d{1,3})\s*[.)]?\s*$")


class MenuChoice(BaseModel):
    """One numbered choice; JSON-serialisable (``model_dump()``) to keep it in room state.

    Attributes:
        number: what the customer types to choose it (1-based).
        label: the button's label.
        payload: the button's ``payload`` object, which a tap echoes as the payload of its
            ``button_postback_response`` (qbot's packed, possibly signed, action and data).
        postback_text: the button's ``postback_text``, when it has one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    label: str
    payload: dict[str, Any]
    postback_text: str | None = None

    def postback_response(self) -> tuple[str, dict[str, Any]]:
        """``(text, payload)`` of the ``button_postback_response`` a tap on it would post."""
        return self.postback_text or self.label, dict(self.payload)


@dataclass(frozen=True, slots=True)
class TextMenu:
    """A menu rendered as text: send ``text``, keep ``choices`` to read the answer."""

    text: str
    choices: tuple[MenuChoice, ...]


def _buttons(value: Any) -> list[Mapping[str, Any]]:
    return [b for b in value if isinstance(b, Mapping)] if isinstance(value, list) else []


def _label(button: Mapping[str, Any]) -> str:
    return str(button.get("label") or "").strip()


class _Builder:
    def __init__(self) -> None:
        self.choices: list[MenuChoice] = []
        self.links: list[str] = []

    def add(self, button: Mapping[str, Any], label: str | None = None) -> str | None:
        """Number a postback button (returns its line) or keep a link for the end."""
        name = label or _label(button)
        payload = button.get("payload")
        if button.get("type") == "link" or not name:
            url = payload.get("url") if isinstance(payload, Mapping) else None
            if name and url:
                self.links.append(f"{name}: {url}")
            return None
        postback_text = button.get("postback_text")
        choice = MenuChoice(
            number=len(self.choices) + 1,
            label=name,
            payload=dict(payload) if isinstance(payload, Mapping) else {},
            postback_text=postback_text if isinstance(postback_text, str) else None,
        )
        self.choices.append(choice)
        return f"{choice.number}. {name}"

    @staticmethod
    def _link_urls(card: Mapping[str, Any]) -> set[str]:
        payloads = [b.get("payload") for b in _buttons(card.get("buttons"))]
        return {str(p["url"]).strip() for p in payloads if isinstance(p, Mapping) and p.get("url")}

    def card(self, card: Mapping[str, Any], *, carousel: bool) -> list[str]:
        title = str(card.get("title") or "").strip()
        lines = [title] if title else []
        description = str(card.get("description") or "").strip()
        if description:
            lines.append(description)
        url = str(card.get("url") or "").strip()
        # The card's link once: not as a bare line when a link button lists it with its label.
        if url and not carousel and url not in self._link_urls(card):
            lines.append(url)
        numbered = [line for b in _buttons(card.get("buttons")) if (line := self.add(b))]
        default = card.get("default_action")
        if carousel and not numbered and isinstance(default, Mapping):
            line = self.add(default, label=title or None)
            numbered = [line] if line else []
        return [*lines, *numbered]


def text_menu(type: str, payload: Mapping[str, Any], message: str = "") -> TextMenu:
    """Render a ``buttons``, ``card`` or ``carousel`` payload as numbered text.

    Args:
        type: the comment type (see `MENU_TYPES`).
        payload: its payload, as the builders produce it.
        message: the comment's text, used when a ``buttons`` payload has none.

    Raises:
        MessageBuildError: another type, or a payload without the type's list.
    """
    builder = _Builder()
    if type == "buttons":
        head = str(payload.get("text") or message).strip()
        lines = [line for b in _buttons(payload.get("buttons")) if (line := builder.add(b))]
        blocks = [head, "\n".join(lines)]
    elif type == "card":
        head = str(payload.get("text") or "").strip()
        blocks = [head, "\n".join(builder.card(payload, carousel=False))]
    elif type == "carousel":
        cards = [c for c in payload.get("cards") or [] if isinstance(c, Mapping)]
        if not cards:
            raise MessageBuildError("a carousel text menu needs payload.cards")
        blocks = ["\n".join(builder.card(c, carousel=True)) for c in cards]
    else:
        raise MessageBuildError(
            f"only {', '.join(sorted(MENU_TYPES))} comments become text menus, not {type!r}"
        )
    blocks.append("\n".join(builder.links))
    text = "\n\n".join(block for block in blocks if block)
    return TextMenu(text=text, choices=tuple(builder.choices))


def match_choice(answer: str, choices: Sequence[MenuChoice]) -> MenuChoice | None:
    """The choice a customer's answer names: its number (``2``, ``2.``, ``#2``) or its label.

    Labels match exactly, ignoring case and surrounding spaces; a label two choices share
    matches neither. Returns ``None`` when the answer names no choice.
    """
    number = _NUMBER.match(answer)
    if number is not None:
        wanted = int(number.group(1))
        return next((c for c in choices if c.number == wanted), None)
    text = " ".join(answer.split()).casefold()
    if not text:
        return None
    named = [c for c in choices if " ".join(c.label.split()).casefold() == text]
    return named[0] if len(named) == 1 else None
