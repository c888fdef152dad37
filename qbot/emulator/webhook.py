"""Webhook bodies exactly as Qiscus delivers them, their signature, and postback taps.

Pure functions over the store's dicts, shared by the emulator server, ``qbot.testing`` and
``qbot shell`` so all three speak to a bot the same way a real Qiscus app does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

#: ``type`` of a webhook for a comment a client (the web page, a phone) posted.
MOBILE = "post_comment_mobile"
#: ``type`` of a webhook for a comment posted through the server REST API (the bot's own).
REST = "post_comment_rest"
#: Header carrying the hex HMAC-SHA256 of the raw body when a signature token is configured.
SIGNATURE_HEADER = "QISCUS-SDK-SIGNATURE"


def webhook_body(
    kind: str, comment: dict[str, Any], room: dict[str, Any], sender: dict[str, Any]
) -> dict[str, Any]:
    """The JSON Qiscus POSTs to the webhook URL for one new comment.

    The shape is the documented one (``type`` + ``payload.from/room/message``) plus the fields
    real deliveries carry: numeric ids with ``*_str`` twins, ``unique_temp_id``, timestamps and
    the room ``options`` as a JSON string.

    Args:
        kind: :data:`MOBILE` or :data:`REST`.
        comment: the stored comment (as ``EmulatorStore.add_comment`` returns it).
        room: the room it was posted in, with participants.
        sender: the user who posted it.
    """
    return {
        "type": kind,
        "payload": {
            "from": {
                "id": sender["id"],
                "id_str": str(sender["id"]),
                "email": sender["email"],
                "name": sender["username"],
                "avatar_url": sender["avatar_url"],
            },
            "room": {
                "id": room["id"],
                "id_str": str(room["id"]),
                "topic_id": room["id"],
                "topic_id_str": str(room["id"]),
                "type": room["type"],
                "name": room["name"],
                "options": room["options"],
                "participants": [
                    {
                        "id": p["id"],
                        "id_str": str(p["id"]),
                        "email": p["email"],
                        "username": p["username"],
                        "avatar_url": p["avatar_url"],
                    }
                    for p in room["participants"]
                ],
            },
            "message": {
                "id": comment["id"],
                "id_str": comment["id_str"],
                "comment_before_id": comment["comment_before_id"],
                "comment_before_id_str": comment["comment_before_id_str"],
                "type": comment["type"],
                "text": comment["message"],
                "payload": comment["payload"] if comment["payload"] is not None else {},
                "extras": comment["extras"] if comment["extras"] is not None else {},
                "unique_temp_id": comment["unique_temp_id"],
                "disable_link_preview": comment["disable_link_preview"],
                "created_at": comment["timestamp"],
                "timestamp": comment["timestamp"],
                "unix_timestamp": comment["unix_timestamp"],
                "unix_nano_timestamp": comment["unix_nano_timestamp"],
            },
        },
    }


def sign(raw_body: bytes, token: str) -> str:
    """The ``QISCUS-SDK-SIGNATURE`` value: hex HMAC-SHA256 of the raw body keyed with ``token``."""
    return hmac.new(token.encode(), raw_body, hashlib.sha256).hexdigest()


def buttons_of(comment: dict[str, Any]) -> list[dict[str, Any]]:
    """Every button a comment shows, in display order (buttons, a card's, each carousel card's)."""
    payload = comment.get("payload") or {}
    if not isinstance(payload, dict):
        return []
    kind = comment.get("type")
    if kind in ("buttons", "card"):
        return [b for b in payload.get("buttons") or [] if isinstance(b, dict)]
    if kind == "carousel":
        found: list[dict[str, Any]] = []
        for card in payload.get("cards") or []:
            if isinstance(card, dict):
                found.extend(b for b in card.get("buttons") or [] if isinstance(b, dict))
        return found
    if kind == "custom" and payload.get("type") == "whatsapp_template":
        # A WhatsApp template's quick replies: a tap is the customer's text, the label.
        content = payload.get("content") or {}
        buttons = content.get("buttons") if isinstance(content, dict) else None
        return [
            {"label": b.get("label", ""), "type": "quick_reply", "payload": b.get("payload")}
            for b in buttons or []
            if isinstance(b, dict)
        ]
    return []


def postback_response(button: dict[str, Any]) -> tuple[str, Any]:
    """What a client posts when this postback button is tapped: ``(text, payload)``.

    As the Qiscus Android SDK does: the text is the button's ``postback_text`` when it has one,
    else its label; the payload is the button's ``payload`` object echoed verbatim.
    """
    text = button.get("postback_text") or button.get("label") or "Button"
    return str(text), button.get("payload")
