"""Webhook bodies as Omnichannel delivers them, built from the emulator's SDK-shaped ones.

Pure functions, like :mod:`qbot.emulator.webhook`: the emulator (a customer writing on a
channel), ``qbot.testing`` and ``qbot shell`` can all speak to a bot the way an Omnichannel app
does.

- `omnichannel_body`: the bot webhook in the 2025 documented shape (top-level ``app_code`` and
  ``channel``, string room ids, ``from.id`` and ``message.id`` ``0``, so ``unique_temp_id`` is the
  only message identity, participants with emails only).
- `new_session_body`: the new-session webhook.
- `agent_allocation_body`: the custom agent allocation webhook.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["agent_allocation_body", "new_session_body", "omnichannel_body"]


def omnichannel_body(
    body: dict[str, Any], *, app_code: str, channel: dict[str, Any], source: str
) -> dict[str, Any]:
    """An SDK webhook body (``webhook_body(...)``) reshaped as Omnichannel's bot webhook.

    Args:
        body: the SDK-shaped body; not modified.
        app_code: the app code Omnichannel puts at the top level.
        channel: the channel (``{"id", "name"}``) the customer wrote on.
        source: the channel's source (``wa``, ``qiscus``, ``ig``...).
    """
    out = copy.deepcopy(body)
    payload = out["payload"]
    room = payload["room"]
    for key in ("id", "topic_id"):
        room[key] = str(room[key])
        room[f"{key}_str"] = room[key]
    room["participants"] = [{"email": p["email"]} for p in room.get("participants") or []]
    room.setdefault("is_public_channel", False)
    room.setdefault("room_avatar", payload["from"].get("avatar_url") or "")
    payload["from"]["id"] = 0
    payload["from"]["id_str"] = "0"
    message = payload["message"]
    for key in ("id", "comment_before_id"):
        message[key] = 0
        message[f"{key}_str"] = "0"
    payload["type"] = out["type"]
    out["app_code"] = app_code
    out["channel"] = {"id": channel["id"], "name": channel["name"], "source": source}
    return out


def new_session_body(bot_body: dict[str, Any], *, created_at: str) -> dict[str, Any]:
    """The new-session webhook for the conversation a bot webhook body starts.

    Args:
        bot_body: an `omnichannel_body` (its ``payload`` is reused, ids as strings).
        created_at: when the session started (RFC 3339).
    """
    payload = copy.deepcopy(bot_body["payload"])
    channel = bot_body.get("channel") or {}
    return {
        "is_new_session": True,
        "webhook_type": "NEW_SESSION_WEBHOOK",
        "payload": {
            "from": payload["from"],
            "message": payload["message"],
            "room": payload["room"],
        },
        "room_log": {
            "room_id": str(payload["room"]["id"]),
            "channel_id": channel.get("id"),
            "source": channel.get("source"),
            "user_id": payload["from"].get("email"),
            "is_waiting": False,
            "resolved": False,
            "has_no_message": False,
            "extras": "{}",
            "created_at": created_at,
        },
    }


def agent_allocation_body(
    bot_body: dict[str, Any], candidate: dict[str, Any], *, app_code: str
) -> dict[str, Any]:
    """The custom agent allocation webhook for a room, proposing ``candidate`` (an agent view)."""
    payload = bot_body["payload"]
    channel = bot_body.get("channel") or {}
    sender = payload["from"]
    return {
        "app_id": app_code,
        "source": channel.get("source"),
        "name": sender.get("name", ""),
        "email": sender.get("email", ""),
        "avatar_url": sender.get("avatar_url"),
        "extras": "{}",
        "is_resolved": False,
        "room_id": str(payload["room"]["id"]),
        "candidate_agent": {
            "id": candidate["id"],
            "name": candidate["name"],
            "email": candidate["email"],
            "is_available": candidate["is_available"],
            "type": candidate.get("type", 2),
            "type_as_string": candidate.get("type_as_string", "agent"),
        },
    }
