"""The builder API: what a handler passes to ``ctx.reply()``.

```python
await ctx.reply("plain text")
await ctx.reply(Buttons("Pick one").postback("Yes", action="confirm", data={"n": 7}))
```
Every builder validates its input when built and produces the wire form with ``to_outgoing()``.
"""

from __future__ import annotations

from qbot.messages._validate import MAX_MESSAGE_LENGTH
from qbot.messages.base import Message, Outgoing, OutgoingComment, OutgoingSystemEvent
from qbot.messages.buttons import Button, Buttons
from qbot.messages.cards import Card, Carousel
from qbot.messages.postback import Postback, PostbackSigner, pack_postback, unpack_postback
from qbot.messages.spec import as_message, message_from_spec
from qbot.messages.special import AccountLinking, Custom
from qbot.messages.system import SYSTEM_EVENT_TYPES, SystemEvent
from qbot.messages.text import Reply, Text, split_text

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "SYSTEM_EVENT_TYPES",
    "AccountLinking",
    "Button",
    "Buttons",
    "Card",
    "Carousel",
    "Custom",
    "Message",
    "Outgoing",
    "OutgoingComment",
    "OutgoingSystemEvent",
    "Postback",
    "PostbackSigner",
    "Reply",
    "SystemEvent",
    "Text",
    "as_message",
    "message_from_spec",
    "pack_postback",
    "split_text",
    "unpack_postback",
]
