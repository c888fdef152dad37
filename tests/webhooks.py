"""Webhook bodies for tests, shaped like the deliveries Qiscus documents (tests/examples/)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from qbot.messages import Outgoing

EXAMPLES = Path(__file__).resolve().parent / "examples"
_ids = itertools.count(1000)


def sdk_body(
    text: str = "hi",
    *,
    room_id: int | str = 1,
    sender: str = "user1@example.com",
    name: str = "User One",
    type: str = "text",
    payload: Any = None,
    message_id: int | str | None = None,
    unique_temp_id: str | None = None,
    event: str = "post_comment_mobile",
) -> dict[str, Any]:
    """A real-looking Chat SDK delivery (numeric ids, unique_temp_id, timestamps)."""
    mid = next(_ids) if message_id is None else message_id
    return {
        "type": event,
        "payload": {
            "from": {"id": 11, "email": sender, "name": name, "avatar_url": "http://a/1.png"},
            "room": {
                "id": room_id,
                "topic_id": room_id,
                "type": "single",
                "name": "room",
                "options": '{"color": "blue"}',
                "participants": [
                    {"id": 11, "email": sender, "username": name, "avatar_url": "http://a/1.png"},
                    {"id": 12, "email": "bot@example.com", "username": "Bot"},
                ],
            },
            "message": {
                "id": mid,
                "comment_before_id": 0,
                "unique_temp_id": unique_temp_id or f"android_{mid}",
                "type": type,
                "text": text,
                "payload": payload if payload is not None else {},
                "created_at": "2025-07-11T05:46:37Z",
                "timestamp": "2025-07-11T05:46:37Z",
                "unix_timestamp": 1752212797,
                "disable_link_preview": False,
                "extras": {},
            },
        },
    }


def postback_body(button: dict[str, Any], *, text: str = "Button", **kw: Any) -> dict[str, Any]:
    """What a client posts when a postback button is tapped: its payload echoed verbatim."""
    return sdk_body(text, type="button_postback_response", payload=button["payload"], **kw)


def event_body(event_type: str, **kw: Any) -> dict[str, Any]:
    payload = {
        "type": event_type,
        "subject_username": "Ucup",
        "subject_email": "ucup@example.com",
        "object_username": "Ani",
        "object_email": "ani@example.com",
    }
    return sdk_body("Ucup added Ani", type="system_event", payload=payload, **kw)


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


class RecordingDelivery:
    """A Delivery that records instead of posting (for tests of routing, not of HTTP)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int | str, Outgoing, str]] = []

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        self.sent.append((room_id, outgoing, unique_temp_id))
        return {"id": len(self.sent)}

    @property
    def texts(self) -> list[str]:
        return [getattr(o, "message", "") for _, o, _ in self.sent]
