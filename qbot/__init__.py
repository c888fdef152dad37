"""qbot: chatbots on Qiscus.

```python
from qbot import Bot, Buttons, Context

bot = Bot()

@bot.message(text=["hi", "hello"])
async def greet(ctx: Context) -> None:
    await ctx.reply(f"Hello {ctx.sender.name}!")
```
"""

from __future__ import annotations

from qbot import filters
from qbot.bot import Bot, Outcome
from qbot.client import QiscusClient, RetryPolicy
from qbot.config import Settings, load_settings
from qbot.context import Context
from qbot.errors import (
    ConfigError,
    HandlerRegistrationError,
    InvalidInput,
    LeaseLostError,
    MessageBuildError,
    PostbackError,
    QbotError,
    QiscusAPIError,
    QiscusError,
    QiscusNetworkError,
    TemplateError,
)
from qbot.forms import Field, Form
from qbot.intents import IntentMatch, IntentSet, load_intents
from qbot.messages import (
    AccountLinking,
    Buttons,
    Card,
    Carousel,
    Custom,
    Message,
    Postback,
    Reply,
    SystemEvent,
    Text,
)
from qbot.models.webhook import Update
from qbot.routing import Router
from qbot.state import State
from qbot.templates import Templates

__version__ = "0.1.0"

__all__ = [
    "AccountLinking",
    "Bot",
    "Buttons",
    "Card",
    "Carousel",
    "ConfigError",
    "Context",
    "Custom",
    "Field",
    "Form",
    "HandlerRegistrationError",
    "IntentMatch",
    "IntentSet",
    "InvalidInput",
    "LeaseLostError",
    "Message",
    "MessageBuildError",
    "Outcome",
    "Postback",
    "PostbackError",
    "QbotError",
    "QiscusAPIError",
    "QiscusClient",
    "QiscusError",
    "QiscusNetworkError",
    "Reply",
    "RetryPolicy",
    "Router",
    "Settings",
    "State",
    "SystemEvent",
    "TemplateError",
    "Templates",
    "Text",
    "Update",
    "filters",
    "load_intents",
    "load_settings",
]
