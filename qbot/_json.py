"""JSON on the hot path, with the standard library for what the fast readers refuse.

Encoding is orjson's, decoding pydantic-core's: several times faster than ``json`` for the
request, answer and log-line sized values qbot handles per message. orjson refuses integers over
64 bits (and would read them back as floats, so it does not decode); pydantic-core reads only
UTF-8. What they refuse goes through ``json``, so nothing is lost and nothing new fails.

:func:`dumps_exact` is what storage writes: only values that read back equal, NaN refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pydantic_core

__all__ = ["dumps", "dumps_exact", "dumps_text", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS
_EXACT = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact UTF-8 JSON; ``default`` turns what JSON lacks into what it has.

    Raises:
        TypeError: ``value`` holds something neither JSON nor ``default`` can encode.
    """
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=default, separators=(",", ":")).encode()


def dumps_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """:func:`dumps` as text."""
    return dumps(value, default).decode()


def dumps_exact(value: Any) -> str:
    """``value`` as compact JSON text that :func:`loads` turns back into an equal value.

    Only JSON's own types pass (dict with string keys, list, str, int, float, bool, None; a
    tuple becomes a list, an int key a string, as with ``json``): what orjson would turn into
    something else (a datetime, a UUID, an enum, NaN as ``null``) is caught by reading its text
    back, and ``json`` (strict) has the last word.

    Raises:
        TypeError: ``value`` holds something JSON has no type for.
        ValueError: ``value`` holds NaN or an infinity, or refers to itself.
    """
    try:
        raw = orjson.dumps(value, option=_EXACT)
    except (orjson.JSONEncodeError, RecursionError):
        pass
    else:
        # orjson reads back what it wrote (no integer over 64 bits: it refused those), and
        # caches short keys: no garbage left between the values a store keeps.
        if orjson.loads(raw) == value:
            return raw.decode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(raw: str | bytes) -> Any:
    """Decode JSON text.

    Raises:
        ValueError: ``raw`` is not JSON.
    """
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        return json.loads(raw)
