"""structlog setup. Only the CLI calls :func:`configure_logging`; library modules just log.

Every update binds ``room_id`` and ``message_id`` through contextvars (see ``runtime``), so every
line a handler logs while answering carries them.

Secrets never reach a line: URLs are masked where they are logged (:func:`mask_url`), and as a
second line of defence every rendered line (tracebacks included) has the password of any URL in
it and every value registered with :func:`redact` replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import structlog

from qbot._json import dumps_text
from qbot._stdlog import route_library_logs

__all__ = ["LEVELS", "configure_logging", "mask_url", "redact"]

MASK = "***"
# scheme://user:password@host: the password is what is masked.
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:'\"]*:)[^\s/@'\"]+@")
_SHORTEST_SECRET = 4
"""Values shorter than this are not masked in lines (masking "ab" would garble every line)."""
_secrets: set[str] = set()


def mask_url(url: str) -> str:
    """``url`` with its password (``redis://:pw@host``, ``redis://u:pw@host``) as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_PASSWORD.sub(rf"\1{MASK}@", url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def redact(values: Iterable[str | None]) -> None:
    """Register secret values (keys, tokens, passwords) that no log line may ever show."""
    for value in values:
        if value and len(value) >= _SHORTEST_SECRET:
            _secrets.add(value)


def _scrub(text: str) -> str:
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _Redacting:
    """Wraps the renderer: the finished line, traceback included, is scrubbed of secrets."""

    def __init__(self, renderer: structlog.typing.Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, name: str, event: structlog.typing.EventDict) -> Any:
        rendered = self._renderer(logger, name, event)
        return _scrub(rendered) if isinstance(rendered, str) else rendered


class _Stamp:
    """structlog's ``add_log_level``, ``TimeStamper(fmt="iso", utc=True)``,
    ``StackInfoRenderer`` and the format's exception processor as one step: one call per line
    instead of four, and the timestamp's date and time of day formatted once a second (always
    with microseconds: ``2026-12-01T14:00:00.000000Z``, where ``isoformat`` dropped them at 0)."""

    def __init__(self, exceptions: Callable[[Any, str, structlog.typing.EventDict], Any]) -> None:
        self._exceptions = exceptions
        self._stack = structlog.processors.StackInfoRenderer(additional_ignores=[__name__])
        self._second = -1
        self._date = ""

    def __call__(
        self, logger: Any, name: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event["level"] = "warning" if name == "warn" else "error" if name == "exception" else name
        now = time.time()
        second = int(now)
        if second != self._second:
            self._date = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        event["timestamp"] = f"{self._date}.{int((now - second) * 1_000_000):06d}Z"
        if "stack_info" in event:
            event = self._stack(logger, name, event)
        if "exc_info" in event or name == "exception":
            event = self._exceptions(logger, name, event)  # both of them return the dict
        return event


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR


def configure_logging(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", *, stream: object = None
) -> None:
    """Configure structlog: JSON lines when not on a terminal, readable console otherwise.

    Args:
        level: minimum level name (debug, info, warning, error).
        fmt: ``auto`` picks ``console`` for a terminal and ``json`` otherwise.
        stream: where lines go; stderr by default.
    """
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    terminal = callable(isatty) and bool(isatty())
    if fmt == "auto":
        fmt = "console" if terminal else "json"
    renderer: structlog.typing.Processor = (
        # Colours only for a terminal: piped console lines (`qbot dev | tee`) stay plain text.
        # Tracebacks without local variables: a frame's locals may hold a key or a token.
        structlog.dev.ConsoleRenderer(
            colors=terminal,
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=dumps_text)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _Stamp(
                structlog.processors.format_exc_info
                if fmt == "json"
                else structlog.dev.set_exc_info
            ),
            _Redacting(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        # One write and one flush per line (print() costs more for the same).
        logger_factory=structlog.WriteLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    route_library_logs()
