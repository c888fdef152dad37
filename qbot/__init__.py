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

import warnings
from typing import Any

from qbot import filters
from qbot.bot import Bot, Outcome
from qbot.client import QiscusClient, RetryPolicy
from qbot.config import Settings, load_settings
from qbot.context import Context
from qbot.errors import (
    ConfigError,
    HandlerRegistrationError,
    ImportFileError,
    InvalidInput,
    MessageBuildError,
    OutsideWindowError,
    PostbackError,
    QbotError,
    QiscusAPIError,
    QiscusBadRequest,
    QiscusError,
    QiscusForbidden,
    QiscusNetworkError,
    QiscusNotFound,
    QiscusRateLimited,
    QiscusServerError,
    QiscusUnauthorized,
    StartupError,
    StorageError,
    TemplateError,
    TemplateLimitError,
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
from qbot.names import Action, Steps
from qbot.office_hours import OfficeHours
from qbot.routing import Router
from qbot.state import State
from qbot.templates import Templates

__version__ = "0.1.0"

__all__ = [
    "AccountLinking",
    "Action",
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
    "ImportFileError",
    "IntentMatch",
    "IntentSet",
    "InvalidInput",
    "Message",
    "MessageBuildError",
    "OfficeHours",
    "Outcome",
    "OutsideWindowError",
    "Postback",
    "PostbackError",
    "QbotError",
    "QiscusAPIError",
    "QiscusBadRequest",
    "QiscusClient",
    "QiscusError",
    "QiscusForbidden",
    "QiscusNetworkError",
    "QiscusNotFound",
    "QiscusRateLimited",
    "QiscusServerError",
    "QiscusUnauthorized",
    "Reply",
    "RetryPolicy",
    "Router",
    "Settings",
    "StartupError",
    "State",
    "Steps",
    "StorageError",
    "SystemEvent",
    "TemplateError",
    "TemplateLimitError",
    "Templates",
    "Text",
    "Update",
    "filters",
    "load_intents",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    """Names qbot no longer exports, kept importable for one release with a warning."""
    if name == "LeaseLostError":
        from qbot.errors import LeaseLostError

        warnings.warn(
            "qbot.LeaseLostError is internal to the runtime and leaves qbot's exports in the "
            "next release: catch qbot.StorageError (its base class), or import it from "
            "qbot.errors",
            DeprecationWarning,
            stacklevel=2,
        )
        return LeaseLostError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
