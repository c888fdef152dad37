"""System events: the grey "X added Y" lines, posted through ``post_system_event_message``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qbot.errors import MessageBuildError
from qbot.messages._validate import require_mapping, require_text
from qbot.messages.base import Message, Outgoing, OutgoingSystemEvent

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner

SYSTEM_EVENT_TYPES = (
    "create_room",
    "add_member",
    "join_room",
    "remove_member",
    "left_room",
    "change_room_name",
    "change_room_avatar",
)
_NEEDS_OBJECT = frozenset({"add_member", "remove_member"})
_NEEDS_ROOM_NAME = frozenset({"change_room_name", "create_room"})


class SystemEvent(Message):
    """A system event line in a room, e.g. "Bot added Ani".

    Args:
        system_event_type: one of ``create_room``, ``add_member``, ``join_room``,
            ``remove_member``, ``left_room``, ``change_room_name``, ``change_room_avatar``.
        subject_email: who did it; ``None`` means the bot itself.
        object_email: who it was done to; required for ``add_member``/``remove_member``.
        updated_room_name: required for ``change_room_name``/``create_room``.

    Raises:
        MessageBuildError: an unknown type, or a field the type requires is missing.

    Example:
        ``SystemEvent("add_member", object_email=["ani@example.com"])`` or
        ``SystemEvent.custom({"type": "add_admin", "admin_email": "a@example.com"})``
    """

    def __init__(
        self,
        system_event_type: str,
        *,
        subject_email: str | None = None,
        object_email: Sequence[str] = (),
        updated_room_name: str | None = None,
    ) -> None:
        if system_event_type not in SYSTEM_EVENT_TYPES:
            raise MessageBuildError(
                f"system_event_type {system_event_type!r} is not one of "
                f"{', '.join(SYSTEM_EVENT_TYPES)}; use SystemEvent.custom(payload) for your own"
            )
        if subject_email is not None:
            require_text("SystemEvent subject_email", subject_email)
        if isinstance(object_email, str):
            raise MessageBuildError(
                f"SystemEvent object_email must be a list of emails, got the string "
                f"{object_email!r}: wrap it as [{object_email!r}]"
            )
        emails = [require_text("SystemEvent object_email entry", e) for e in object_email]
        if system_event_type in _NEEDS_OBJECT and not emails:
            raise MessageBuildError(
                f"SystemEvent {system_event_type!r} needs object_email=[...] (who was "
                f"added/removed), got {list(object_email)!r}"
            )
        if system_event_type in _NEEDS_ROOM_NAME:
            require_text(f"SystemEvent {system_event_type!r} updated_room_name", updated_room_name)
        elif updated_room_name is not None:
            require_text("SystemEvent updated_room_name", updated_room_name)
        self.system_event_type = system_event_type
        self.subject_email = subject_email
        self.object_email = emails
        self.updated_room_name = updated_room_name
        self.payload: dict[str, Any] | None = None

    @classmethod
    def custom(cls, payload: dict[str, Any]) -> SystemEvent:
        """A ``custom`` system event whose payload Qiscus stores and returns as given.

        Raises:
            MessageBuildError: the payload is empty or not a JSON-serialisable dict.
        """
        checked = require_mapping("SystemEvent.custom payload", payload)
        if not checked:
            raise MessageBuildError(
                f"SystemEvent.custom payload must not be empty, got {payload!r}; "
                "give it at least a 'type'"
            )
        event = cls.__new__(cls)
        event.system_event_type = "custom"
        event.subject_email = None
        event.object_email = []
        event.updated_room_name = None
        event.payload = checked
        return event

    def __repr__(self) -> str:
        return f"SystemEvent({self.system_event_type!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``post_system_event_message`` call."""
        return [
            OutgoingSystemEvent(
                system_event_type=self.system_event_type,
                subject_email=self.subject_email,
                object_email=list(self.object_email),
                updated_room_name=self.updated_room_name,
                payload=None if self.payload is None else dict(self.payload),
            )
        ]
