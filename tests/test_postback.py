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
    reordered = {"s": packed["s"], "d": {"a": 2, "b": 1}, "a": "go", "qbot": 1}
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
        ({"qbot": 2, "a": "go"}, r"format version 2 is not understood"),
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
    packed = pack_postback("confirm", {"n": 7}, PostbackSigner("k"))
    assert set(packed) == {"qbot", "a", "d", "s"}
    assert len(json.dumps(packed, separators=(",", ":"))) < 100
