"""WhatsApp message templates: the only messages a bot may send outside the 24-hour window.

```python
from qbot.omnichannel.templates import QuickReply, Template

reminder = Template(
    "order_shipped",
    language="id",
    variables=["Budi", "INV-1042", "besok"],
    buttons=[QuickReply("Lacak pesanan", action="track", data={"order": "INV-1042"})],
)
await ctx.send_template(reminder)          # or ctx.send_template("order_shipped", variables=...)
```

A template is written and approved in advance (in the Omnichannel dashboard, then by Meta);
a bot only fills its ``{{1}}``, ``{{2}}``... placeholders, and its quick-reply buttons carry a
payload WhatsApp echoes when the customer taps one: qbot puts its signed postback there, so a
tap routes to ``@bot.postback(action=...)``.

WhatsApp's limits are checked before anything is sent (`Template.check`), raising
`~qbot.errors.TemplateLimitError` naming the limit and the value: a header of at most
:data:`MAX_HEADER` characters, a body of at most :data:`MAX_BODY` characters with at most
:data:`MAX_VARIABLES` variables, at most :data:`MAX_QUICK_REPLIES` quick-reply buttons of at
most :data:`MAX_BUTTON_LABEL` characters. When the approved template is known
(`ApprovedTemplate`, from `OmnichannelClient.templates`), the variables must match its
placeholders exactly and the buttons its quick replies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from qbot._json import dumps_text
from qbot.errors import MessageBuildError, TemplateLimitError
from qbot.messages._validate import require_json
from qbot.messages.base import Message, OutgoingComment
from qbot.messages.postback import pack_postback
from qbot.names import plain

if TYPE_CHECKING:
    from qbot.messages import Outgoing
    from qbot.messages.postback import PostbackSigner

__all__ = [
    "MAX_BODY",
    "MAX_BUTTON_LABEL",
    "MAX_HEADER",
    "MAX_QUICK_REPLIES",
    "MAX_VARIABLES",
    "TEMPLATE_TYPE",
    "ApprovedTemplate",
    "QuickReply",
    "Template",
    "TemplateContent",
    "placeholders",
]

MAX_HEADER = 60
"""Characters of a template's text header."""
MAX_BODY = 1024
"""Characters of a template's body, placeholders filled."""
MAX_VARIABLES = 15
"""Variables (``{{1}}``...) of a template's body."""
MAX_QUICK_REPLIES = 3
"""Quick-reply buttons of a template."""
MAX_BUTTON_LABEL = 25
"""Characters of a quick-reply button's label."""
TEMPLATE_TYPE = "qbot_whatsapp_template"
"""The comment type of an outbox record that is a template send (never a Qiscus comment)."""

_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def placeholders(text: str | None) -> int:
    """How many distinct ``{{n}}`` placeholders ``text`` has."""
    return len({m.group(1) for m in _PLACEHOLDER.finditer(text or "")})


def fill(text: str | None, values: Sequence[str]) -> str:
    """``text`` with ``{{n}}`` replaced by ``values[n-1]`` (a missing value left as is)."""

    def one(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return values[index] if 0 <= index < len(values) else match.group(0)

    return _PLACEHOLDER.sub(one, text or "")


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A template's quick-reply button: its label, and the postback a tap routes to.

    Args:
        label: the button's text, as approved (at most 25 characters).
        action: routed on with ``@bot.postback(action=...)``.
        data: JSON data handed to the handler as ``ctx.postback.data``.
    """

    label: str
    action: str
    data: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise MessageBuildError("a quick-reply button needs a label")
        if not isinstance(self.action, str) or not self.action.strip():
            raise MessageBuildError(f"quick-reply button {self.label!r} needs an action")
        object.__setattr__(self, "action", plain(self.action))
        data = require_json(f"quick-reply button {self.label!r} data", self.data)
        object.__setattr__(self, "data", data)

    def payload(self, signer: PostbackSigner | None) -> str:
        """The button's payload: qbot's packed (signed) postback as a JSON string."""
        return dumps_text(pack_postback(self.action, self.data, signer))


class TemplateContent(BaseModel):
    """One language of an approved template, as Omnichannel lists it (``hsm_details``)."""

    model_config = ConfigDict(extra="allow")

    language: str = ""
    content: str = ""
    header_content: str | None = None
    header_default_value: str | None = None
    footer: str | None = None
    buttons: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def variables(self) -> int:
        """How many variables the body takes."""
        return placeholders(self.content)

    @property
    def quick_replies(self) -> list[str]:
        """The labels of its quick-reply buttons, in order."""
        labels = []
        for button in self.buttons:
            kind = str(button.get("type") or "QUICK_REPLY").upper()
            if kind == "QUICK_REPLY":
                labels.append(str(button.get("text") or button.get("label") or ""))
        return labels


class ApprovedTemplate(BaseModel):
    """A template the app may send (``GET /api/v2/admin/hsm``); lenient, unknown fields kept."""

    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    name: str
    namespace: str | None = None
    category: str | None = None
    channel_id: int | str | None = None
    hsm_details: list[TemplateContent] = Field(default_factory=list)

    @property
    def languages(self) -> list[str]:
        return [d.language for d in self.hsm_details]

    def content(self, language: str) -> TemplateContent | None:
        """The template's text in ``language`` (``id``, ``en``...), ``None`` when not approved."""
        wanted = language.casefold()
        for detail in self.hsm_details:
            if detail.language.casefold() == wanted:
                return detail
        return None

    def not_approved(self, language: str) -> str:
        """Why this template cannot be sent in ``language`` (it is not approved in it)."""
        known = ", ".join(self.languages) or "none"
        return (
            f"template {self.name!r} is not approved in language {language!r} (approved: {known})"
        )


class Template(Message):
    """A WhatsApp template message: an approved template's name, language and values.

    Args:
        name: the template's name, as approved.
        language: the approved language's code (``id``, ``en``, ``en_US``...).
        variables: the body's ``{{1}}``, ``{{2}}``... values, in order.
        buttons: its quick-reply buttons and what a tap does (`QuickReply`).
        header: the value of a text header's ``{{1}}``, when the template's header has one.
        namespace: the WhatsApp Business account's template namespace; by default the
            approved template's, else ``whatsapp.namespace``.

    Raises:
        TemplateLimitError: over one of WhatsApp's limits (see `check`).
        MessageBuildError: an empty name or language, an empty or multi-line variable.
    """

    def __init__(
        self,
        name: str,
        language: str = "id",
        variables: Iterable[Any] = (),
        buttons: Iterable[QuickReply] = (),
        header: str | None = None,
        namespace: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise MessageBuildError("a template needs the name it was approved under")
        if not isinstance(language, str) or not language.strip():
            raise MessageBuildError(f"template {name!r} needs a language code such as 'id'")
        self.name = name.strip()
        self.language = language.strip()
        if isinstance(variables, str | bytes) or variables is None:
            raise MessageBuildError(
                f"template {self.name!r}: variables must be a list of texts, got {variables!r}"
            )
        self.variables = [self._variable(i, v) for i, v in enumerate(variables, 1)]
        self.buttons = list(buttons)
        for button in self.buttons:
            if not isinstance(button, QuickReply):
                raise MessageBuildError(
                    f"template {self.name!r}: buttons must be QuickReply(label, action=...), "
                    f"got {type(button).__name__}"
                )
        self.header = None if header is None else self._text("the header's {{1}}", header)
        self.namespace = namespace
        self.check()

    def _variable(self, index: int, value: Any) -> str:
        return self._text(f"variable {{{{{index}}}}}", value)

    def _text(self, what: str, value: Any) -> str:
        """A parameter as WhatsApp takes it: text, not empty, on one line."""
        if isinstance(value, bool) or value is None:
            raise MessageBuildError(f"template {self.name!r}: {what} must be text, got {value!r}")
        text = value if isinstance(value, str) else str(value)
        if not text.strip():
            raise MessageBuildError(
                f"template {self.name!r}: {what} is empty (WhatsApp refuses it)"
            )
        if "\n" in text or "\t" in text or "     " in text:
            raise MessageBuildError(
                f"template {self.name!r}: {what} has a new line, a tab or more than four "
                f"spaces in a row, which WhatsApp refuses: {text[:40]!r}"
            )
        return text

    def quick_reply(self, label: str, *, action: str, data: Any = None) -> Template:
        """Add a quick-reply button (chainable); checked like the constructor's."""
        self.buttons.append(QuickReply(label, action, data))
        self.check()
        return self

    def __repr__(self) -> str:
        return (
            f"Template({self.name!r}, language={self.language!r}, "
            f"variables={len(self.variables)}, buttons={[b.label for b in self.buttons]!r})"
        )

    # --- WhatsApp's limits ----------------------------------------------------------------------

    def _limit(self, limit: str, value: int, maximum: int, detail: str = "") -> TemplateLimitError:
        return TemplateLimitError(
            f"template {self.name!r}: {limit} is {value}, WhatsApp allows {maximum}{detail}",
            limit=limit,
            value=value,
            maximum=maximum,
        )

    def check(self, approved: ApprovedTemplate | None = None) -> None:
        """Check WhatsApp's limits, and against the approved template when it is known.

        Raises:
            TemplateLimitError: a header over 60 characters, a body over 1,024, more than 15
                variables (or not as many as the approved body's placeholders), more than 3
                quick-reply buttons (or more than the approved ones), a label over 25.
            MessageBuildError: the approved template has no such language, or its buttons
                have other labels.
        """
        content = None
        if approved is not None:
            content = approved.content(self.language)
            if content is None:
                raise MessageBuildError(approved.not_approved(self.language))
        if len(self.variables) > MAX_VARIABLES:
            raise self._limit("variables", len(self.variables), MAX_VARIABLES)
        if len(self.buttons) > MAX_QUICK_REPLIES:
            raise self._limit("quick-reply buttons", len(self.buttons), MAX_QUICK_REPLIES)
        for button in self.buttons:
            if len(button.label) > MAX_BUTTON_LABEL:
                raise self._limit(
                    "button label length",
                    len(button.label),
                    MAX_BUTTON_LABEL,
                    f" ({button.label!r})",
                )
        header = self.header_text(content)
        if header is not None and len(header) > MAX_HEADER:
            raise self._limit("header length", len(header), MAX_HEADER)
        if content is None:
            body = sum(len(v) for v in self.variables)
            if body > MAX_BODY:
                raise self._limit("body length", body, MAX_BODY, " (the variables alone)")
            return
        self._check_approved(content)

    def _check_approved(self, content: TemplateContent) -> None:
        wanted = content.variables
        if len(self.variables) != wanted:
            raise TemplateLimitError(
                f"template {self.name!r} ({self.language}) has {wanted} placeholders, "
                f"given {len(self.variables)} variables",
                limit="variables",
                value=len(self.variables),
                maximum=wanted,
            )
        body = len(fill(content.content, self.variables))
        if body > MAX_BODY:
            raise self._limit("body length", body, MAX_BODY, " (placeholders filled)")
        header_vars = placeholders(content.header_content)
        if self.header is not None and not header_vars:
            raise MessageBuildError(
                f"template {self.name!r} has a fixed header: drop header={self.header!r}"
            )
        if self.header is None and header_vars:
            raise MessageBuildError(
                f"template {self.name!r}'s header {content.header_content!r} needs header=..."
            )
        approved = content.quick_replies
        if len(self.buttons) > len(approved):
            raise self._limit("quick-reply buttons", len(self.buttons), len(approved))
        for button, label in zip(self.buttons, approved, strict=False):
            if button.label.casefold() != label.casefold():
                raise MessageBuildError(
                    f"template {self.name!r}: quick-reply button {button.label!r} is approved "
                    f"as {label!r} (buttons follow the approved order)"
                )

    def header_text(self, content: TemplateContent | None = None) -> str | None:
        """The header as shown: the approved header filled, else the header value."""
        if content is not None and content.header_content:
            values = [self.header] if self.header is not None else []
            return fill(content.header_content, values)
        return self.header

    # --- the wire -------------------------------------------------------------------------------

    def components(self, signer: PostbackSigner | None = None) -> list[dict[str, Any]]:
        """The Cloud API ``components``: header, body and quick-reply button parameters."""
        parts: list[dict[str, Any]] = []
        if self.header is not None:
            parts.append({"type": "header", "parameters": [{"type": "text", "text": self.header}]})
        if self.variables:
            parameters = [{"type": "text", "text": v} for v in self.variables]
            parts.append({"type": "body", "parameters": parameters})
        for index, button in enumerate(self.buttons):
            parts.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": str(index),
                    "parameters": [{"type": "payload", "payload": button.payload(signer)}],
                }
            )
        return parts

    def wire(self, signer: PostbackSigner | None = None) -> dict[str, Any]:
        """The Cloud API ``template`` object (``namespace`` left out when unknown)."""
        body: dict[str, Any] = {
            "name": self.name,
            "language": {"policy": "deterministic", "code": self.language},
            "components": self.components(signer),
        }
        if self.namespace:
            body = {"namespace": self.namespace, **body}
        return body

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One outbox record of type `TEMPLATE_TYPE`; the delivery sends it to the customer."""
        buttons = [{"label": b.label, "payload": b.payload(signer)} for b in self.buttons]
        payload = {"template": self.wire(signer), "buttons": buttons}
        return [OutgoingComment(type=TEMPLATE_TYPE, message=self.name, payload=payload)]
