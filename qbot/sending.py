"""From a built message to Qiscus API calls, each with a deterministic ``unique_temp_id``.

The id is derived from the room, the incoming message's identity and the reply's position in the
handler's answer, so processing the same webhook twice (a crash, a redelivery that slipped through)
posts comments with the same ids, and a retried send can be recognised.

:class:`OutboxDelivery` looks each reply's id up in the storage's outbox before posting it and
records it sent once Qiscus accepted it; an id already sent (or failed) is not posted again, and
a reply Qiscus could not take yet is recorded pending and posted later by :func:`send_pending`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from qbot import metrics
from qbot.errors import QiscusAPIError, QiscusRateLimited, QiscusServerError
from qbot.messages import Message, OutgoingComment, OutgoingSystemEvent
from qbot.storage.base import OutboxItem

if TYPE_CHECKING:
    from qbot.client import QiscusClient
    from qbot.messages import Outgoing
    from qbot.messages.postback import PostbackSigner
    from qbot.storage import Storage

__all__ = [
    "AlreadySent",
    "Delivery",
    "DirectDelivery",
    "OutboxDelivery",
    "Queued",
    "Sender",
    "decode_outgoing",
    "encode_outgoing",
    "send_pending",
    "unique_temp_id",
]

log = structlog.get_logger("qbot.sending")


def unique_temp_id(origin: str, room_id: int | str, seq: int) -> str:
    """``qbot-`` and 24 hex characters, the same for the same (origin, room, position)."""
    digest = hashlib.blake2b(f"{origin}\x1f{room_id}\x1f{seq}".encode(), digest_size=12)
    return "qbot-" + digest.hexdigest()


class Delivery(Protocol):
    """Puts one outgoing comment on the wire (directly, or through a durable outbox)."""

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        """Post ``outgoing`` to ``room_id``; return what Qiscus answered."""
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


def encode_outgoing(room_id: int | str, outgoing: Outgoing) -> dict[str, Any]:
    """The JSON an outbox record keeps to post ``outgoing`` later."""
    if isinstance(outgoing, OutgoingSystemEvent):
        return {
            "kind": "system_event",
            "room_id": room_id,
            "system_event_type": outgoing.system_event_type,
            "subject_email": outgoing.subject_email,
            "object_email": list(outgoing.object_email),
            "updated_room_name": outgoing.updated_room_name,
            "payload": outgoing.payload,
        }
    return {
        "kind": "comment",
        "room_id": room_id,
        "type": outgoing.type,
        "message": outgoing.message,
        "payload": outgoing.payload,
        "disable_link_preview": outgoing.disable_link_preview,
        "extras": outgoing.extras,
    }


def decode_outgoing(data: Any) -> tuple[int | str, Outgoing]:
    """The room and API call an outbox record holds (see :func:`encode_outgoing`).

    Raises:
        ValueError: the record was not written by :func:`encode_outgoing`.
    """
    if not isinstance(data, dict) or data.get("kind") not in ("comment", "system_event"):
        raise ValueError(f"not an outbox reply record: {data!r}")
    room_id = data["room_id"]
    if data["kind"] == "system_event":
        return room_id, OutgoingSystemEvent(
            system_event_type=data["system_event_type"],
            subject_email=data.get("subject_email"),
            object_email=list(data.get("object_email") or []),
            updated_room_name=data.get("updated_room_name"),
            payload=data.get("payload"),
        )
    return room_id, OutgoingComment(
        type=data["type"],
        message=data["message"],
        payload=data.get("payload"),
        disable_link_preview=bool(data.get("disable_link_preview")),
        extras=data.get("extras"),
    )


class AlreadySent:
    """What :class:`OutboxDelivery` returns for a reply whose id was already sent or failed."""

    __slots__ = ("status",)

    def __init__(self, status: str) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"AlreadySent({self.status!r})"


class Queued:
    """What :class:`OutboxDelivery` returns for a reply kept in the outbox for later.

    Qiscus did not accept it (or an earlier reply of the room) yet; it is posted, in order,
    by :func:`send_pending` once Qiscus answers again.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Queued()"


def _retryable(error: Exception) -> bool:
    """Whether Qiscus may still accept the reply later (network, 5xx, 429)."""
    if isinstance(error, QiscusRateLimited | QiscusServerError):
        return True
    return not isinstance(error, QiscusAPIError)


async def _post(
    storage: Storage,
    inner: Delivery,
    room_id: int | str,
    outgoing: Outgoing,
    temp_id: str,
    payload: dict[str, Any],
) -> Any:
    """Post one reply and record the outcome in one write: sent, or failed for good.

    A retryable error (network, 5xx, 429) is re-raised with nothing recorded; the caller decides
    whether the reply waits in the outbox. Works whether or not the outbox holds the reply yet.
    """
    try:
        result = await inner.deliver(room_id, outgoing, temp_id)
    except Exception as e:
        if not _retryable(e):
            # Qiscus refused it for good (400, 401, 403, 404): never try it again.
            failed = OutboxItem(temp_id, str(room_id), payload, status="failed")
            await storage.commit(outbox=[failed])
            log.warning("reply.failed", unique_temp_id=temp_id, error=str(e))
            metrics.reply("failed")
        raise
    await storage.commit(outbox=[OutboxItem(temp_id, str(room_id), payload, status="sent")])
    return result


class OutboxDelivery:
    """Posts each reply through ``inner`` unless the outbox knows it, and records the outcome.

    Before posting, the reply's ``unique_temp_id`` is looked up in the outbox (or in ``known``,
    what :meth:`~qbot.storage.Storage.load_room` read with the message's state): a reply already
    sent or failed is not posted again (a message processed a second time after a crash
    regenerates the same ids): :class:`AlreadySent`. Once Qiscus accepted it, the reply is
    recorded as sent, in one write. When Qiscus cannot be reached or answers 5xx/429 (after the
    client's retries), the reply is recorded pending, its room is added to ``stalled`` and the
    later replies of that room are only queued (:class:`Queued`), so they never overtake it;
    :func:`send_pending` posts them in order. A reply Qiscus refuses for good (4xx) is recorded
    failed and the error reaches the handler.

    Args:
        storage: the bot's storage.
        inner: what actually posts (a :class:`DirectDelivery`, or a test's recorder).
        stalled: rooms whose pending replies must go first (shared by the bot's updates).
        known: outbox records already read, by id (``None``: no record), used once each instead
            of an ``outbox_get``.
    """

    def __init__(
        self,
        storage: Storage,
        inner: Delivery,
        stalled: set[str] | None = None,
        known: dict[str, OutboxItem | None] | None = None,
    ) -> None:
        self.storage = storage
        self.inner = inner
        self.stalled = stalled if stalled is not None else set()
        self.known = known if known is not None else {}

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        room = str(room_id)
        if unique_temp_id in self.known:
            found = self.known.pop(unique_temp_id)
        else:
            found = await self.storage.outbox_get(unique_temp_id)
        if found is not None and found.status != "pending":
            return AlreadySent(found.status)
        payload = encode_outgoing(room_id, outgoing)
        if room in self.stalled:
            await self.storage.commit(outbox=[OutboxItem(unique_temp_id, room, payload)])
            metrics.reply("queued")
            return Queued()
        try:
            return await _post(self.storage, self.inner, room_id, outgoing, unique_temp_id, payload)
        except Exception as e:
            if not _retryable(e):
                raise
            await self.storage.commit(outbox=[OutboxItem(unique_temp_id, room, payload)])
            self.stalled.add(room)
            log.warning("reply.queued", unique_temp_id=unique_temp_id, error=str(e))
            metrics.reply("queued")
            return Queued()


async def send_pending(
    storage: Storage, inner: Delivery, room_id: str, *, limit: int = 100
) -> tuple[int, int]:
    """Post a room's pending outbox replies in queue order; call it holding the room's lease.

    Stops at the first reply Qiscus does not accept yet, so replies never overtake each other.

    Returns:
        (replies sent, replies still pending).
    """
    pending = await storage.outbox_pending(room_id=room_id, limit=limit)
    sent = 0
    for index, item in enumerate(pending):
        try:
            target, outgoing = decode_outgoing(item.payload)
        except ValueError as e:
            await storage.outbox_mark(item.id, "failed")
            log.error("reply.unreadable", unique_temp_id=item.id, error=str(e))
            continue
        try:
            await _post(storage, inner, target, outgoing, item.id, item.payload)
        except Exception as e:
            if _retryable(e):
                log.warning("reply.retry_later", unique_temp_id=item.id, error=str(e))
                return sent, len(pending) - index
            continue
        sent += 1
        log.info("reply.resent", to_room=room_id, unique_temp_id=item.id)
        metrics.reply("resent")
    return sent, 0


class Sender:
    """Sends the replies of one update, numbering them for their ``unique_temp_id``.

    Args:
        delivery: where comments go.
        origin: what the replies answer (room and message identity of the update).
        signer: signs postback data when the bot has a postback secret.
    """

    def __init__(self, delivery: Delivery, origin: str, signer: PostbackSigner | None) -> None:
        self.delivery = delivery
        self.origin = origin
        self.signer = signer
        self.sent = 0

    async def send(self, room_id: int | str, message: Message) -> list[Any]:
        # Build everything before sending anything: a builder error must not leave half a reply.
        outgoing = message.to_outgoing(signer=self.signer)
        results: list[Any] = []
        for item in outgoing:
            self.sent += 1
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
            log.debug(
                "reply.sent",
                to_room=str(room_id),
                comment_type=item.type if isinstance(item, OutgoingComment) else "system_event",
                unique_temp_id=temp_id,
            )
        return results
