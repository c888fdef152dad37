"""The import validator: one test per rule of the reference, and chunking of big files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qbot.errors import ImportFileError
from qbot.imports import Problem, read_import_file, split_rows, validate_rows


def user(email: str = "a@x.com", **kw: Any) -> dict[str, Any]:
    return {"Email": email, "Name": "A", "AuthenticationToken": f"t-{email}", **kw}


def room(uid: str = "r1", **kw: Any) -> dict[str, Any]:
    base = {
        "Name": "Team",
        "Type": "group",
        "CreatorEmail": "a@x.com",
        "UniqueId": uid,
        "ParticipantEmails": ["a@x.com", "b@x.com", "c@x.com"],
    }
    return {**base, **kw}


def comment(uid: str, **kw: Any) -> dict[str, Any]:
    base = {
        "Message": "hi",
        "Type": "text",
        "UniqueId": uid,
        "CreatorEmail": "a@x.com",
        "RoomUniqueId": "r1",
        "CreatedAt": "2017-05-11T19:14:24Z",
        "Payload": None,
        "ParentCommentUniqueId": "",
    }
    return {**base, **kw}


def reply(uid: str, parent: str, **kw: Any) -> dict[str, Any]:
    payload = {"text": "re", "replied_comment_id": 1}
    return comment(uid, Type="reply", Payload=payload, ParentCommentUniqueId=parent, **kw)


def errors(problems: list[Problem]) -> list[tuple[int | None, str]]:
    return [(p.row, p.message) for p in problems if p.severity == "error"]


def of(problems: list[Problem], severity: str) -> list[Problem]:
    return [p for p in problems if p.severity == severity]


# -- users ---------------------------------------------------------------------------------------
def test_valid_users_have_no_problems() -> None:
    rows = [user("a@x.com", CreateAt="2017-05-10T11:46:30Z"), user("b@x.com")]
    assert validate_rows("users", rows) == []


def test_users_require_email_and_name() -> None:
    problems = validate_rows("users", [{"Email": "a@x.com"}, {"Name": "B"}])
    assert errors(problems) == [(1, "Name is required"), (2, "Email is required")]


def test_users_key_types_are_checked() -> None:
    problems = validate_rows("users", [user(Name=5)])
    assert errors(problems) == [(1, "Name must be a string, got 5")]


def test_user_email_must_look_like_an_email() -> None:
    assert errors(validate_rows("users", [user("nobody")])) == [
        (1, "Email 'nobody' is not an email address")
    ]


def test_user_emails_are_unique_ignoring_case() -> None:
    problems = validate_rows("users", [user("a@x.com"), user("A@x.com", AuthenticationToken="z")])
    assert errors(problems) == [(2, "Email 'A@x.com' duplicates row 1")]


def test_authentication_tokens_are_unique() -> None:
    rows = [user("a@x.com", AuthenticationToken="t"), user("b@x.com", AuthenticationToken="t")]
    assert errors(validate_rows("users", rows)) == [(2, "AuthenticationToken 't' duplicates row 1")]


def test_timestamps_must_be_rfc3339() -> None:
    problems = validate_rows("users", [user(CreateAt="yesterday")])
    assert errors(problems) == [
        (1, "CreateAt 'yesterday' is not a timestamp like 2017-05-10T11:46:30Z")
    ]


def test_http_avatar_and_unknown_keys_are_warnings_only() -> None:
    problems = validate_rows("users", [user(AvatarUrl="http://a/b.png", Age=3)])
    assert errors(problems) == []
    assert [p.message for p in of(problems, "warning")] == [
        "AvatarUrl 'http://a/b.png' should use https",
        "unknown key(s) Age will be discarded by Qiscus",
    ]


# -- rooms ---------------------------------------------------------------------------------------
def test_room_unique_ids_are_unique() -> None:
    assert errors(validate_rows("rooms", [room("r1"), room("r1")])) == [
        (2, "UniqueId 'r1' duplicates row 1")
    ]


def test_room_type_is_single_or_group() -> None:
    assert errors(validate_rows("rooms", [room(Type="channel")])) == [
        (1, "Type 'channel' must be 'single' or 'group'")
    ]


def test_single_room_has_exactly_two_participants() -> None:
    rows = [room(Type="single")]
    assert errors(validate_rows("rooms", rows)) == [
        (1, "a single room needs exactly 2 participants, got 3")
    ]


def test_single_room_creator_is_a_participant() -> None:
    rows = [room(Type="single", CreatorEmail="z@x.com", ParticipantEmails=["a@x.com", "b@x.com"])]
    assert errors(validate_rows("rooms", rows)) == [
        (1, "CreatorEmail 'z@x.com' must be one of the single room's participants")
    ]


def test_participants_must_be_an_array_of_emails() -> None:
    problems = validate_rows("rooms", [room(ParticipantEmails="a@x.com"), room("r2")])
    assert errors(problems) == [(1, 'ParticipantEmails must be an array, got "a@x.com"')]
    bad = validate_rows("rooms", [room(ParticipantEmails=["a@x.com", 7])])
    assert errors(bad) == [(1, "ParticipantEmails holds non-email value(s) [7]")]


def test_creators_and_participants_are_checked_against_a_users_file() -> None:
    problems = validate_rows("rooms", [room()], known_emails={"a@x.com", "b@x.com"})
    assert errors(problems) == [(1, "user 'c@x.com' is not in the users file")]


def test_without_users_file_people_are_noted_as_needing_to_exist() -> None:
    notes = of(validate_rows("rooms", [room()]), "note")
    assert len(notes) == 1
    assert notes[0].row is None
    assert notes[0].message.startswith("3 user(s) ('a@x.com', 'b@x.com', 'c@x.com') must already")


# -- comments ------------------------------------------------------------------------------------
def test_valid_comments_with_reply_after_parent() -> None:
    rows = [comment("c1"), reply("c2", parent="c1")]
    problems = validate_rows("comments", rows, known_emails={"a@x.com"}, known_rooms={"r1"})
    assert problems == []


def test_comment_unique_ids_are_unique() -> None:
    assert errors(validate_rows("comments", [comment("c1"), comment("c1")])) == [
        (2, "UniqueId 'c1' duplicates row 1")
    ]


def test_comment_required_keys() -> None:
    row = comment("c1")
    del row["RoomUniqueId"]
    assert errors(validate_rows("comments", [row])) == [(1, "RoomUniqueId is required")]


def test_disable_link_preview_must_be_a_boolean() -> None:
    assert errors(validate_rows("comments", [comment("c1", DisableLinkPreview="no")])) == [
        (1, 'DisableLinkPreview must be true or false, got "no"')
    ]


def test_reply_parent_defined_later_is_an_error() -> None:
    rows = [reply("c2", parent="c1"), comment("c1")]
    assert errors(validate_rows("comments", rows)) == [
        (
            1,
            "ParentCommentUniqueId 'c1' is defined later, at row 2: move the parent before its "
            "reply",
        )
    ]


def test_reply_parent_missing_from_file_must_exist_on_server() -> None:
    problems = validate_rows("comments", [reply("c2", parent="old-1")])
    assert errors(problems) == []
    assert [(p.row, p.message) for p in of(problems, "note") if "parent" in p.message] == [
        (
            1,
            "parent comment 'old-1' (replied to by row(s) 1) is not in this file and must "
            "already exist on the server",
        )
    ]


def test_reply_needs_a_parent() -> None:
    row = reply("c2", parent="")
    assert errors(validate_rows("comments", [row])) == [(1, "a reply needs ParentCommentUniqueId")]


def test_reply_payload_needs_replied_comment_id_literally_1() -> None:
    row = reply("c2", parent="c1")
    row["Payload"] = {"text": "re", "replied_comment_id": 16227}
    problems = validate_rows("comments", [comment("c1"), row])
    assert errors(problems) == [
        (2, "Payload.replied_comment_id must be the integer 1 for imports, got 16227")
    ]


def test_buttons_payload_is_validated() -> None:
    payload = {"text": "pick", "buttons": [{"label": "A", "type": "call", "payload": {}}]}
    problems = validate_rows("comments", [comment("c1", Type="buttons", Payload=payload)])
    assert errors(problems) == [
        (
            1,
            "Payload.button 1 needs a string label, type 'postback' or 'link', and an object "
            "payload",
        )
    ]


def test_card_payload_needs_text_and_title() -> None:
    problems = validate_rows("comments", [comment("c1", Type="card", Payload={"text": "t"})])
    assert errors(problems) == [(1, "Payload.title must be a string")]


def test_types_other_than_text_and_reply_are_warned_about() -> None:
    problems = validate_rows("comments", [comment("c1", Type="custom", Payload={"foo": "bar"})])
    assert errors(problems) == []
    assert [p.message for p in of(problems, "warning")] == [
        "type 'custom': Qiscus advises importing only text and reply"
    ]


def test_comment_rooms_are_checked_against_a_rooms_file() -> None:
    problems = validate_rows("comments", [comment("c1", RoomUniqueId="gone")], known_rooms={"r1"})
    assert errors(problems) == [(1, "RoomUniqueId 'gone' is not a known room")]


# -- files and chunks ----------------------------------------------------------------------------
def test_rows_must_be_objects_and_files_not_empty() -> None:
    assert errors(validate_rows("users", [])) == [(None, "the file holds no rows")]
    assert errors(validate_rows("users", ["a@x.com"])) == [
        (1, "a row must be an object, got 'a@x.com'")
    ]


def test_read_import_file_rejects_non_json_and_non_arrays(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"Email": "a@x.com"}')

    with pytest.raises(ImportFileError, match=r"broken\.json' is not valid JSON"):
        read_import_file(broken)
    with pytest.raises(ImportFileError, match="must hold a JSON array of rows, not dict"):
        read_import_file(mapping)
    with pytest.raises(ImportFileError, match="does not exist"):
        read_import_file(tmp_path / "missing.json")


def test_unknown_import_type_is_rejected() -> None:
    with pytest.raises(ImportFileError, match="'messages' must be one of users, rooms, comments"):
        validate_rows("messages", [])  # type: ignore[arg-type]


def test_split_rows_keeps_order_and_size_limit() -> None:
    rows = [comment(f"c{n}", Message="x" * 100) for n in range(50)]
    rows.append(reply("c50", parent="c0"))

    chunks = split_rows(rows, max_bytes=1000)

    assert len(chunks) > 5
    assert all(len(c) <= 1000 for c in chunks)
    decoded = [json.loads(c) for c in chunks]
    assert [r for chunk in decoded for r in chunk] == rows
    chunk_of = {r["UniqueId"]: i for i, chunk in enumerate(decoded) for r in chunk}
    assert chunk_of["c0"] <= chunk_of["c50"]


def test_split_rows_rejects_a_row_bigger_than_the_limit() -> None:
    with pytest.raises(ImportFileError, match="row 2 alone is"):
        split_rows([comment("c1"), comment("c2", Message="x" * 2000)], max_bytes=1000)
