"""Messages from plain values: ``as_message`` for handler returns, ``message_from_spec`` for YAML.

A spec is a dict with a ``type`` and that builder's arguments::

    {"type": "buttons", "text": "Pick one",
     "buttons": [{"label": "Yes", "action": "confirm", "data": {"n": 7}},
                 {"label": "Docs", "url": "https://example.com/docs"}]}

A button with ``action`` is a postback (optional ``data``, ``postback_text``); one with ``url`` is
a link. Errors name the key path, e.g. ``cards[1].buttons[0].url``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from qbot.errors import MessageBuildError
from qbot.messages.base import Message
from qbot.messages.buttons import ButtonList, Buttons
from qbot.messages.cards import Card, Carousel
from qbot.messages.special import AccountLinking, Custom
from qbot.messages.system import SystemEvent
from qbot.messages.text import Reply, Text

_T = TypeVar("_T")


def as_message(value: str | Message) -> Message:
    """``value`` as a Message: a ``str`` becomes :class:`Text`, a Message is returned as is.

    Raises:
        MessageBuildError: ``value`` is neither (the message names its type).
    """
    if isinstance(value, Message):
        return value
    if isinstance(value, str):
        return Text(value)
    raise MessageBuildError(
        f"cannot send a {type(value).__name__} ({value!r}): reply with a str or a message "
        "builder such as Text, Buttons, Card"
    )


def _mapping(path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MessageBuildError(f"{path}: expected a mapping, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise MessageBuildError(f"{path}: keys must be strings, got {key!r}")
    return value


def _check_keys(
    path: str, spec: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    for key in required:
        if key not in spec:
            raise MessageBuildError(f"{_join(path, key)}: missing required key")
    allowed = {"type", *required, *optional}
    for key in spec:
        if key not in allowed:
            raise MessageBuildError(
                f"{_join(path, key)}: unknown key (allowed: {', '.join(sorted(allowed))})"
            )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list(path: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MessageBuildError(f"{path}: expected a list, got {value!r}")
    return value


def _add_buttons(path: str, target: ButtonList, buttons: Any) -> None:
    for index, raw in enumerate(_list(path, buttons)):
        where = f"{path}[{index}]"
        button = _mapping(where, raw)
        if "type" in button:
            raise MessageBuildError(
                f"{where}.type: unknown key (a button is a postback when it has 'action', "
                "a link when it has 'url')"
            )
        if "url" in button:
            _check_keys(where, button, ("label", "url"), ())
            _guard(where, partial(target.link, button["label"], button["url"]))
        else:
            _check_keys(where, button, ("label", "action"), ("data", "postback_text"))
            postback = partial(
                target.postback,
                button["label"],
                action=button["action"],
                data=button.get("data"),
                postback_text=button.get("postback_text"),
            )
            _guard(where, postback)


def _guard(path: str, build: Callable[[], _T]) -> _T:
    # Prefix a builder's own error with where in the spec the bad value sits.
    try:
        return build()
    except MessageBuildError as e:
        raise MessageBuildError(f"{path}: {e}") from e


_CARD_KEYS = ("description", "image_url", "url", "text", "buttons", "default_action")


def _card(path: str, spec: Mapping[str, Any]) -> Card:
    _check_keys(path, spec, ("title",), _CARD_KEYS)
    fields = {k: spec[k] for k in ("title", "description", "image_url", "url", "text") if k in spec}
    card: Card = _guard(path, lambda: Card(**fields))
    _add_buttons(_join(path, "buttons"), card, spec.get("buttons", []))
    if "default_action" in spec:
        where = _join(path, "default_action")
        default = _mapping(where, spec["default_action"])
        if "url" in default:
            _check_keys(where, default, ("url",), ())
            _guard(where, lambda: card.default_link(default["url"]))
        else:
            _check_keys(where, default, ("action",), ("data", "postback_text"))
            _guard(
                where,
                lambda: card.default_postback(
                    default["action"],
                    data=default.get("data"),
                    postback_text=default.get("postback_text"),
                ),
            )
    return card


def _build(spec: Mapping[str, Any]) -> Message:
    kind = spec["type"]
    if kind == "text":
        _check_keys("", spec, ("text",), ("disable_link_preview",))
        flag = _flag(spec)
        return _guard("text", lambda: Text(spec["text"], **flag))
    if kind == "buttons":
        _check_keys("", spec, ("text", "buttons"), ())
        buttons: Buttons = _guard("text", lambda: Buttons(spec["text"]))
        _add_buttons("buttons", buttons, spec["buttons"])
        return buttons
    if kind == "card":
        return _card("", spec)
    if kind == "carousel":
        _check_keys("", spec, ("cards",), ("text",))
        carousel: Carousel = _guard("text", lambda: Carousel(text=spec.get("text", "")))
        for index, raw in enumerate(_list("cards", spec["cards"])):
            where = f"cards[{index}]"
            carousel.add(_card(where, _mapping(where, raw)))
        return carousel
    if kind == "account_linking":
        optional = ("button_text", "view_title", "success_message", "params")
        _check_keys("", spec, ("text", "url", "redirect_url"), optional)
        return _guard("account_linking", lambda: AccountLinking(**_args(spec)))
    if kind == "reply":
        _check_keys("", spec, ("text", "replied_comment_id"), ())
        return _guard("reply", lambda: Reply(**_args(spec)))
    if kind == "custom":
        _check_keys("", spec, ("payload",), ("text",))
        return _guard("payload", lambda: Custom(spec["payload"], text=spec.get("text")))
    if kind == "system_event":
        return _system_event(spec)
    raise MessageBuildError(
        f"type: unknown message type {kind!r} (known: text, buttons, card, carousel, "
        "account_linking, reply, custom, system_event)"
    )


def _flag(spec: Mapping[str, Any]) -> dict[str, bool]:
    value = spec.get("disable_link_preview", False)
    if not isinstance(value, bool):
        raise MessageBuildError(f"disable_link_preview: expected true or false, got {value!r}")
    return {"disable_link_preview": value}


def _args(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != "type"}


def _system_event(spec: Mapping[str, Any]) -> SystemEvent:
    if spec.get("system_event_type") == "custom":
        _check_keys("", spec, ("system_event_type", "payload"), ())
        return _guard("payload", lambda: SystemEvent.custom(spec["payload"]))
    optional = ("subject_email", "object_email", "updated_room_name")
    _check_keys("", spec, ("system_event_type",), optional)
    args = _args(spec)
    event_type = args.pop("system_event_type")
    return _guard("system_event", lambda: SystemEvent(event_type, **args))


def message_from_spec(spec: Mapping[str, Any]) -> Message:
    """Build any message from a plain dict, as loaded from a YAML template.

    Args:
        spec: ``{"type": <text|buttons|card|carousel|account_linking|reply|custom|
            system_event>, ...that builder's arguments}``; see the module docstring.

    Raises:
        MessageBuildError: a missing, unknown or invalid key; the message starts with its path.
    """
    checked = _mapping("spec", spec)
    if "type" not in checked:
        raise MessageBuildError(
            f"type: missing required key (one of text, buttons, card, carousel, account_linking, "
            f"reply, custom, system_event); got keys {sorted(checked)!r}"
        )
    return _build(checked)
