"""What the bot answered in the test kit: `BotReply`, `Replies` and their assertions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qbot.emulator.webhook import buttons_of

__all__ = ["BotReply", "Replies", "find_postback"]


@dataclass(frozen=True, slots=True)
class BotReply:
    """One comment the bot (or the System user) posted, with readable accessors.

    Attributes:
        comment: the comment as Qiscus serves it (``type``, ``message``, ``payload``, ...).
    """

    comment: dict[str, Any]

    @property
    def type(self) -> str:
        """The comment type: ``text``, ``buttons``, ``card``, ``carousel``, ..."""
        return str(self.comment["type"])

    @property
    def text(self) -> str:
        """The text a reader sees: ``payload.text`` when the type has one, a template's body
        filled, else the message."""
        payload = self.payload
        template = self.template
        if template is not None:
            return str(template.get("body") or "")
        if self.type in ("buttons", "reply", "account_linking") and payload.get("text"):
            return str(payload["text"])
        return str(self.comment["message"])

    @property
    def payload(self) -> dict[str, Any]:
        """The payload object (``{}`` when there is none)."""
        payload = self.comment.get("payload")
        return payload if isinstance(payload, dict) else {}

    @property
    def template(self) -> dict[str, Any] | None:
        """A WhatsApp template as the customer sees it (``name``, ``language``, ``header``,
        ``body``, ``footer``, ``buttons``), ``None`` for any other reply."""
        if self.type == "custom" and self.payload.get("type") == "whatsapp_template":
            content = self.payload.get("content")
            return content if isinstance(content, dict) else None
        return None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Every button shown (a card's and each carousel card's included)."""
        return buttons_of(self.comment)

    @property
    def button_labels(self) -> list[str]:
        """The labels of :attr:`buttons`."""
        return [str(b.get("label", "")) for b in self.buttons]

    @property
    def cards(self) -> list[dict[str, Any]]:
        """The card of a ``card`` comment, or a carousel's cards."""
        if self.type == "card":
            return [self.payload]
        if self.type == "carousel":
            return [c for c in self.payload.get("cards") or [] if isinstance(c, dict)]
        return []

    def describe(self) -> str:
        """One line for failure messages: type, text, buttons and card titles."""
        template = self.template
        if template is not None:
            parts = [f"template {template.get('name')!r}: {template.get('body')!r}"]
        else:
            parts = [f"{self.type}: {self.text!r}"]
        if self.cards:
            parts.append("cards " + ", ".join(repr(c.get("title", "")) for c in self.cards))
        if self.buttons:
            parts.append("buttons " + ", ".join(repr(label) for label in self.button_labels))
        return " · ".join(parts)


class Replies(list[BotReply]):
    """The replies to one user message, in order, with assertion helpers.

    Each ``assert_*`` raises ``AssertionError`` listing what the bot actually answered.
    """

    @property
    def texts(self) -> list[str]:
        """The text of each reply."""
        return [r.text for r in self]

    @property
    def types(self) -> list[str]:
        """The type of each reply."""
        return [r.type for r in self]

    def describe(self) -> str:
        """Every reply on its own numbered line (``(no reply)`` when empty)."""
        if not self:
            return "  (no reply)"
        return "\n".join(f"  {i}. {r.describe()}" for i, r in enumerate(self, 1))

    def _fail(self, what: str) -> AssertionError:
        return AssertionError(f"{what}\nthe bot answered:\n{self.describe()}")

    def assert_texts(self, *expected: str | re.Pattern[str]) -> Replies:
        """The replies' texts are exactly these (a compiled pattern must fully match)."""
        ok = len(self) == len(expected) and all(
            _text_matches(r.text, e) for r, e in zip(self, expected, strict=True)
        )
        if not ok:
            raise self._fail(f"expected texts {list(expected)!r}")
        return self

    def assert_contains(self, fragment: str) -> Replies:
        """Some reply's text contains ``fragment``."""
        if not any(fragment in r.text for r in self):
            raise self._fail(f"expected a reply containing {fragment!r}")
        return self

    def assert_types(self, *expected: str) -> Replies:
        """The replies have exactly these types, in order."""
        if self.types != list(expected):
            raise self._fail(f"expected reply types {list(expected)!r}")
        return self

    def assert_buttons(self, *labels: str) -> Replies:
        """The last reply with buttons shows exactly these labels, in order."""
        with_buttons = [r for r in self if r.buttons]
        if not with_buttons or with_buttons[-1].button_labels != list(labels):
            raise self._fail(f"expected buttons {list(labels)!r}")
        return self

    def assert_cards(self, *titles: str) -> Replies:
        """The last reply with cards shows cards with exactly these titles, in order."""
        with_cards = [r for r in self if r.cards]
        found = [str(c.get("title", "")) for c in with_cards[-1].cards] if with_cards else []
        if found != list(titles) or not with_cards:
            raise self._fail(f"expected cards {list(titles)!r}")
        return self

    def assert_template(self, name: str, *variables: str) -> Replies:
        """The last WhatsApp template among the replies is ``name`` (its body contains each
        of ``variables``, when given)."""
        templates = [r.template for r in self if r.template is not None]
        last = templates[-1] if templates else None
        body = str(last.get("body") or "") if last else ""
        if last is None or last.get("name") != name or not all(v in body for v in variables):
            raise self._fail(f"expected template {name!r} with {list(variables)!r}")
        return self

    def assert_none(self) -> Replies:
        """The bot did not answer."""
        if self:
            raise self._fail("expected no reply")
        return self


def _text_matches(text: str, expected: str | re.Pattern[str]) -> bool:
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(text) is not None
    return text == expected


def find_postback(replies: Iterable[BotReply], label: str) -> dict[str, Any]:
    """The postback button labelled ``label`` in ``replies``, the newest reply first.

    Raises:
        AssertionError: no such button (the message lists the buttons there are), or it is a
            link button, which opens a URL instead of posting back.
    """
    seen: list[str] = []
    for reply in reversed(list(replies)):
        for button in reply.buttons:
            names = {str(button.get("label", "")), str(button.get("postback_text") or "")}
            if label in names:
                if button.get("type") == "link":
                    url = (button.get("payload") or {}).get("url")
                    raise AssertionError(
                        f"button {label!r} is a link (it opens {url!r}), not a postback"
                    )
                return button
            seen.append(str(button.get("label", "")))
    available = ", ".join(repr(s) for s in seen) or "none"
    raise AssertionError(f"no button {label!r} in the last replies; buttons there: {available}")
