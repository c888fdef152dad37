"""What every builder produces: the wire form of one Qiscus API call that posts a comment."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner


@dataclass(frozen=True, slots=True)
class OutgoingComment:
    """One ``post_comment`` call: ``type``, ``message`` and the type's ``payload``."""

    type: str
    message: str
    payload: dict[str, Any] | None = None
    disable_link_preview: bool = False
    extras: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class OutgoingSystemEvent:
    """One ``post_system_event_message`` call.

    ``subject_email`` left ``None`` means "the bot itself"; the runtime fills it in.
    """

    system_event_type: str
    subject_email: str | None = None
    object_email: list[str] = field(default_factory=list)
    updated_room_name: str | None = None
    payload: dict[str, Any] | None = None


Outgoing = OutgoingComment | OutgoingSystemEvent


class Message(ABC):
    """A reply a handler can send: ``await ctx.reply(message)``."""

    @abstractmethod
    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """The API calls that deliver this message, in order.

        Args:
            signer: signs postback data when the bot has a postback secret configured.
        """
