"""structlog setup. Only the CLI calls :func:`configure_logging`; library modules just log.

Every update binds ``room_id`` and ``message_id`` through contextvars (see ``runtime``), so every
line a handler logs while answering carries them.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from qbot._json import dumps_text

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
        structlog.dev.ConsoleRenderer(colors=terminal)
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=dumps_text)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if fmt == "json" else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        # One write and one flush per line (print() costs more for the same).
        logger_factory=structlog.WriteLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
