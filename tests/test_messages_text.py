"""Text and Reply: wire payloads, the 4000-character split, validation messages."""

from __future__ import annotations

import pytest

from qbot.errors import MessageBuildError
from qbot.messages import MAX_MESSAGE_LENGTH, OutgoingComment, Reply, Text, split_text


def _messages(text: str) -> list[str]:
    outgoing = Text(text).to_outgoing()
    assert all(isinstance(o, OutgoingComment) and o.type == "text" for o in outgoing)
    return [o.message for o in outgoing if isinstance(o, OutgoingComment)]


def _assert_nothing_lost(original: str, chunks: list[str]) -> None:
    # Only whitespace at split points may disappear; everything else keeps its order.
    assert "".join(original.split()) == "".join("".join(chunks).split())
    position = 0
    for chunk in chunks:
        found = original.find(chunk, position)
        assert found >= position
        position = found + len(chunk)


def test_text_wire_form() -> None:
    [outgoing] = Text("hello", disable_link_preview=True).to_outgoing()
    assert outgoing == OutgoingComment(type="text", message="hello", disable_link_preview=True)


@pytest.mark.parametrize("length", [1, 3999, 4000])
def test_text_up_to_4000_characters_is_one_comment(length: int) -> None:
    assert _messages("x" * length) == ["x" * length]


def test_text_of_4001_characters_without_spaces_is_cut_in_two() -> None:
    assert _messages("y" * 4001) == ["y" * 4000, "y"]


def test_text_of_12000_characters_without_spaces_is_three_full_comments() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(12_000))
    chunks = _messages(text)
    assert [len(c) for c in chunks] == [4000, 4000, 4000]
    assert "".join(chunks) == text


def test_text_splits_at_the_last_paragraph_break() -> None:
    first = "a" * 3000
    second = "b " * 1000
    chunks = _messages(first + "\n\n" + second)
    assert chunks == [first, second]


def test_text_prefers_a_line_break_over_a_space() -> None:
    first = "word " * 700 + "end"  # 3503 characters with spaces inside
    second = "c" * 1000
    chunks = _messages(first + "\n" + second)
    assert chunks == [first, second]


def test_text_splits_at_a_space_when_there_is_no_line_break() -> None:
    text = " ".join(f"w{i:04d}" for i in range(1500))  # 8999 characters
    chunks = _messages(text)
    assert len(chunks) == 3
    assert all(len(c) <= MAX_MESSAGE_LENGTH for c in chunks)
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    assert " ".join(chunks) == text


def test_early_paragraph_break_does_not_make_a_tiny_comment() -> None:
    text = "intro\n\n" + "z " * 2500
    chunks = _messages(text)
    assert len(chunks[0]) > 3000
    _assert_nothing_lost(text, chunks)


@pytest.mark.parametrize("length", [4000, 4001, 7999, 8000, 8001, 20_000])
def test_split_keeps_every_character_in_order(length: int) -> None:
    pattern = "Lorem ipsum dolor sit amet,\nconsectetur\n\nadipiscing elit. "
    text = (pattern * (length // len(pattern) + 1))[:length]
    chunks = split_text(text)
    assert all(0 < len(c) <= MAX_MESSAGE_LENGTH for c in chunks)
    _assert_nothing_lost(text, chunks)


def test_split_respects_a_smaller_limit() -> None:
    assert split_text("aaa bbb ccc", limit=7) == ["aaa bbb", "ccc"]


def test_split_rejects_a_limit_that_could_never_progress() -> None:
    with pytest.raises(MessageBuildError, match=r"limit must be at least 1, got 0"):
        split_text("abc", limit=0)


@pytest.mark.parametrize("bad", ["", "   \n"])
def test_text_rejects_empty(bad: str) -> None:
    with pytest.raises(MessageBuildError, match=r"Text text must not be empty, got"):
        Text(bad)


def test_text_rejects_non_string() -> None:
    with pytest.raises(MessageBuildError, match=r"Text text must be a string, got 42"):
        Text(42)  # type: ignore[arg-type]


def test_reply_wire_form_matches_rest_api() -> None:
    [outgoing] = Reply("ini comment", replied_comment_id=16227).to_outgoing()
    assert outgoing == OutgoingComment(
        type="reply",
        message="ini comment",
        payload={"text": "ini comment", "replied_comment_id": 16227},
    )


@pytest.mark.parametrize("bad", [0, -5, "16227", True, None])
def test_reply_rejects_bad_comment_id(bad: object) -> None:
    with pytest.raises(MessageBuildError, match=rf"replied_comment_id .* got {bad!r}"):
        Reply("x", replied_comment_id=bad)  # type: ignore[arg-type]


def test_reply_rejects_text_over_the_cap() -> None:
    with pytest.raises(MessageBuildError, match=r"Reply text is 4001 characters.*4000"):
        Reply("r" * 4001, replied_comment_id=1)
