"""Pydantic models of what crosses the wire: webhook bodies in, API responses back."""

from __future__ import annotations

from qbot.models.webhook import (
    PAYLOAD_MODELS,
    Channel,
    ContactPerson,
    CustomPayload,
    FileAttachment,
    IncomingMessage,
    Location,
    Participant,
    PostbackResponse,
    ReplyPayload,
    Room,
    SystemEventPayload,
    Update,
    User,
    WebhookPayload,
)

__all__ = [
    "PAYLOAD_MODELS",
    "Channel",
    "ContactPerson",
    "CustomPayload",
    "FileAttachment",
    "IncomingMessage",
    "Location",
    "Participant",
    "PostbackResponse",
    "ReplyPayload",
    "Room",
    "SystemEventPayload",
    "Update",
    "User",
    "WebhookPayload",
]
