"""Every exception qbot raises.

```
QbotError
├── ConfigError(ValueError)              settings missing or invalid
├── HandlerRegistrationError(TypeError)  a handler or filter rejected at decoration time
├── StartupError(RuntimeError)           a startup hook failed: the bot does not start
├── MessageBuildError(ValueError)        a builder was given a value Qiscus would refuse
│   └── TemplateLimitError               a WhatsApp template over one of WhatsApp's limits
├── OutsideWindowError                   a free-form WhatsApp message after the 24-hour window
├── TemplateError(ValueError)            a template is missing, broken or lacks a variable
├── PostbackError(ValueError)            a postback whose data is forged, unsigned or unreadable
├── InvalidInput(ValueError)             a form field refused the user's answer (shown to them)
├── StorageError                         a storage backend failed or is misconfigured
│   └── LeaseLostError                   a worker lost a room's lease; its commit was refused
├── ImportFileError(ValueError)          an import file breaks the Qiscus import rules
└── QiscusError                          talking to Qiscus failed
    ├── QiscusNetworkError(OSError)      no HTTP answer: connection refused, reset, timed out
    └── QiscusAPIError                   Qiscus answered with an error status
        ├── QiscusBadRequest             400
        ├── QiscusUnauthorized           401
        ├── QiscusForbidden              403
        ├── QiscusNotFound               404
        ├── QiscusRateLimited            429
        └── QiscusServerError            5xx
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class QbotError(Exception):
    """Root of every exception qbot raises."""


class ConfigError(QbotError, ValueError):
    """Settings are missing or invalid."""


class HandlerRegistrationError(QbotError, TypeError):
    """A handler, filter or middleware cannot be registered."""


class StartupError(QbotError, RuntimeError):
    """A ``@bot.on_startup`` hook raised: the bot does not start serving."""


class MessageBuildError(QbotError, ValueError):
    """An outgoing message was given a value Qiscus would refuse."""


class TemplateLimitError(MessageBuildError):
    """A WhatsApp template message breaks one of WhatsApp's limits (checked before sending).

    Attributes:
        limit: which limit, e.g. ``"header length"``, ``"variables"``, ``"quick-reply buttons"``.
        value: what the template had (a length or a count).
        maximum: what WhatsApp allows (for ``"variables"`` against a known template: the number
            of its placeholders, which must match exactly).
    """

    def __init__(self, message: str, *, limit: str, value: Any, maximum: Any) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.maximum = maximum


class OutsideWindowError(QbotError):
    """A free-form message to a WhatsApp room whose 24-hour customer-service window is closed.

    WhatsApp takes free-form messages only within 24 hours of the customer's last message;
    after that only an approved template (``ctx.send_template``), or the bot's fallback
    template (``whatsapp.fallback_template``), may go out.

    Attributes:
        room_id: the room.
        hours_since: hours since the customer last wrote.
    """

    def __init__(self, room_id: str, hours_since: float, window_hours: float = 24) -> None:
        super().__init__(
            f"room {room_id}: WhatsApp's {window_hours:g}-hour window is closed (the customer "
            f"last wrote {hours_since:.1f} h ago); send an approved template "
            "(ctx.send_template) or set omnichannel.whatsapp.fallback_template"
        )
        self.room_id = room_id
        self.hours_since = hours_since


class TemplateError(QbotError, ValueError):
    """A reply template is missing, malformed or was rendered without a variable it needs."""


class PostbackError(QbotError, ValueError):
    """A postback's packed data is forged, unsigned while a secret is configured, or unreadable."""


class InvalidInput(QbotError, ValueError):
    """A form field's validator refused the user's answer; the message is shown to the user.

    Raise it from a custom validator: ``raise InvalidInput("Pick a date in the future.")``.
    """


class StorageError(QbotError):
    """A storage backend failed or is misconfigured."""


class LeaseLostError(StorageError):
    """A commit was refused because the committing owner no longer holds the room's lease.

    Another worker has (or may have) taken the room over; the commit applied nothing, and the
    new owner will process the unacked items again.
    """


class ImportFileError(QbotError, ValueError):
    """An import file is unreadable or breaks the rules of the Qiscus import format.

    Attributes:
        problems: every problem found, each naming its row (see ``qbot.imports.Problem``).
    """

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class QiscusError(QbotError):
    """Talking to the Qiscus API failed."""


class QiscusNetworkError(QiscusError, OSError):
    """The request got no HTTP answer: connection failure or timeout."""

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class QiscusAPIError(QiscusError):
    """Qiscus answered with an error status.

    Attributes:
        status: the HTTP status code.
        endpoint: the API path that was called, e.g. ``/api/v2/rest/post_comment``.
        message: the server's own message, joined from ``error.message``, ``error.errors`` and
            ``error.detailed_messages`` when present, else the raw body.
        body: the decoded JSON body, or the text when it was not JSON.
        retry_after: the server's ``Retry-After`` in seconds, when it sent one (429, 503).
    """

    def __init__(
        self,
        status: int,
        endpoint: str,
        message: str,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"Qiscus answered {status} on {endpoint}: {message}")
        self.status = status
        self.endpoint = endpoint
        self.message = message
        self.body = body
        self.retry_after = retry_after


class QiscusBadRequest(QiscusAPIError):
    """400: the request was malformed or failed validation."""


class QiscusUnauthorized(QiscusAPIError):
    """401: the app id or secret key is wrong."""


class QiscusForbidden(QiscusAPIError):
    """403: the credentials may not do this."""


class QiscusNotFound(QiscusAPIError):
    """404: the room, user, export or endpoint does not exist."""


class QiscusRateLimited(QiscusAPIError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if it sent one."""


class QiscusServerError(QiscusAPIError):
    """5xx: Qiscus failed; a retry may succeed (``retry_after`` in seconds, if it said when)."""


_BY_STATUS: dict[int, type[QiscusAPIError]] = {
    400: QiscusBadRequest,
    401: QiscusUnauthorized,
    403: QiscusForbidden,
    404: QiscusNotFound,
}


def api_error_for(
    status: int, endpoint: str, message: str, body: Any = None, retry_after: float | None = None
) -> QiscusAPIError:
    """Map an HTTP error status to the matching exception (the one place that does it)."""
    if status == 429:
        kind: type[QiscusAPIError] = QiscusRateLimited
    elif status >= 500:
        kind = QiscusServerError
    else:
        kind = _BY_STATUS.get(status, QiscusAPIError)
    return kind(status, endpoint, message, body, retry_after)
