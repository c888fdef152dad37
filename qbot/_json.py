"""Every JSON encode and decode in qbot, with the standard library for what the fast ones refuse.

Encoding is orjson's, decoding pydantic-core's: several times faster than ``json`` for the
request, answer and log-line sized values qbot handles per message. orjson refuses integers over
64 bits (and would read them back as floats, so it does not decode); pydantic-core reads only
UTF-8 and refuses lone surrogates. What they refuse goes through ``json``, so nothing is lost and
nothing new fails. A lint rule (ruff's banned-api) keeps ``import json`` out of the rest of qbot.

NaN and the infinities: orjson writes them as ``null``. Where a value must survive as it is
(message payloads, postback signatures, stored state), ``strict=True`` refuses them instead.

:func:`dumps_exact` is what storage writes: only values that read back equal, NaN refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pydantic_core

__all__ = ["detect_encoding", "dumps", "dumps_exact", "dumps_text", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS
_EXACT = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps(
    value: Any,
    default: Callable[[Any], Any] | None = None,
    *,
    strict: bool = False,
    sort_keys: bool = False,
    indent: bool = False,
) -> bytes:
    """``value`` as compact UTF-8 JSON (non-ASCII as is); ``default`` encodes what JSON lacks.

    Args:
        value: what to encode.
        default: turns a value JSON cannot hold into one it can.
        strict: refuse NaN and infinities instead of writing ``null``.
        sort_keys: write object keys in order (one text per value, e.g. to sign it).
        indent: two-space indentation for people to read.

    Raises:
        TypeError: ``value`` holds something neither JSON nor ``default`` can encode.
        ValueError: ``strict`` and ``value`` holds NaN or an infinity.
    """
    if strict:
        return _stdlib(value, default, strict=True, sort_keys=sort_keys, indent=indent)
    option = _OPTIONS
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    try:
        return orjson.dumps(value, default=default, option=option)
    except orjson.JSONEncodeError:
        return _stdlib(value, default, strict=False, sort_keys=sort_keys, indent=indent)


def _stdlib(
    value: Any,
    default: Callable[[Any], Any] | None,
    *,
    strict: bool,
    sort_keys: bool,
    indent: bool,
) -> bytes:
    # Strict output is the canonical text signatures are made of: UTF-8 as is, as it always was.
    # Escaped non-ASCII is the way out for a lone surrogate, which UTF-8 cannot carry.
    if strict:
        try:
            return _encode(value, default, False, False, sort_keys, indent)
        except UnicodeEncodeError:
            pass
    return _encode(value, default, True, not strict, sort_keys, indent)


def _encode(
    value: Any,
    default: Callable[[Any], Any] | None,
    ascii: bool,
    allow_nan: bool,
    sort_keys: bool,
    indent: bool,
) -> bytes:
    return json.dumps(
        value,
        default=default,
        ensure_ascii=ascii,
        allow_nan=allow_nan,
        sort_keys=sort_keys,
        indent=2 if indent else None,
        separators=(",", ": ") if indent else (",", ":"),
    ).encode("utf-8")


def dumps_text(
    value: Any,
    default: Callable[[Any], Any] | None = None,
    *,
    strict: bool = False,
    sort_keys: bool = False,
    indent: bool = False,
) -> str:
    """:func:`dumps` as text."""
    return dumps(value, default, strict=strict, sort_keys=sort_keys, indent=indent).decode()


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
    """Decode JSON text (bytes in UTF-8, -16 or -32, as ``json`` reads them).

    Raises:
        ValueError: ``raw`` is not JSON.
    """
    try:
        # Keys only in pydantic-core's process-wide string cache (16,384 strings): values are
        # mostly unique (ids, texts, timestamps), and caching them kept 1.3 MiB alive for no hit.
        return pydantic_core.from_json(raw, cache_strings="keys")
    except ValueError:
        return json.loads(raw)


def detect_encoding(raw: bytes) -> str:
    """The Unicode encoding of JSON bytes (``utf-8``, ``utf-16``, ...), as ``json`` guesses it."""
    return json.detect_encoding(raw)
