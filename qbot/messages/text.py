"""Plain text (split to fit Qiscus's 4000-character cap) and quoting replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qbot.errors import MessageBuildError
from qbot.messages._validate import MAX_MESSAGE_LENGTH, require_text
from qbot.messages.base import Message, Outgoing, OutgoingComment

if TYPE_CHECKING:
    from qbot.messages.postback import PostbackSigner

# Preferred split points, best first, with how far into a chunk each must fall to be used:
# a paragraph break near the start of a chunk would leave a tiny comment, so fall back to a
# line break, then a space, then a hard cut.
_SEPARATORS = (("\n\n", 0.5), ("\n", 0.5), (" ", 0.0))


def split_text(text: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Splits at a paragraph break, else a line break, else a space, else mid-word. Characters keep
    their order; only the separator at each split point is dropped. Chunks that would hold only
    whitespace are dropped too.

    Args:
        text: the text to split.
        limit: the largest chunk, in characters.

    Returns:
        The chunks, in order; ``[text]`` when it already fits.

    Raises:
        MessageBuildError: ``limit`` is below 1.
    """
    if limit < 1:
        raise MessageBuildError(f"split_text limit must be at least 1, got {limit!r}")
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut, skip = limit, 0
        for separator, min_share in _SEPARATORS:
            found = rest.rfind(separator, 1, limit + len(separator))
            if found > 0 and found >= limit * min_share:
                cut, skip = found, len(separator)
                break
        chunks.append(rest[:cut])
        rest = rest[cut + skip :]
    chunks.append(rest)
    return [chunk for chunk in chunks if chunk.strip()]


class Text(Message):
    """A plain text comment; a text over 4000 characters goes out as several comments.

    Args:
        text: the text; must not be empty.
        disable_link_preview: ask clients not to render a preview of the first link.

    Raises:
        MessageBuildError: the text is empty or not a string.

    Example:
        ``await ctx.reply(Text("see https://example.com", disable_link_preview=True))``
    """

    __slots__ = ("disable_link_preview", "text")

    def __init__(self, text: str, *, disable_link_preview: bool = False) -> None:
        self.text = require_text("Text text", text)
        self.disable_link_preview = disable_link_preview

    def __repr__(self) -> str:
        return f"Text({self.text!r}, disable_link_preview={self.disable_link_preview!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``text`` comment per chunk of at most 4000 characters."""
        return [
            OutgoingComment(
                type="text", message=chunk, disable_link_preview=self.disable_link_preview
            )
            for chunk in split_text(self.text)
        ]


class Reply(Message):
    """A ``reply`` comment: ``text`` shown under a quote of an earlier comment.

    Args:
        text: the reply; at most 4000 characters (a quote cannot be split).
        replied_comment_id: the Qiscus id of the quoted comment.

    Raises:
        MessageBuildError: empty or too long text, or an id that is not a positive integer.
    """

    __slots__ = ("replied_comment_id", "text")

    def __init__(self, text: str, *, replied_comment_id: int) -> None:
        self.text = require_text("Reply text", text, max_length=MAX_MESSAGE_LENGTH)
        if (
            isinstance(replied_comment_id, bool)
            or not isinstance(replied_comment_id, int)
            or replied_comment_id <= 0
        ):
            raise MessageBuildError(
                "Reply replied_comment_id must be the positive integer id of a comment, "
                f"got {replied_comment_id!r}"
            )
        self.replied_comment_id = replied_comment_id

    def __repr__(self) -> str:
        return f"Reply({self.text!r}, replied_comment_id={self.replied_comment_id!r})"

    def to_outgoing(self, *, signer: PostbackSigner | None = None) -> list[Outgoing]:
        """One ``reply`` comment with payload ``{text, replied_comment_id}``."""
        payload = {"text": self.text, "replied_comment_id": self.replied_comment_id}
        return [OutgoingComment(type="reply", message=self.text, payload=payload)]
