"""Postback data: packed into a button, optionally signed, unpacked when the tap comes back.

A tapped ``postback`` button makes the client post a ``button_postback_response`` comment whose
``payload`` is the button's own ``payload`` object, echoed verbatim. qbot puts its data in the
inner ``payload.payload`` as a small versioned object::

    {"qbot": 2, "a": "confirm", "d": {"n": 7}, "r": "123", "u": "ani@x.id", "t": 1767225600,
     "s": "<base64url HMAC-SHA256>"}

``qbot`` marks the object as ours (and its format version), ``a`` is the action, ``d`` the data.
With a postback secret the button is also bound to its conversation: ``r`` is the room it was
sent to, ``u`` the user it was meant for (in a one-to-one room), ``t`` when it was signed, and
``s`` the signature of all of them (a button packed outside a conversation, by an unbound
signer, has no ``r``/``u`` and works in any room until it expires). Anyone who can post in a
room can post such a comment, so a bot that acts on postback data should configure a secret:
then an unsigned or altered postback, a tap from another room or user, or one older than
``postback.max_age`` raises :class:`~qbot.errors.PostbackError`.

Buttons signed by qbot before binding (format 1: a signature of action and data only) keep
working during a transition window, until ``postback.legacy_until`` (default
:data:`LEGACY_UNTIL`); after it they are refused like forged ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qbot._json import dumps, loads
from qbot.errors import ConfigError, PostbackError
from qbot.log import redact

FORMAT_VERSION = 2
"""Buttons bound to their conversation (room, user, issue time)."""
LEGACY_VERSION = 1
"""Buttons signed over action and data only: accepted until ``legacy_until``."""
DEFAULT_MAX_AGE = 30 * 24 * 3600.0
"""Seconds a signed button stays valid (``postback.max_age``)."""
LEGACY_UNTIL = datetime(2027, 1, 1, tzinfo=UTC)
"""Until when format-1 buttons (signed before binding existed) are accepted: one default
``max_age`` after the format changed, so no button already in a conversation breaks."""
_CLOCK_SKEW = 300.0
"""Seconds a button's issue time may lie in the future (replicas' clocks differ a little)."""
_MARKER = "qbot"


@dataclass(frozen=True, slots=True)
class Postback:
    """What a handler sees of a tapped postback button.

    Attributes:
        action: the ``action`` given to ``.postback(label, action=...)``.
        data: the ``data`` given alongside it, as it looks after a JSON round trip.
    """

    action: str
    data: Any = None


def _canonical(*fields: Any) -> bytes:
    # One byte string per tuple, however the dicts were ordered when they came back.
    return dumps(list(fields), strict=True, sort_keys=True)


class PostbackSigner:
    """Signs postback data with HMAC-SHA256 so forged taps can be rejected.

    Args:
        secret: the bot's postback secret; keep it out of source control.
        max_age: seconds a signed button stays valid (``postback.max_age``).
        legacy_until: until when format-1 buttons (not bound to a conversation) are accepted.
        clock: the current UNIX time (tests pass their own).

    Raises:
        ConfigError: the secret is empty, or ``max_age`` is not a positive number.

    ``signer.bind(room_id, user)`` gives the signer that :func:`pack_postback` uses for a reply
    in that room: its buttons carry the room, the user and the issue time.
    """

    __slots__ = ("_clock", "_key", "legacy_until", "max_age", "room_id", "user")

    def __init__(
        self,
        secret: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        legacy_until: datetime | None = LEGACY_UNTIL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(secret, str) or not secret:
            raise ConfigError("postback secret must be a non-empty string; set bot.postback_secret")
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
            raise ConfigError(
                f"postback max_age must be a positive number of seconds, got {max_age!r}"
            )
        redact([secret])
        self._key = secret.encode("utf-8")
        self.max_age = float(max_age)
        self.legacy_until = legacy_until
        self._clock = clock
        self.room_id: str | None = None
        self.user: str | None = None

    def __repr__(self) -> str:
        bound = f", room_id={self.room_id!r}" if self.room_id is not None else ""
        return f"PostbackSigner(secret='***'{bound})"

    def bind(self, room_id: int | str, user: str | None = None) -> PostbackSigner:
        """This signer for buttons sent to ``room_id`` (and meant for ``user``, when given)."""
        bound = PostbackSigner.__new__(PostbackSigner)
        bound._key, bound.max_age, bound.legacy_until = self._key, self.max_age, self.legacy_until
        bound._clock = self._clock
        bound.room_id = str(room_id)
        bound.user = _user_key(user) if user else None
        return bound

    def now(self) -> int:
        """The issue time stamped on a button: whole seconds of the signer's clock."""
        return int(self._clock())

    def sign(self, action: str, data: Any, *bound: Any) -> str:
        """The signature of ``(action, data)`` (format 1), or of ``(action, data, room, user,
        issued)`` (format 2, when ``bound`` is given): unpadded base64url of an HMAC-SHA256."""
        version = FORMAT_VERSION if bound else LEGACY_VERSION
        message = _canonical(version, action, data, *bound)
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, action: str, data: Any, signature: str, *bound: Any) -> bool:
        """Whether ``signature`` is this secret's signature of ``(action, data, *bound)``."""
        try:
            expected = self.sign(action, data, *bound)
        except (TypeError, ValueError):
            # Data that cannot be canonicalised was never signed by us.
            return False
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))

    def check(
        self, packed: dict[str, Any], action: str, data: Any, room_id: str | None, user: str | None
    ) -> None:
        """Raise :class:`PostbackError` unless ``packed`` is this secret's, for this
        conversation, and recent enough."""
        signature = packed.get("s")
        if signature is None:
            raise PostbackError(
                f"unsigned postback {action!r} rejected: a postback secret is configured, so "
                "only buttons this bot signed are accepted"
            )
        if packed[_MARKER] == LEGACY_VERSION:
            self._check_legacy(action, data, signature)
            return
        room, meant_for, issued = packed.get("r"), packed.get("u"), packed.get("t")
        if (
            not isinstance(signature, str)
            or not isinstance(issued, int)
            or isinstance(issued, bool)
            or not self.verify(action, data, signature, room, meant_for, issued)
        ):
            raise PostbackError(
                f"postback {action!r} has a bad signature: its data was altered or it was "
                "signed with a different secret"
            )
        # A button packed by an unbound signer (a script, not a reply) has no room to check.
        if room is not None and room_id is not None and room != room_id:
            raise PostbackError(
                f"postback {action!r} was sent to room {room!r}, tapped in room {room_id!r}: "
                "a button only works in its own conversation"
            )
        if meant_for is not None and meant_for != (_user_key(user) if user else None):
            raise PostbackError(
                f"postback {action!r} was meant for another user, tapped by {user!r}"
            )
        age = self._clock() - issued
        if age > self.max_age:
            raise PostbackError(
                f"postback {action!r} expired: signed {age / 86400:.1f} days ago, "
                f"postback.max_age is {self.max_age / 86400:g} days"
            )
        if age < -_CLOCK_SKEW:
            raise PostbackError(f"postback {action!r} claims to be signed in the future")

    def _check_legacy(self, action: str, data: Any, signature: Any) -> None:
        if not isinstance(signature, str) or not self.verify(action, data, signature):
            raise PostbackError(
                f"postback {action!r} has a bad signature: its data was altered or it was "
                "signed with a different secret"
            )
        if self.legacy_until is None or self._clock() >= self.legacy_until.timestamp():
            raise PostbackError(
                f"postback {action!r} is in the format before conversation binding, accepted "
                f"until {self.legacy_until.isoformat() if self.legacy_until else 'never'} "
                "(postback.legacy_until): the button is too old"
            )


def _user_key(user: str) -> str:
    return user.casefold()


def pack_postback(action: str, data: Any, signer: PostbackSigner | None = None) -> dict[str, Any]:
    """The inner ``payload.payload`` object of a postback button.

    Args:
        action: the postback action; routed on with ``@bot.postback(action=...)``.
        data: JSON-serialisable data handed back to the handler.
        signer: adds the issue time and a signature when given; a bound signer
            (:meth:`PostbackSigner.bind`) also binds the button to its room and user.
    """
    # Unsigned, there is nothing to bind: the format-1 shape, which every qbot reads.
    packed: dict[str, Any] = {_MARKER: LEGACY_VERSION if signer is None else FORMAT_VERSION}
    packed["a"] = action
    if data is not None:
        packed["d"] = data
    if signer is None:
        return packed
    issued = signer.now()
    if signer.room_id is not None:
        packed["r"] = signer.room_id
    if signer.user is not None:
        packed["u"] = signer.user
    packed["t"] = issued
    packed["s"] = signer.sign(action, data, signer.room_id, signer.user, issued)
    return packed


def _decode(value: Any) -> Any:
    # Some clients and relays stringify nested JSON; anything that is not JSON is not ours.
    if isinstance(value, str):
        try:
            return loads(value)
        except ValueError:
            return None
    return value


def unpack_postback(
    button_payload: Any,
    signer: PostbackSigner | None,
    *,
    room_id: int | str | None = None,
    user: str | None = None,
) -> Postback | None:
    """Read qbot's postback out of a ``button_postback_response`` comment's ``payload``.

    Args:
        button_payload: the comment's ``payload``: the echoed ``{url, method, payload}`` object,
            or that object (or its inner ``payload``) encoded as a JSON string.
        signer: when given, the postback must carry a valid signature.
        room_id: the room the tap came from; a bound button must have been sent there.
        user: who tapped (their email); a button meant for a user must be tapped by them.

    Returns:
        The postback, or ``None`` when the payload is not a qbot postback (for example a button
        posted by another system).

    Raises:
        PostbackError: a qbot postback that is unreadable, of an unknown format version, unsigned
            while a signer is given, whose signature does not match, tapped in another room or
            by another user, or expired (see the module docstring).
    """
    outer = _decode(button_payload)
    if not isinstance(outer, dict):
        return None
    packed = outer if _MARKER in outer else _decode(outer.get("payload"))
    if not isinstance(packed, dict) or _MARKER not in packed:
        return None
    version = packed[_MARKER]
    if isinstance(version, bool) or version not in (LEGACY_VERSION, FORMAT_VERSION):
        raise PostbackError(
            f"postback format version {version!r} is not understood (this qbot reads "
            f"{LEGACY_VERSION} and {FORMAT_VERSION}); the button was sent by a different qbot "
            "version"
        )
    action = packed.get("a")
    if not isinstance(action, str) or not action:
        raise PostbackError(f"postback has no readable action: {packed!r}")
    data = packed.get("d")
    if signer is not None:
        signer.check(packed, action, data, None if room_id is None else str(room_id), user)
    return Postback(action=action, data=data)
