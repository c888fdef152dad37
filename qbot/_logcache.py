"""A structlog logger for lines written on every request: bound once per configuration.

``structlog.get_logger().debug(...)`` assembles a new bound logger for each line (about 8 µs on
the bench VM, for a line the default ``info`` level then drops); a module-level proxy with
``cache_logger_on_first_use`` keeps whatever configuration was active at its first line, so a
later ``configure_logging`` (the CLI's, a test's) would not reach it. `LineLogger` keeps one
bound logger and assembles a new one only when structlog's configuration changed; `LineLogger.at`
says whether a level is written at all, so a dropped line costs no fields either.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["LineLogger"]


class LineLogger:
    """The bound logger of the current structlog configuration, assembled once for it.

    Args:
        name: passed to ``structlog.get_logger`` (the logger factory's argument).
    """

    __slots__ = ("_key", "_logger", "_name")

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._key: tuple[Any, ...] | None = None
        self._logger: Any = None

    def get(self) -> Any:
        """The logger to write a line with (``.debug(event, **fields)``...)."""
        config = structlog.get_config()
        # capture_logs() edits the processors list in place: a kept logger sees that itself.
        key = (
            id(config["processors"]),
            config["wrapper_class"],
            config["logger_factory"],
            config["context_class"],
        )
        if key != self._key or self._logger is None:
            args = () if self._name is None else (self._name,)
            self._logger = structlog.get_logger(*args).bind()
            self._key = key
        return self._logger

    def at(self, level: int) -> Any | None:
        """The logger when it writes lines at ``level`` (``logging.DEBUG``...), else None.

        The line's fields need not be computed for a level the configuration drops. A logger
        that cannot tell (no ``is_enabled_for``) is returned: it decides line by line.
        """
        logger = self.get()
        enabled = getattr(logger, "is_enabled_for", None)
        return logger if enabled is None or enabled(level) else None
