"""Postback packing, signing and unpacking, as a tap travels through a Qiscus client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qbot.errors import ConfigError, PostbackError
from qbot.messages import (
    Buttons,
    OutgoingComment,
    Postback,
    PostbackSigner,
    pack_postback,
    unpack_postback,
)


def _tap(message: Buttons, index: int = 0, signer: PostbackSigner | None = None) -> Any:
    """What a client posts back: the tapped button's payload, after a JSON round trip."""
    [comment] = message.to_outgoing(signer=signer)
    assert isinstance(comment, OutgoingComment)
    assert comment.payload is not None
    wire = json.loads(json.dumps(comment.payload))
    return wire["buttons"][index]["payload"]


@pytest.mark.parametrize(
    "data",
    [None, 0, "text", [1, "two", None], {"order": {"id": 42, "items": ["a", "b"]}}, "ü ✓ 中"],
)
def test_round_trip_without_signer(data: Any) -> None:
    echoed = _tap(Buttons("t").postback("Go", action="go", data=data))
    assert unpack_postback(echoed, None) == Postback(action="go", data=data)


def test_round_trip_signed_picks_the_tapped_button() -> None:
    signer = PostbackSigner("s3cret")
    message = (
        Buttons("t")
        .postback("Yes", action="confirm", data={"n": 7})
        .postback("No", action="cancel", data={"n": 7})
    )
    assert unpack_postback(_tap(message, 1, signer), signer) == Postback("cancel", {"n": 7})


def test_signature_survives_reordered_keys() -> None:
    signer = PostbackSigner("k")
    packed = pack_postback("go", {"b": 1, "a": 2}, signer)
    reordered = {"s": packed["s"], "t": packed["t"], "d": {"a": 2, "b": 1}, "a": "go", "qbot": 2}
    assert unpack_postback({"url": "", "method": "post", "payload": reordered}, signer) == Postback(
        "go", {"a": 2, "b": 1}
    )


def test_inner_payload_as_json_string_is_accepted() -> None:
    signer = PostbackSigner("k")
    echoed = {"url": "", "method": "post", "payload": json.dumps(pack_postback("go", 1, signer))}
    assert unpack_postback(echoed, signer) == Postback("go", 1)


def test_whole_payload_as_json_string_is_accepted() -> None:
    signer = PostbackSigner("k")
    echoed = json.dumps({"url": "", "method": "post", "payload": pack_postback("go", 1, signer)})
    assert unpack_postback(echoed, signer) == Postback("go", 1)


def test_packed_object_without_envelope_is_accepted() -> None:
    assert unpack_postback(pack_postback("go", [1]), None) == Postback("go", [1])


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        "not json",
        '"a string"',
        42,
        {"url": "http://somewhere.com/button1", "method": "get", "payload": None},
        {"url": "", "method": "post", "payload": {"action": "theirs"}},
        {"url": "", "method": "post", "payload": "plain text"},
    ],
)
def test_foreign_payloads_are_not_qbot_postbacks(payload: Any) -> None:
    assert unpack_postback(payload, PostbackSigner("k")) is None
    assert unpack_postback(payload, None) is None


def test_unsigned_postback_is_rejected_when_a_secret_is_configured() -> None:
    echoed = _tap(Buttons("t").postback("Go", action="refund", data={"amount": 10}))
    with pytest.raises(PostbackError, match=r"unsigned postback 'refund' rejected"):
        unpack_postback(echoed, PostbackSigner("k"))


def test_forged_data_is_rejected() -> None:
    signer = PostbackSigner("k")
    echoed = _tap(Buttons("t").postback("Go", action="refund", data={"amount": 10}), 0, signer)
    echoed["payload"]["d"]["amount"] = 10_000
    with pytest.raises(PostbackError, match=r"postback 'refund' has a bad signature"):
        unpack_postback(echoed, signer)


def test_forged_action_is_rejected() -> None:
    signer = PostbackSigner("k")
    echoed = _tap(Buttons("t").postback("Go", action="view", data=1), 0, signer)
    echoed["payload"]["a"] = "delete"
    with pytest.raises(PostbackError, match=r"'delete' has a bad signature"):
        unpack_postback(echoed, signer)


def test_other_secret_is_rejected() -> None:
    echoed = _tap(Buttons("t").postback("Go", action="go"), 0, PostbackSigner("old"))
    with pytest.raises(PostbackError, match=r"bad signature"):
        unpack_postback(echoed, PostbackSigner("new"))


def test_non_string_signature_is_rejected() -> None:
    packed = {"qbot": 1, "a": "go", "s": 12345}
    with pytest.raises(PostbackError, match=r"bad signature"):
        unpack_postback({"payload": packed}, PostbackSigner("k"))


def test_signed_postback_is_accepted_without_a_signer() -> None:
    echoed = _tap(Buttons("t").postback("Go", action="go", data=3), 0, PostbackSigner("k"))
    assert unpack_postback(echoed, None) == Postback("go", 3)


@pytest.mark.parametrize(
    ("packed", "pattern"),
    [
        ({"qbot": 3, "a": "go"}, r"format version 3 is not understood"),
        ({"qbot": True, "a": "go"}, r"format version True"),
        ({"qbot": 1}, r"no readable action"),
        ({"qbot": 1, "a": ""}, r"no readable action"),
        ({"qbot": 1, "a": ["go"]}, r"no readable action"),
    ],
)
def test_unreadable_qbot_postbacks_raise(packed: dict[str, Any], pattern: str) -> None:
    with pytest.raises(PostbackError, match=pattern):
        unpack_postback({"url": "", "method": "post", "payload": packed}, None)


def test_signer_sign_and_verify() -> None:
    signer = PostbackSigner("k")
    signature = signer.sign("go", {"x": [1, 2]})
    assert signer.verify("go", {"x": [1, 2]}, signature)
    assert not signer.verify("go", {"x": [1, 3]}, signature)
    assert not signer.verify("stop", {"x": [1, 2]}, signature)
    assert not signer.verify("go", {"x": [1, 2]}, signature[:-1])
    assert PostbackSigner("k").sign("go", {"x": [1, 2]}) == signature
    assert PostbackSigner("other").sign("go", None) != signer.sign("go", None)


def test_signer_hides_its_secret_and_rejects_empty() -> None:
    assert "k3y" not in repr(PostbackSigner("k3y"))
    with pytest.raises(ConfigError, match=r"postback secret must be a non-empty string"):
        PostbackSigner("")


def test_packed_form_is_compact() -> None:
    packed = pack_postback("confirm", {"n": 7}, PostbackSigner("k").bind(123, "ani@x.id"))
    assert set(packed) == {"qbot", "a", "d", "r", "u", "t", "s"}
    assert len(json.dumps(packed, separators=(",", ":"))) < 140


# --- buttons bound to their conversation ---------------------------------------------------------

DAY = 24 * 3600.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _bound_tap(signer: PostbackSigner, room: int | str = 7, user: str | None = None) -> Any:
    message = Buttons("t").postback("Refund", action="refund", data={"amount": 5})
    return _tap(message, 0, signer.bind(room, user))


def test_bound_button_works_in_its_room_for_its_user() -> None:
    signer = PostbackSigner("k", clock=Clock())
    tap = _bound_tap(signer, 7, "Ani@X.id")
    assert unpack_postback(tap, signer, room_id=7, user="ani@x.id") == Postback(
        "refund", {"amount": 5}
    )
    assert unpack_postback(tap, signer, room_id="7", user="ANI@x.id") is not None


def test_bound_button_tapped_in_another_room_is_refused() -> None:
    signer = PostbackSigner("k", clock=Clock())
    tap = _bound_tap(signer, 7)
    with pytest.raises(PostbackError, match=r"sent to room '7', tapped in room '8'"):
        unpack_postback(tap, signer, room_id=8, user="ani@x.id")


def test_bound_button_tapped_by_another_user_is_refused() -> None:
    signer = PostbackSigner("k", clock=Clock())
    tap = _bound_tap(signer, 7, "ani@x.id")
    with pytest.raises(PostbackError, match=r"meant for another user, tapped by 'eve@x.id'"):
        unpack_postback(tap, signer, room_id=7, user="eve@x.id")


@pytest.mark.parametrize(("field", "value"), [("r", "8"), ("u", "eve@x.id"), ("t", 1)])
def test_rewriting_the_binding_breaks_the_signature(field: str, value: Any) -> None:
    signer = PostbackSigner("k", clock=Clock())
    tap = _bound_tap(signer, 7, "ani@x.id")
    tap["payload"][field] = value
    with pytest.raises(PostbackError, match=r"bad signature"):
        unpack_postback(tap, signer, room_id=value if field == "r" else 7, user="eve@x.id")


def test_button_older_than_max_age_is_refused() -> None:
    clock = Clock()
    signer = PostbackSigner("k", max_age=30 * DAY, clock=clock)
    tap = _bound_tap(signer)
    clock.now += 29 * DAY
    assert unpack_postback(tap, signer, room_id=7) is not None
    clock.now += 2 * DAY
    with pytest.raises(PostbackError, match=r"expired: signed 31.0 days ago"):
        unpack_postback(tap, signer, room_id=7)


def test_button_signed_in_the_future_is_refused() -> None:
    clock = Clock()
    tap = _bound_tap(PostbackSigner("k", clock=Clock(clock.now + DAY)))
    with pytest.raises(PostbackError, match=r"in the future"):
        unpack_postback(tap, PostbackSigner("k", clock=clock), room_id=7)


def _legacy_button(signer: PostbackSigner) -> dict[str, Any]:
    """A button as qbot signed it before binding: format 1, action and data only."""
    packed = {"qbot": 1, "a": "refund", "d": {"amount": 5}}
    packed["s"] = signer.sign("refund", {"amount": 5})
    return {"url": "", "method": "post", "payload": packed}


def test_legacy_button_works_until_legacy_until_then_is_refused() -> None:
    from datetime import UTC, datetime

    until = datetime(2027, 1, 1, tzinfo=UTC)
    clock = Clock(until.timestamp() - DAY)
    signer = PostbackSigner("k", legacy_until=until, clock=clock)
    assert unpack_postback(_legacy_button(signer), signer, room_id=9) == Postback(
        "refund", {"amount": 5}
    )
    clock.now = until.timestamp()
    with pytest.raises(PostbackError, match=r"before conversation binding, accepted until 2027"):
        unpack_postback(_legacy_button(signer), signer, room_id=9)
    never = PostbackSigner("k", legacy_until=None, clock=Clock(0))
    with pytest.raises(PostbackError, match=r"accepted until never"):
        unpack_postback(_legacy_button(never), never, room_id=9)


def test_legacy_button_still_needs_a_good_signature() -> None:
    signer = PostbackSigner("k", clock=Clock(0))
    forged = _legacy_button(PostbackSigner("other"))
    with pytest.raises(PostbackError, match=r"bad signature"):
        unpack_postback(forged, signer, room_id=9)


def test_signer_refuses_a_bad_max_age() -> None:
    with pytest.raises(ConfigError, match=r"max_age must be a positive number"):
        PostbackSigner("k", max_age=0)
