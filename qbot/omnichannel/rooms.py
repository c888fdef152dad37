"""Which rooms are Omnichannel rooms, and on which channel the customer writes.

```python
room = detect_room(update, mode="auto")
if room.omnichannel:            # answer through /bot, not post_comment
    print(room.source)          # "wa", "ig", "fb", "line", "telegram", "qiscus" (the web widget)...
```

With ``auto``, a room is an Omnichannel room when its webhook carries a top-level ``app_code``
or ``channel`` (the 2025 documented body), or its ``room.options`` names a ``source`` or
``channel`` (what Omnichannel puts in every room it creates). ``always`` and ``never`` force the
answer; the channel is read in every mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from qbot._json import loads
from qbot.errors import ConfigError
from qbot.models.webhook import Update

__all__ = ["Mode", "OmnichannelRoom", "detect_room", "normalise_source"]

Mode = Literal["auto", "always", "never"]
_MODES = ("auto", "always", "never")

# Names some integrations use for the sources Omnichannel itself calls wa, ig, fb...
_ALIASES = {
    "whatsapp": "wa",
    "instagram": "ig",
    "facebook": "fb",
    "messenger": "fb",
    "widget": "qiscus",
    "web": "qiscus",
}


@dataclass(frozen=True, slots=True)
class OmnichannelRoom:
    """What a webhook says about its room.

    Attributes:
        omnichannel: the room is answered through Omnichannel's ``/bot``.
        source: the customer's channel, lowercase (``wa``, ``ig``, ``fb``, ``line``,
            ``telegram``, ``qiscus`` for the web widget, ``custom``...), ``None`` when unknown.
        channel_id: the channel's id (one WhatsApp number, one widget...), when given.
        channel_name: the channel's name, when given.
        app_code: the webhook's ``app_code``, when given.
    """

    omnichannel: bool
    source: str | None = None
    channel_id: int | str | None = None
    channel_name: str | None = None
    app_code: str | None = None


def normalise_source(value: Any) -> str | None:
    """A channel source in Omnichannel's spelling (``WhatsApp`` → ``wa``), ``None`` if blank."""
    if not isinstance(value, str) or not value.strip():
        return None
    source = value.strip().casefold()
    return _ALIASES.get(source, source)


def _options(value: Any) -> Mapping[str, Any]:
    # room.options is usually a JSON string, sometimes an object, sometimes absent.
    if isinstance(value, str) and value.strip():
        try:
            value = loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def _fields(update: Update | Mapping[str, Any]) -> tuple[Any, Any, Mapping[str, Any]]:
    """``(app_code, channel, room options)`` of a parsed update or a raw webhook body."""
    if isinstance(update, Update):
        channel = update.channel.model_dump() if update.channel is not None else None
        return update.app_code, channel, update.room.options
    payload = update.get("payload")
    room = payload.get("room") if isinstance(payload, Mapping) else None
    options = _options(room.get("options")) if isinstance(room, Mapping) else {}
    return update.get("app_code"), update.get("channel"), options


def detect_room(update: Update | Mapping[str, Any], mode: Mode = "auto") -> OmnichannelRoom:
    """Whether the update's room is an Omnichannel room, and its channel.

    Args:
        update: a parsed webhook, or its raw JSON body.
        mode: ``omnichannel.mode``: ``auto`` decides from the webhook, ``always``/``never`` force.

    Raises:
        ConfigError: ``mode`` is not ``auto``, ``always`` or ``never``.
    """
    if mode not in _MODES:
        raise ConfigError(f"omnichannel mode {mode!r} must be one of {', '.join(_MODES)}")
    app_code, channel, options = _fields(update)
    channel_map: Mapping[str, Any] = channel if isinstance(channel, Mapping) else {}
    option_channel = options.get("channel")
    source = (
        normalise_source(channel_map.get("source"))
        or normalise_source(options.get("source"))
        or normalise_source(option_channel)
    )
    details = options.get("channel_details")
    details_map: Mapping[str, Any] = details if isinstance(details, Mapping) else {}
    channel_id = channel_map.get("id") or details_map.get("channel_id") or options.get("channel_id")
    channel_name = channel_map.get("name") or details_map.get("name")
    if mode == "auto":
        marked = bool(app_code) or channel is not None
        omnichannel = marked or bool(normalise_source(options.get("source")) or option_channel)
    else:
        omnichannel = mode == "always"
    return OmnichannelRoom(
        omnichannel=omnichannel,
        source=source,
        channel_id=channel_id if isinstance(channel_id, int | str) else None,
        channel_name=str(channel_name) if channel_name else None,
        app_code=str(app_code) if app_code else None,
    )
