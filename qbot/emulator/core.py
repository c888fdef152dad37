"""The emulator's behaviour, independent of HTTP: post comments, deliver webhooks, record traffic.

The REST routes (what the bot calls), the page routes (what the browser calls), ``qbot.testing``
and ``qbot shell`` all go through :class:`Emulator`, so a comment is stored, pushed to live pages,
delivered to the bot and recorded for the inspector in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from qbot._json import dumps
from qbot.clock import Clock, SystemClock
from qbot.emulator.backups import Backups
from qbot.emulator.calls import Call, CallLog
from qbot.emulator.store import MAX_ID, EmulatorStore
from qbot.emulator.webhook import MOBILE, REST, SIGNATURE_HEADER, sign, webhook_body

log = structlog.get_logger()

#: Delivers one webhook: ``(raw_body, headers) -> (status, detail)``.
Deliver = Callable[[bytes, dict[str, str]], Awaitable[tuple[int | None, str]]]
#: Receives every live event (``{"event": ..., ...}``) for the web page.
Listener = Callable[[dict[str, Any]], None]

_SYSTEM_TEXT = {
    "create_room": "{subject} created room '{room_name}'",
    "add_member": "{subject} added {objects}",
    "join_room": "{subject} joined room",
    "remove_member": "{subject} removed {objects}",
    "left_room": "{subject} left room",
    "change_room_name": "{subject} changed room name to '{room_name}'",
    "change_room_avatar": "{subject} changed room avatar",
}
SYSTEM_EVENT_TYPES = (*_SYSTEM_TEXT, "custom")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """What the emulator pretends to be, and where it sends webhooks.

    Attributes:
        app_id: the Qiscus app id the bot must send in ``QISCUS-SDK-APP-ID``.
        secret_key: the secret the bot must send in ``QISCUS-SDK-SECRET``.
        bot_email: the bot's user; registered at start so its posts are accepted.
        bot_name: the bot's display name.
        webhook_url: where user comments are POSTed (``None``: not delivered, only stored).
        signature_token: when set, webhooks carry ``QISCUS-SDK-SIGNATURE``.
        echo_rest: also deliver the bot's own posts back as ``post_comment_rest`` webhooks.
        webhook_timeout: seconds to wait for the bot's answer to one webhook.
        lenient: create what a call names but nobody made: unknown users (a sender, a
            participant) and, for ``post_comment`` and ``post_system_event_message``, unknown
            numeric rooms; a ``reply`` may quote an unknown comment. The bot and System users
            are then created on first use too, not at start. For tests that post without setup;
            ``False`` (``qbot dev``) answers 404 as Qiscus does.
        call_history: how many recorded calls (and posted bodies) to keep, the newest;
            ``None`` keeps all (a test's emulator). ``qbot dev``, which runs for hours, keeps 1000.
    """

    app_id: str = "qbot-emulator"
    secret_key: str = "emulator-secret"
    bot_email: str = "bot@qbot.local"
    bot_name: str = "Bot"
    webhook_url: str | None = None
    signature_token: str | None = None
    echo_rest: bool = True
    webhook_timeout: float = 10.0
    lenient: bool = False
    call_history: int | None = None

    @property
    def system_email(self) -> str:
        """The System user's email, as Qiscus names it."""
        return f"system@{self.app_id}.qiscus.com"


class Emulator:
    """A local Qiscus backend: users, rooms, comments, webhook delivery and an inspector log.

    It also records every REST call and injects faults, for tests: :attr:`calls`,
    :meth:`fail_next`, :meth:`delay`, :meth:`hang`, :meth:`posted_comments`, :meth:`wait_for`.

    Args:
        config: identity, credentials and webhook target.
        store: where state lives; opened by :meth:`start`.
        deliver: replaces HTTP delivery of webhooks (``qbot.testing`` feeds the bot directly).
    """

    def __init__(
        self, config: EmulatorConfig, store: EmulatorStore, *, deliver: Deliver | None = None
    ) -> None:
        self.config = config
        self.store = store
        #: Every REST call and the faults still to inject (see :mod:`qbot.emulator.calls`).
        self.call_log = CallLog(limit=config.call_history)
        #: Exports and imports, kept in memory (see :mod:`qbot.emulator.backups`).
        self.backups = Backups()
        self._deliver = deliver
        self._base_url: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.clock: Clock = SystemClock()
        """The emulated time (the page shows it; the harness and ``qbot dev`` share theirs)."""
        self._listeners: list[Listener] = []
        #: Rewrites a webhook body for its room (``(body, room) -> body``), or ``None`` to not
        #: deliver it: how the Omnichannel desk sends its rooms' messages in Omnichannel's shape
        #: and stops delivering a room whose bot is off.
        self.reshape: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None = (
            None
        )

    @property
    def base_url(self) -> str:
        """Where the REST API is served, e.g. ``http://127.0.0.1:PORT`` (the client's base_url).

        Set by :func:`~qbot.emulator.serve_emulator` and ``qbot dev``.

        Raises:
            RuntimeError: the emulator is not served.
        """
        if self._base_url is None:
            raise RuntimeError(
                "the emulator is not served: use 'async with serve_emulator(config) as emulator'"
            )
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self._base_url = url.rstrip("/")

    def learn_base_url(self, url: str) -> None:
        """Take ``url`` (where a call arrived) as :attr:`base_url` unless one was set."""
        if self._base_url is None:
            self.base_url = url

    async def start(self, *, reset: bool = False) -> None:
        """Open the store (``reset`` clears it) and register the bot and System users."""
        await self.store.open(reset=reset)
        if not self.config.lenient:
            await self.store.upsert_user(self.config.bot_email, self.config.bot_name)
            await self.store.upsert_user(self.config.system_email, "System")

    async def close(self) -> None:
        """Release held calls, finish pending deliveries, then close the session and the store."""
        self.call_log.clear_faults()
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.store.close()

    async def drain(self) -> None:
        """Wait until every background delivery (echo webhooks) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every live event; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every listener (the page's WebSockets)."""
        for listener in list(self._listeners):
            listener(event)

    # recorded calls and injected faults (for tests)

    @property
    def calls(self) -> list[Call]:
        """Every REST call received, oldest first (both API versions, downloads too)."""
        return self.call_log.calls

    def calls_to(self, endpoint: str) -> list[Call]:
        """The calls to one endpoint, by name: ``post_comment``, ``exports/ID``..."""
        return self.call_log.calls_to(endpoint)

    def posted_comments(self, room_id: int | str | None = None) -> list[dict[str, Any]]:
        """Bodies of accepted ``post_comment`` calls to ``room_id`` (``None``: any), oldest first.

        Each is the body as sent, with ``payload`` decoded from its JSON string.
        """
        return self.call_log.posted_comments(room_id)

    def posted_system_events(self, room_id: int | str | None = None) -> list[dict[str, Any]]:
        """Bodies of accepted ``post_system_event_message`` calls, oldest first."""
        return self.call_log.posted_system_events(room_id)

    def fail_next(
        self,
        endpoint: str | None = None,
        *,
        status: int,
        times: int = 1,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` calls to ``endpoint`` with ``status`` instead of serving them.

        Args:
            endpoint: a name (``post_comment``, either API version), a full path
                (``/api/v2.1/rest/post_comment``), or ``None`` for any call.
            status: the HTTP status; a 200 with ``body`` makes a malformed success.
            times: how many calls fail; later calls are served again.
            body: the answer: ``None`` is Qiscus's error JSON, a ``str`` is sent as plain text
                (Qiscus sometimes answers 200 with a text error), ``bytes`` as they are (labelled
                JSON), anything else as JSON.
            retry_after: seconds sent in a ``Retry-After`` header (a 429's or a 503's).

        Raises:
            ValueError: ``times`` is below 1.
        """
        self.call_log.fail_next(
            endpoint, status=status, times=times, body=body, retry_after=retry_after
        )

    def delay(self, endpoint: str | None = None, *, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before answering each of the next ``times`` calls to ``endpoint``.

        Raises:
            ValueError: ``seconds`` is negative or ``times`` below 1.
        """
        self.call_log.delay(endpoint, seconds=seconds, times=times)

    def hang(self, endpoint: str | None = None, *, times: int = 1) -> None:
        """Leave the next ``times`` calls to ``endpoint`` unanswered until :meth:`release`.

        The client then meets its own timeout; :meth:`close` releases every held call.

        Raises:
            ValueError: ``times`` is below 1.
        """
        self.call_log.hang(endpoint, times=times)

    def release(self) -> None:
        """Answer the calls :meth:`hang` holds now (calls held later wait for the next release)."""
        self.call_log.release()

    async def wait_for(
        self,
        condition: int | Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented test API takes a timeout
    ) -> None:
        """Wait until ``condition()`` holds, or until ``len(calls) >= condition`` for an int.

        Checked again after every call received and answered, so it never polls.

        Raises:
            TimeoutError: not within ``timeout`` seconds; the message lists the calls seen.
        """
        await self.call_log.wait_for(condition, timeout)

    # users and rooms

    async def add_user(self, email: str, username: str | None = None) -> dict[str, Any]:
        """Register a user without HTTP (a test's setup); an existing user is returned as is."""
        user = await self.store.get_user(email)
        return user or await self.store.upsert_user(email, username or email.split("@")[0])

    async def add_room(
        self,
        name: str,
        participants: list[str],
        *,
        creator: str | None = None,
        room_type: str = "group",
    ) -> dict[str, Any]:
        """Create a room without HTTP or system event (a test's setup); users are registered.

        ``creator`` defaults to the first participant.
        """
        for email in participants:
            await self.add_user(email)
        owner = creator or (participants[0] if participants else self.config.bot_email)
        await self.add_user(owner)
        return await self.store.create_room(
            name=name, room_type=room_type, creator=owner, participants=participants
        )

    async def find_user(self, email: str) -> dict[str, Any] | None:
        """The user with this email; a lenient emulator registers an unknown one first."""
        user = await self.store.get_user(email)
        if user is None and self.config.lenient:
            name = "System" if email == self.config.system_email else email.split("@")[0]
            user = await self.store.upsert_user(email, name)
        return user

    async def find_room(
        self, key: int | str, *, creator: str | None = None
    ) -> dict[str, Any] | None:
        """The room with this id (or unique id).

        A lenient emulator given ``creator`` creates an unknown numeric room with that id.
        """
        digits = isinstance(key, int) or (isinstance(key, str) and key.isdigit())
        if digits:
            room = await self.store.get_room(int(key))
        else:
            room = await self.store.get_room_by_unique_id(str(key))
        if room is None and digits and creator is not None and self.config.lenient:
            room = await self.store.create_room(
                name=f"room {key}",
                room_type="group",
                creator=creator,
                participants=[],
                room_id=int(key),
            )
            self.publish({"event": "room", "room": room})
        return room

    async def single_room(self, user_email: str) -> dict[str, Any]:
        """The one-to-one room between a user and the bot, created on first use."""
        room = await self.store.find_single_room(user_email, self.config.bot_email)
        if room is None:
            room = await self.store.create_room(
                name=f"{user_email} {self.config.bot_email}",
                room_type="single",
                creator=user_email,
                participants=[self.config.bot_email],
            )
            self.publish({"event": "room", "room": room})
        return room

    async def group_room(self, name: str, creator: str, members: list[str]) -> dict[str, Any]:
        """A new group with the creator, the bot and ``members``; posts a create_room event."""
        room = await self.store.create_room(
            name=name,
            room_type="group",
            creator=creator,
            participants=[self.config.bot_email, *members],
        )
        self.publish({"event": "room", "room": room})
        await self.system_event(
            room["id"], "create_room", creator, room_name=name, deliver_as=MOBILE
        )
        refreshed = await self.store.get_room(room["id"])
        return refreshed or room

    async def add_member(self, room_id: int, by_email: str, member_email: str) -> dict[str, Any]:
        """A user adds another to a group, as a client does: add_member is delivered."""
        await self.store.add_participants(room_id, [member_email])
        room = await self.store.get_room(room_id)
        if room is not None:
            self.publish({"event": "room", "room": room})
        return await self.system_event(
            room_id, "add_member", by_email, object_emails=[member_email], deliver_as=MOBILE
        )

    # comments

    async def user_post(
        self,
        room_id: int,
        sender_email: str,
        *,
        comment_type: str = "text",
        text: str,
        payload: Any = None,
        unique_temp_id: str | None = None,
    ) -> dict[str, Any]:
        """A user writes in a room: store it, show it, deliver ``post_comment_mobile`` and wait.

        Returns:
            The stored comment.
        """
        comment = await self.store.add_comment(
            room_id=room_id,
            email=sender_email,
            comment_type=comment_type,
            message=text,
            payload=payload,
            unique_temp_id=unique_temp_id,
        )
        self.publish({"event": "comment", "comment": comment})
        exchange_id = await self._open_exchange(room_id, comment, f"{sender_email}: {text}")
        await self._send_webhook(MOBILE, comment, exchange_id)
        return comment

    async def rest_post(self, comment: dict[str, Any]) -> None:
        """A comment came in through the REST API: show it and echo it as ``post_comment_rest``."""
        self.publish({"event": "comment", "comment": comment})
        if not self.config.echo_rest or (self.config.webhook_url is None and self._deliver is None):
            return
        exchange_id = await self.store.latest_exchange(comment["room_id"])
        if exchange_id is None:
            exchange_id = await self._open_exchange(
                comment["room_id"], comment, f"{comment['email']}: {comment['message']}"
            )
        task = asyncio.create_task(self._send_webhook(REST, comment, exchange_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def system_event(
        self,
        room_id: int,
        event_type: str,
        subject_email: str,
        *,
        object_emails: list[str] | None = None,
        room_name: str | None = None,
        payload: dict[str, Any] | None = None,
        deliver_as: str | None = None,
    ) -> dict[str, Any]:
        """Post a ``system_event`` comment from the System user.

        Args:
            room_id: the room.
            event_type: one of :data:`SYSTEM_EVENT_TYPES`.
            subject_email: who did it.
            object_emails: who it was done to (add_member, remove_member).
            room_name: the room's (new) name (create_room, change_room_name).
            payload: the payload of a ``custom`` event, stored as given.
            deliver_as: also deliver it as a webhook of this kind (a client-side action).
        """
        if self.config.lenient:
            await self.find_user(self.config.system_email)
        subject = await self.store.get_user(subject_email)
        subject_name = subject["username"] if subject else subject_email
        objects = [await self.store.get_user(e) for e in object_emails or []]
        object_names = [
            o["username"] if o else e for o, e in zip(objects, object_emails or [], strict=True)
        ]
        if event_type == "custom":
            body: dict[str, Any] = dict(payload or {})
            text = str(body.get("message") or body.get("type") or "custom event")
        else:
            body = {
                "type": event_type,
                "subject_username": subject_name,
                "subject_email": subject_email,
                "object_username": ", ".join(object_names),
                "object_email": ", ".join(object_emails or []),
                "room_name": room_name or "",
            }
            text = _SYSTEM_TEXT[event_type].format(
                subject=subject_name, objects=", ".join(object_names), room_name=room_name or ""
            )
        comment = await self.store.add_comment(
            room_id=room_id,
            email=self.config.system_email,
            comment_type="system_event",
            message=text,
            payload=body,
        )
        self.publish({"event": "comment", "comment": comment})
        if deliver_as is not None:
            exchange_id = await self._open_exchange(room_id, comment, text)
            await self._send_webhook(deliver_as, comment, exchange_id)
        return comment

    # inspector

    async def record_call(
        self, room_id: int | None, method: str, path: str, body: Any, status: int
    ) -> None:
        """Log a REST call the bot made under the newest exchange of its room."""
        if room_id is not None and not 0 <= room_id <= MAX_ID:
            room_id = None  # no room has it (a 23-digit id): filed with no room, not a 500
        exchange_id = await self.store.latest_exchange(room_id)
        if exchange_id is None:
            exchange_id = await self.store.start_exchange(room_id, None, f"{method} {path}")
        entry = await self.store.add_traffic(
            exchange_id, kind="api", method=method, path=path, body=body, status=status
        )
        self.publish({"event": "traffic", "room_id": room_id, "traffic": entry})

    async def _open_exchange(self, room_id: int, comment: dict[str, Any], title: str) -> int:
        exchange_id = await self.store.start_exchange(room_id, comment["id"], title[:120])
        self.publish(
            {
                "event": "exchange",
                "exchange": {
                    "id": exchange_id,
                    "room_id": room_id,
                    "comment_id": comment["id"],
                    "title": title[:120],
                    "traffic": [],
                },
            }
        )
        return exchange_id

    async def _send_webhook(self, kind: str, comment: dict[str, Any], exchange_id: int) -> None:
        room = await self.store.get_room(comment["room_id"])
        sender = await self.store.get_user(comment["email"])
        if room is None or sender is None:
            log.warning("emulator.webhook.skipped", comment_id=comment["id"])
            return
        body = webhook_body(kind, comment, room, sender)
        if self.reshape is not None:
            reshaped = self.reshape(body, room)
            if reshaped is None:
                return
            body = reshaped
        raw = dumps(body)
        headers = {"Content-Type": "application/json"}
        if self.config.signature_token:
            headers[SIGNATURE_HEADER] = sign(raw, self.config.signature_token)
        # Recorded before sending so the inspector lists it ahead of the calls it causes.
        entry = await self.store.add_traffic(
            exchange_id,
            kind="webhook",
            method="POST",
            path=self.config.webhook_url or "(in process)",
            body=body,
            status=None,
            detail="sending",
        )
        self.publish({"event": "traffic", "room_id": comment["room_id"], "traffic": dict(entry)})
        if self._deliver is not None:
            status, detail = await self._deliver(raw, headers)
        elif self.config.webhook_url is None:
            status, detail = None, "no webhook URL configured: not delivered"
        else:
            status, detail = await self._post(self.config.webhook_url, raw, headers)
        await self.store.finish_traffic(entry["id"], status, detail)
        entry.update(status=status, detail=detail)
        self.publish({"event": "traffic", "room_id": comment["room_id"], "traffic": entry})

    async def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout)
            )
        try:
            async with self._session.post(url, data=raw, headers=headers) as resp:
                text = await resp.text()
                return resp.status, text[:2000]
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("emulator.webhook.failed", url=url, error=str(e))
            return None, f"delivery to {url} failed: {e.__class__.__name__}: {e}"
