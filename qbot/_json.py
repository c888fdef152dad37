"""JSON on the hot path, with the standard library for what the fast readers refuse.

Encoding is orjson's, decoding pydantic-core's: several times faster than ``json`` for the
request, answer and log-line sized values qbot handles per message. orjson refuses integers over
64 bits (and would read them back as floats, so it does not decode); pydantic-core reads only
UTF-8. What they refuse goes through ``json``, so nothing is lost and nothing new fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pydantic_core

__all__ = ["dumps", "dumps_text", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


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


def loads(raw: str | bytes) -> Any:
    """Decode JSON text.

    Raises:
        ValueError: ``raw`` is not JSON.
    """
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        return json.loads(raw)
