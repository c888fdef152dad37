"""Checks shared by the builders: each raises ``MessageBuildError`` naming the field and value."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from qbot._json import dumps, loads
from qbot.errors import MessageBuildError

MAX_MESSAGE_LENGTH = 4000
"""Qiscus refuses a comment whose ``message`` is longer than this many characters."""


def require_text(field: str, value: object, *, max_length: int | None = None) -> str:
    """Return ``value`` if it is a string with something besides whitespace in it."""
    if not isinstance(value, str):
        raise MessageBuildError(f"{field} must be a string, got {value!r}")
    if not value.strip():
        raise MessageBuildError(f"{field} must not be empty, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise MessageBuildError(
            f"{field} is {len(value)} characters, over Qiscus's cap of {max_length}: "
            f"shorten it (value starts {value[:40]!r})"
        )
    return value


def optional_text(field: str, value: object, *, max_length: int | None = None) -> str:
    """Return ``value`` if it is a string (possibly empty) within ``max_length``."""
    if not isinstance(value, str):
        raise MessageBuildError(f"{field} must be a string, got {value!r}")
    if max_length is not None and len(value) > max_length:
        raise MessageBuildError(
            f"{field} is {len(value)} characters, over Qiscus's cap of {max_length}: "
            f"shorten it (value starts {value[:40]!r})"
        )
    return value


def require_url(field: str, value: object) -> str:
    """Return ``value`` if it is an absolute ``http://`` or ``https://`` URL."""
    if not isinstance(value, str):
        raise MessageBuildError(f"{field} must be an http(s) URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MessageBuildError(
            f"{field} must be an absolute http:// or https:// URL, got {value!r}"
        )
    return value


def require_json(field: str, value: Any) -> Any:
    """Return ``value`` as it will look after a JSON round trip (tuples become lists, ...).

    Raises:
        MessageBuildError: the value cannot be encoded as JSON (sets, objects, NaN, ...).
    """
    try:
        encoded = dumps(value, strict=True, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise MessageBuildError(
            f"{field} must be JSON-serialisable (dict, list, str, int, float, bool, None), "
            f"got {value!r}: {e}"
        ) from e
    return loads(encoded)


def require_mapping(field: str, value: object) -> dict[str, Any]:
    """Return a JSON-normalised copy of ``value`` if it is a dict with string keys."""
    if not isinstance(value, dict):
        raise MessageBuildError(f"{field} must be a dict, got {value!r}")
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise MessageBuildError(f"{field} keys must be strings, got {bad[0]!r} in {value!r}")
    normalised: dict[str, Any] = require_json(field, value)
    return normalised
