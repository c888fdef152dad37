"""The outbox: every record of a message's processing, and the replies waiting to be posted.

One :class:`Outbox` per storage owns, for the runtime and the bot alike:

- the rooms whose replies wait (Qiscus did not accept one yet, a dead worker left some, or the
  claim of the room said so: :attr:`qbot.storage.Claim.replies_waiting`);
- posting each reply once (:meth:`Outbox.delivery`), recording it sent or failed;
- flushing a room's pending replies in order before its new work (:meth:`Outbox.flush_waiting`),
  and finding the rooms whose replies nobody is posting (:meth:`Outbox.rooms_waiting`, the
  runtime's sweeper);
- the commit that ends a message: its state writes and its inbox ack together
  (:meth:`Outbox.commit`).

Every ``storage.commit`` of the message pipeline is made here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from qbot import metrics
from qbot.errors import (
    QiscusAPIError,
    QiscusNetworkError,
    QiscusRateLimited,
    QiscusServerError,
    StorageError,
)
from qbot.messages import OutgoingComment, OutgoingSystemEvent
from qbot.sending import AlreadySent, Lookup, Queued
from qbot.storage.records import InboxItem, OutboxItem, StateWrite

if TYPE_CHECKING:
    from qbot.messages import Outgoing
    from qbot.sending import Delivery
    from qbot.storage import Storage

__all__ = ["Outbox", "OutboxDelivery", "decode_outgoing", "encode_outgoing"]

log = structlog.get_logger("qbot.outbox")

FLUSH_BATCH = 100
"""Pending replies of one room read per flush."""


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


def _unsure(error: Exception) -> bool:
    """Whether Qiscus may have taken the post that failed with ``error`` (no answer, a 5xx)."""
    if isinstance(error, QiscusServerError):
        return error.status != 503
    return isinstance(error, QiscusNetworkError)


def _retryable(error: Exception) -> bool:
    """Whether Qiscus may still accept the reply later (network, 5xx, 429)."""
    if isinstance(error, QiscusRateLimited | QiscusServerError):
        return True
    return not isinstance(error, QiscusAPIError)


class Outbox:
    """The replies of one storage: recorded, posted once each, in order per room.

    Args:
        storage: where the records are kept.
        outbound: returns what actually posts (the bot's :class:`~qbot.sending.DirectDelivery`,
            or a test's recorder); asked at each use, so a delivery set later is used.
    """

    def __init__(self, storage: Storage, outbound: Callable[[], Delivery]) -> None:
        self.storage = storage
        self._outbound = outbound
        self._waiting: set[str] = set()
        self._recheck: set[str] = set()

    # --- rooms whose replies may be posted and not recorded --------------------------------------

    def recheck(self, room_id: str) -> None:
        """Look the room's next replies up in Qiscus before posting them.

        For a room whose message is processed again (its commit failed, or a claim redelivered
        it after its worker died): a reply posted before may not have been recorded sent.
        """
        self._recheck.add(room_id)

    def rechecking(self, room_id: str) -> bool:
        """Whether the room's replies are looked up before they are posted (:meth:`recheck`)."""
        return room_id in self._recheck

    def rechecked(self, room_id: str) -> None:
        """The room's message was committed: its replies are all recorded again."""
        self._recheck.discard(room_id)

    async def posted_already(
        self, inner: Delivery, room_id: int | str, outgoing: Outgoing, temp_id: str
    ) -> bool:
        """Whether Qiscus holds the reply ``temp_id`` (then it is recorded sent).

        One look-up among the room's newest comments, made only for a reply whose earlier post
        may have landed unrecorded; a delivery that cannot look up (no ``find``), a system event
        (it carries no id) or a failed look-up answers False: the reply is posted.
        """
        if not isinstance(inner, Lookup) or not isinstance(outgoing, OutgoingComment):
            return False
        try:
            found = await inner.find(room_id, temp_id)
        except Exception as e:
            log.warning("reply.lookup_failed", unique_temp_id=temp_id, error=str(e))
            return False
        if found:
            payload = encode_outgoing(room_id, outgoing)
            await self.storage.commit(outbox=[OutboxItem(temp_id, str(room_id), payload, "sent")])
            log.info("reply.found_posted", to_room=str(room_id), unique_temp_id=temp_id)
        return found

    # --- rooms whose replies wait ----------------------------------------------------------------

    def waiting(self, room_id: str) -> bool:
        """Whether ``room_id`` has replies to post before anything new (as far as known here)."""
        return room_id in self._waiting

    def note_waiting(self, room_ids: Iterable[str]) -> None:
        """Rooms found to have pending replies (by a claim, or the sweeper)."""
        self._waiting.update(room_ids)

    async def rooms_waiting(self, limit: int = FLUSH_BATCH) -> list[str]:
        """Rooms of the storage's oldest pending replies, any worker's, oldest first."""
        pending = await self.storage.outbox_pending(limit=limit)
        return list(dict.fromkeys(item.room_id for item in pending))

    async def flush_waiting(self, room_id: str) -> int:
        """:meth:`flush` the room if its replies wait; return how many are still pending."""
        return await self.flush(room_id) if room_id in self._waiting else 0

    async def flush(self, room_id: str) -> int:
        """Post the room's pending replies in queue order; return how many are still pending.

        Stops at the first reply Qiscus does not accept yet, so replies never overtake each
        other. Call it holding the room's lease (the runtime does), or without a runtime.

        Raises:
            ConfigError: the bot has no email to post as.
            StorageError: the storage failed.
        """
        inner = self._outbound()
        pending = await self.storage.outbox_pending(room_id=room_id, limit=FLUSH_BATCH)
        sent = left = 0
        for index, item in enumerate(pending):
            try:
                target, outgoing = decode_outgoing(item.payload)
            except ValueError as e:
                await self.storage.outbox_mark(item.id, "failed")
                log.error("reply.unreadable", unique_temp_id=item.id, error=str(e))
                continue
            unsure = bool(item.payload.get("unsure")) or self.rechecking(room_id)
            if unsure and await self.posted_already(inner, target, outgoing, item.id):
                continue
            try:
                await self._post(inner, target, outgoing, item.id, item.payload)
            except StorageError:
                raise
            except Exception as e:
                if _retryable(e):
                    log.warning("reply.retry_later", unique_temp_id=item.id, error=str(e))
                    left = len(pending) - index
                    break
                continue
            sent += 1
            log.info("reply.resent", to_room=room_id, unique_temp_id=item.id)
            metrics.reply("resent")
        if left:
            self._waiting.add(room_id)
        else:
            self._waiting.discard(room_id)
        if sent or left:
            log.info("outbox.flushed", to_room=room_id, sent=sent, still_pending=left)
        return left

    # --- the records -----------------------------------------------------------------------------

    def delivery(self, known: dict[str, OutboxItem | None] | None = None) -> OutboxDelivery:
        """The delivery of one update's replies.

        Args:
            known: outbox records already read, by id (``None``: no record), used once each
                instead of an ``outbox_get`` (what ``load_room`` read with the message's state).
        """
        return OutboxDelivery(self, self._outbound(), known or {})

    async def commit(
        self, *, owner: str | None, ack: Sequence[InboxItem] = (), states: Sequence[StateWrite] = ()
    ) -> None:
        """End a message: its state writes and its inbox ack, all or nothing.

        Raises:
            LeaseLostError: ``owner`` lost the room meanwhile; nothing was committed.
            StorageError: the storage failed.
        """
        await self.storage.commit(owner=owner, ack=ack, states=states)

    async def _post(
        self,
        inner: Delivery,
        room_id: int | str,
        outgoing: Outgoing,
        temp_id: str,
        payload: dict[str, Any],
    ) -> Any:
        """Post one reply and record the outcome in one write: sent, or failed for good.

        A retryable error (network, 5xx, 429) is re-raised with nothing recorded; the caller
        decides whether the reply waits in the outbox. Works whether or not the outbox holds
        the reply yet.
        """
        room = str(room_id)
        try:
            result = await inner.deliver(room_id, outgoing, temp_id)
        except Exception as e:
            if not _retryable(e):
                # Qiscus refused it for good (400, 401, 403, 404): never try it again.
                await self.storage.commit(outbox=[OutboxItem(temp_id, room, payload, "failed")])
                log.warning("reply.failed", unique_temp_id=temp_id, error=str(e))
                metrics.reply("failed")
            raise
        try:
            await self.storage.commit(outbox=[OutboxItem(temp_id, room, payload, "sent")])
        except StorageError:
            self.recheck(room)  # posted and not recorded: looked up before it is posted again
            raise
        return result


class OutboxDelivery:
    """Posts each reply of one update unless the outbox knows it, and records the outcome.

    Before posting, the reply's ``unique_temp_id`` is looked up in the outbox (or in ``known``):
    a reply already sent or failed is not posted again (a message processed a second time after
    a crash regenerates the same ids): :class:`~qbot.sending.AlreadySent`. Once Qiscus accepted
    it, the reply is recorded as sent, in one write. When Qiscus cannot be reached or answers
    5xx/429 (after the client's retries), the reply is recorded pending, its room waits, and the
    later replies of that room are only queued (:class:`~qbot.sending.Queued`), so they never
    overtake it; :meth:`Outbox.flush` posts them in order. A reply Qiscus refuses for good (4xx)
    is recorded failed and the error reaches the handler.

    Made by :meth:`Outbox.delivery`.
    """

    def __init__(
        self, outbox: Outbox, inner: Delivery, known: dict[str, OutboxItem | None]
    ) -> None:
        self.outbox = outbox
        self.inner = inner
        self.known = known

    async def deliver(self, room_id: int | str, outgoing: Outgoing, unique_temp_id: str) -> Any:
        outbox = self.outbox
        room = str(room_id)
        if unique_temp_id in self.known:
            found = self.known.pop(unique_temp_id)
        else:
            found = await outbox.storage.outbox_get(unique_temp_id)
        if found is not None and found.status != "pending":
            return AlreadySent(found.status)
        payload = encode_outgoing(room_id, outgoing)
        if outbox.waiting(room):
            await outbox.storage.commit(outbox=[OutboxItem(unique_temp_id, room, payload)])
            metrics.reply("queued")
            return Queued()
        if outbox.rechecking(room) and await outbox.posted_already(
            self.inner, room_id, outgoing, unique_temp_id
        ):
            return AlreadySent("sent")
        try:
            return await outbox._post(self.inner, room_id, outgoing, unique_temp_id, payload)
        except StorageError:
            raise  # nothing more can be recorded now; the message is processed again
        except Exception as e:
            if not _retryable(e):
                raise
            if _unsure(e):  # it may have landed: looked up before it is posted again
                payload["unsure"] = True
            await outbox.storage.commit(outbox=[OutboxItem(unique_temp_id, room, payload)])
            outbox.note_waiting([room])
            log.warning("reply.queued", unique_temp_id=unique_temp_id, error=str(e))
            metrics.reply("queued")
            return Queued()
