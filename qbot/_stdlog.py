"""The libraries' standard-library log records, as qbot's own log lines.

aiohttp and asyncio log through :mod:`logging`, which qbot's structlog setup does not see: a
record (aiohttp's "Error handling request" with its traceback, asyncio's "Task exception was
never retrieved") would reach Python's last-resort handler and print as plain text in the middle
of qbot's JSON lines, unredacted, where a log collector cannot parse it. Here each warning or
error of theirs goes through structlog at its level: one line, redacted like every qbot line.
"""

from __future__ import annotations

import logging

import structlog

__all__ = ["route_library_logs"]

_LIBRARIES = ("aiohttp", "asyncio")


class _Bridge(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(record.name)
            log.log(record.levelno, record.getMessage(), exc_info=record.exc_info or None)
        except Exception:  # a log line must never break the server
            self.handleError(record)


_bridge = _Bridge()


def route_library_logs() -> None:
    """Send aiohttp's and asyncio's warnings and errors through qbot's log (idempotent)."""
    for name in _LIBRARIES:
        logger = logging.getLogger(name)
        if _bridge not in logger.handlers:
            logger.addHandler(_bridge)
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
