"""Postback data: packed into a button, optionally signed, unpacked when the tap comes back.

A tapped ``postback`` button makes the client post a ``button_postback_response`` comment whose
``payload`` is the button's own ``payload`` object, echoed verbatim. qbot puts its data in the
inner ``payload.payload`` as a small versioned object::

    {"qbot": 1, "a": "confirm", "d": {"n": 7}, "s": "<base64url HMAC-SHA256>"}

``qbot`` marks the object as ours (and its format version), ``a`` is the action, ``d`` the data
and ``s`` the signature, present only when the bot has a postback secret. Anyone who can post in
a room can post such a comment, so a bot that acts on postback data should configure a secret:
then an unsigned or altered postback raises :class:`~qbot.errors.PostbackError`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from qbot._json import dumps, loads
from qbot.errors import ConfigError, PostbackError

FORMAT_VERSION = 1
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


def _canonical(action: str, data: Any) -> bytes:
    # One byte string per (action, data), however the dicts were ordered when they came back.
    return dumps([FORMAT_VERSION, action, data], strict=True, sort_keys=True)


class PostbackSigner:
    """Signs postback data with HMAC-SHA256 so forged taps can be rejected.

    Args:
        secret: the bot's postback secret; keep it out of source control.

    Raises:
        ConfigError: the secret is empty.
    """

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not isinstance(secret, str) or not secret:
            raise ConfigError("postback secret must be a non-empty string; set bot.postback_secret")
        self._key = secret.encode("utf-8")

    def __repr__(self) -> str:
        return "PostbackSigner(secret='***')"

    def sign(self, action: str, data: Any) -> str:
        """The signature of ``(action, data)``: unpadded base64url of an HMAC-SHA256."""
        digest = hmac.new(self._key, _canonical(action, data), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, action: str, data: Any, signature: str) -> bool:
        """Whether ``signature`` is this secret's signature of ``(action, data)``."""
        try:
            expected = self.sign(action, data)
        except (TypeError, ValueError):
            # Data that cannot be canonicalised was never signed by us.
            return False
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))


def pack_postback(action: str, data: Any, signer: PostbackSigner | None = None) -> dict[str, Any]:
    """The inner ``payload.payload`` object of a postback button.

    Args:
        action: the postback action; routed on with ``@bot.postback(action=...)``.
        data: JSON-serialisable data handed back to the handler.
        signer: adds a signature when given.
    """
    packed: dict[str, Any] = {_MARKER: FORMAT_VERSION, "a": action}
    if data is not None:
        packed["d"] = data
    if signer is not None:
        packed["s"] = signer.sign(action, data)
    return packed


def _decode(value: Any) -> Any:
    # Some clients and relays stringify nested JSON; anything that is not JSON is not ours.
    if isinstance(value, str):
        try:
            return loads(value)
        except ValueError:
            return None
    return value


def unpack_postback(button_payload: Any, signer: PostbackSigner | None) -> Postback | None:
    """Read qbot's postback out of a ``button_postback_response`` comment's ``payload``.

    Args:
        button_payload: the comment's ``payload``: the echoed ``{url, method, payload}`` object,
            or that object (or its inner ``payload``) encoded as a JSON string.
        signer: when given, the postback must carry a valid signature.

    Returns:
        The postback, or ``None`` when the payload is not a qbot postback (for example a button
        posted by another system).

    Raises:
        PostbackError: a qbot postback that is unreadable, of an unknown format version, unsigned
            while a signer is given, or whose signature does not match.
    """
    outer = _decode(button_payload)
    if not isinstance(outer, dict):
        return None
    packed = outer if _MARKER in outer else _decode(outer.get("payload"))
    if not isinstance(packed, dict) or _MARKER not in packed:
        return None
    version = packed[_MARKER]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise PostbackError(
            f"postback format version {version!r} is not understood (this qbot reads "
            f"{FORMAT_VERSION}); the button was sent by a different qbot version"
        )
    action = packed.get("a")
    if not isinstance(action, str) or not action:
        raise PostbackError(f"postback has no readable action: {packed!r}")
    data = packed.get("d")
    if signer is not None:
        signature = packed.get("s")
        if signature is None:
            raise PostbackError(
                f"unsigned postback {action!r} rejected: a postback secret is configured, so "
                "only buttons this bot signed are accepted"
            )
        if not isinstance(signature, str) or not signer.verify(action, data, signature):
            raise PostbackError(
                f"postback {action!r} has a bad signature: its data was altered or it was "
                "signed with a different secret"
            )
    return Postback(action=action, data=data)
