"""Qiscus Omnichannel: answer customers on WhatsApp and every channel, hand rooms to agents.

- `OmnichannelClient`: every Omnichannel call a bot needs (send as the bot, bot on/off, agents,
  divisions, assignment, resolve, tags, customer properties, channels, office hours).
- `detect_room`: whether a webhook's room is an Omnichannel room, and its channel source.
- `text_menu` / `match_choice`: buttons as numbered text, and the customer's answer read back.
- `Template` / `QuickReply`: WhatsApp template messages, checked against WhatsApp's limits.
"""

from __future__ import annotations

from qbot.omnichannel.client import DEFAULT_BASE_URL, OmnichannelClient, admin_email, phone_digits
from qbot.omnichannel.menus import MENU_TYPES, MenuChoice, TextMenu, match_choice, text_menu
from qbot.omnichannel.models import (
    Agent,
    AgentAllocationWebhook,
    BotMessage,
    Channel,
    Channels,
    CustomerRoom,
    Division,
    NewSessionWebhook,
    OfficeHours,
    ResolvedService,
    ResolvedWebhook,
    RoomTag,
    ServiceRecord,
    TemplateSent,
)
from qbot.omnichannel.rooms import Mode, OmnichannelRoom, detect_room, normalise_source
from qbot.omnichannel.templates import ApprovedTemplate, QuickReply, Template, TemplateContent

__all__ = [
    "DEFAULT_BASE_URL",
    "MENU_TYPES",
    "Agent",
    "AgentAllocationWebhook",
    "ApprovedTemplate",
    "BotMessage",
    "Channel",
    "Channels",
    "CustomerRoom",
    "Division",
    "MenuChoice",
    "Mode",
    "NewSessionWebhook",
    "OfficeHours",
    "OmnichannelClient",
    "OmnichannelRoom",
    "QuickReply",
    "ResolvedService",
    "ResolvedWebhook",
    "RoomTag",
    "ServiceRecord",
    "Template",
    "TemplateContent",
    "TemplateSent",
    "TextMenu",
    "admin_email",
    "detect_room",
    "match_choice",
    "normalise_source",
    "phone_digits",
    "text_menu",
]
