"""The end-to-end workload both bots answer: many rooms, texts and postbacks, one reply each.

Every reply ends with ``#<message id>`` so the sink can tell which webhook it answers, and the
load generator can measure the time from webhook sent to reply received.
"""

from __future__ import annotations

import json
import re
from typing import Any

BOT_EMAIL = "bot@bench.local"
APP_ID = "bench"
SECRET_KEY = "bench-secret"

ORDER = re.compile(r"^order\s*#?(\d+)$", re.IGNORECASE)
GREETINGS = ("hi", "hello")


def reply_text(kind: str, mid: int | str, name: str = "", number: str = "") -> str:
    """What both bots answer; ``kind`` is the handler that took the message."""
    if kind == "greet":
        return f"Hello {name}! #{mid}"
    if kind == "menu":
        return f"Menu: track, deals #{mid}"
    if kind == "order":
        return f"Order {number} is on its way #{mid}"
    if kind == "track":
        return f"Send me your order number #{mid}"
    return f"Sorry, I did not get that #{mid}"


def message_id_of(reply: str) -> int:
    """The webhook message id a reply answers."""
    return int(reply.rsplit("#", 1)[1])


def webhook(i: int, rooms: int) -> dict[str, Any]:
    """The ``i``-th webhook of the workload: a Chat SDK delivery in one of ``rooms`` rooms."""
    room = 10_000 + i % rooms
    mid = 1_000_000 + i
    slot = i % 20
    kind, payload = "text", {}
    if slot < 8:
        text = GREETINGS[slot % 2]
    elif slot < 12:
        text = "menu"
    elif slot < 15:
        text = f"order {100 + i % 900}"
    elif slot < 18:
        kind, text = "button_postback_response", "Track my order"
        payload = {"url": "", "method": "", "payload": {"qbot": 1, "a": "track"}}
    else:
        text = f"what about item {i}?"
    sender = f"user{room}@example.com"
    return {
        "type": "post_comment_mobile",
        "payload": {
            "from": {"id": room, "email": sender, "name": f"User {room}", "avatar_url": ""},
            "room": {
                "id": room,
                "topic_id": room,
                "type": "single",
                "name": f"room {room}",
                "options": "{}",
                "participants": [
                    {"id": room, "email": sender, "username": f"User {room}"},
                    {"id": 1, "email": BOT_EMAIL, "username": "Bot"},
                ],
            },
            "message": {
                "id": mid,
                "comment_before_id": mid - 1,
                "unique_temp_id": f"android_{mid}",
                "type": kind,
                "text": text,
                "payload": payload,
                "created_at": "2025-07-11T05:46:37Z",
                "timestamp": "2025-07-11T05:46:37Z",
                "unix_timestamp": 1752212797,
                "disable_link_preview": False,
                "extras": {},
            },
        },
    }


def webhook_bytes(i: int, rooms: int) -> bytes:
    return json.dumps(webhook(i, rooms)).encode()


def telegram_update(i: int, rooms: int) -> dict[str, Any]:
    """The ``i``-th webhook of the workload as a Telegram update, for the aiogram peer: the same
    texts in the same rooms (chats), postbacks as ``callback_query`` taps of a ``track`` button."""
    qiscus = webhook(i, rooms)["payload"]
    room, message = qiscus["room"]["id"], qiscus["message"]
    mid = message["id"]
    user = {"id": room, "is_bot": False, "first_name": qiscus["from"]["name"]}
    chat = {"id": room, "type": "private", "first_name": qiscus["from"]["name"]}
    date = message["unix_timestamp"]
    if message["type"] == "button_postback_response":
        shown = {"message_id": mid, "date": date, "chat": chat, "text": "Menu"}
        tap = {"id": str(mid), "from": user, "chat_instance": str(room), "data": "track"}
        return {"update_id": mid, "callback_query": {**tap, "message": shown}}
    text = {"message_id": mid, "date": date, "chat": chat, "from": user, "text": message["text"]}
    return {"update_id": mid, "message": text}


def telegram_update_bytes(i: int, rooms: int) -> bytes:
    return json.dumps(telegram_update(i, rooms)).encode()
