"""From a built message to Qiscus API calls, each with a deterministic ``unique_temp_id``.

The id is derived from the room, the incoming message's identity and the reply's position in the
handler's answer, so processing the same webhook twice (a crash, a redelivery that slipped through)
posts comments with the same ids, and a retried send can be recognised.

A delivery posts each comment; the durable one (:class:`qbot.outbox.OutboxDelivery`) answers
:class:`AlreadySent` for an id already sent (or failed) and :class:`Queued` for a reply kept in
the outbox to be posted later.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from qbot import metrics
from qbot._logcache import LineLogger
from qbot.messages import Message, OutgoingComment, OutgoingSystemEvent

if TYPE_CHECKING:
    from qbot.client import QiscusClient
    from qbot.messages import Outgoing
    from qbot.messages.postback import PostbackSigner

__all__ = [
    "AlreadySent",
    "Delivery",
    "DirectDelivery",
    "Lookup",
    "Queued",
    "Sender",
    "unique_temp_id",
]

log = structlog.get_logger("qbot.sending")
_sent_log = LineLogger("qbot.sending")
"""The ``reply.sent`` line of every reply (debug: a no-op at the default info level)."""


def unique_temp_id(origin: str, room_id: int | str, seq: int) -> str:
    """``qbot-`` and 24 hex characters, the same for the same (origin, room, position)."""
    digest = hashlib.blake2b(f"{origin}\x1f{room_id}\x1f{seq}".encode(), digest_size=12)
    return "qbot-" + digest.hexdigest()


class Delivery(Protocol):
    """Puts one outgoing comment on the wire (directly, or through a durable outbox)."""

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        """Post ``outgoing`` to ``room_id``; return what Qiscus answered."""
        ...


@runtime_checkable
class Lookup(Protocol):
    """A delivery that can tell whether a comment it may have posted is in the room."""

    async def find(self, room_id: int | str, unique_temp_id: str) -> bool:
        """Whether the room's newest comments hold one posted with ``unique_temp_id``."""
        ...


class DirectDelivery:
    """Posts through the client right away (the client retries transient failures)."""

    def __init__(self, client: QiscusClient, bot_email: str) -> None:
        self.client = client
        self.bot_email = bot_email

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        if isinstance(outgoing, OutgoingSystemEvent):
            return await self.client.post_system_event_message(
                system_event_type=outgoing.system_event_type,
                room_id=room_id,
                subject_email=outgoing.subject_email or self.bot_email,
                object_email=list(outgoing.object_email) or None,
                updated_room_name=outgoing.updated_room_name,
                payload=outgoing.payload,
            )
        return await self.client.post_comment(
            sender_email=self.bot_email,
            room_id=room_id,
            message=outgoing.message,
            type=outgoing.type,
            payload=outgoing.payload,
            unique_temp_id=unique_temp_id,
            disable_link_preview=outgoing.disable_link_preview,
            extras=outgoing.extras,
        )

    async def find(self, room_id: int | str, unique_temp_id: str) -> bool:
        """Whether the room's newest comments hold one posted with ``unique_temp_id``."""
        return await self.client.find_comment(room_id, unique_temp_id) is not None


class AlreadySent:
    """What a durable delivery returns for a reply whose id was already sent or failed."""

    __slots__ = ("status",)

    def __init__(self, status: str) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"AlreadySent({self.status!r})"


class Queued:
    """What a durable delivery returns for a reply kept in the outbox for later.

    Qiscus did not accept it (or an earlier reply of the room) yet; it is posted, in order,
    by :meth:`qbot.outbox.Outbox.flush` once Qiscus answers again.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Queued()"


class Sender:
    """Sends the replies of one update, numbering them for their ``unique_temp_id``.

    Args:
        delivery: where comments go.
        origin: what the replies answer (room and message identity of the update).
        signer: signs postback data when the bot has a postback secret.
        ids: the first replies' ids to ``room``, computed already (``unique_temp_id(origin,
            room, 1)``, ...): used instead of hashing them again.
        room: the room ``ids`` are for.
    """

    def __init__(
        self,
        delivery: Delivery,
        origin: str,
        signer: PostbackSigner | None,
        *,
        ids: Sequence[str] = (),
        room: int | str | None = None,
    ) -> None:
        self.delivery = delivery
        self.origin = origin
        self.signer = signer
        self.sent = 0
        self._ids = ids
        self._room = room

    async def send(self, room_id: int | str, message: Message) -> list[Any]:
        # Build everything before sending anything: a builder error must not leave half a reply.
        outgoing = message.to_outgoing(signer=self.signer)
        results: list[Any] = []
        for item in outgoing:
            self.sent += 1
            if self.sent <= len(self._ids) and room_id == self._room:
                temp_id = self._ids[self.sent - 1]
            else:
                temp_id = unique_temp_id(self.origin, room_id, self.sent)
            result = await self.delivery.deliver(room_id, item, temp_id)
            if isinstance(result, AlreadySent):
                log.info("reply.skipped", reason=f"already_{result.status}", unique_temp_id=temp_id)
                results.append(None)
                continue
            if isinstance(result, Queued):  # posted later, in order, from the outbox
                results.append(None)
                continue
            results.append(result)
            metrics.reply("sent")
            line = _sent_log.at(logging.DEBUG)
            if line is not None:
                line.debug(
                    "reply.sent",
                    to_room=str(room_id),
                    comment_type=item.type if isinstance(item, OutgoingComment) else "system_event",
                    unique_temp_id=temp_id,
                )
        return results
