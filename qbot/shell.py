"""``qbot shell``: chat with a bot in the terminal.

The bot runs against an in-process emulator, as in ``qbot.testing``: each line typed is a webhook
taking the server's path through the core (``bot.feed_update``). Replies are printed as text
blocks; postback buttons are numbered, and typing a number taps one. ``/quit`` (or end of input)
leaves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qbot._json import dumps_text
from qbot.clock import ManualClock
from qbot.emulator.harness import BotReply, Harness, Replies
from qbot.emulator.webhook import postback_response

if TYPE_CHECKING:
    from qbot.bot import Bot
    from qbot.config import Settings

__all__ = ["format_replies", "run_shell"]

HELP = (
    "Type a message and press Enter. A number taps that button. /advance 25h moves the bot's "
    "clock (s, m, h, d): follow-ups that come due run. /help shows this, /quit leaves."
)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STEP = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def _step(text: str) -> float | None:
    """Seconds of ``/advance`` text such as ``25h``, ``90m``, ``2d``, ``30`` (seconds)."""
    found = _STEP.fullmatch(text.strip().lower())
    if found is None:
        return None
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def _debounce(bot: Bot) -> float:
    """The longest debounce window the bot has (the shell answers each line after it)."""
    windows = [bot.dispatcher.debounce or 0.0]
    windows += [h.debounce or 0.0 for h in bot.iter_handlers()]
    return max(windows)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines() or [""])


def _card(card: dict[str, Any]) -> list[str]:
    lines = [f"  ┌ {card.get('title', '')}"]
    if card.get("description"):
        lines.extend(f"  │ {line}" for line in str(card["description"]).splitlines())
    image = card.get("image") or card.get("image_url")
    if image:
        lines.append(f"  │ image: {image}")
    if card.get("url"):
        lines.append(f"  │ {card['url']}")
    return lines


def _body(reply: BotReply) -> list[str]:
    payload = reply.payload
    if reply.type == "system_event":
        return [f"  — {reply.text} —"]
    if reply.type == "reply":
        quoted = payload.get("replied_comment_message", "")
        who = payload.get("replied_comment_sender_username", "")
        return [f"  │ {who}: {quoted}", _indent(reply.text, "  ")]
    if reply.type == "custom":
        return [_indent(dumps_text(reply.comment.get("payload"), indent=True))]
    if reply.type == "account_linking":
        params = payload.get("params") or {}
        button = params.get("button_text") or "Link account"
        return [_indent(reply.text, "  "), f"  [{button}] opens {payload.get('url', '')}"]
    # A card's comment text defaults to its title, which the card box shows already.
    titles = {str(card.get("title", "")) for card in reply.cards}
    if reply.type == "carousel" or (reply.type == "card" and reply.text in titles):
        return []
    return [_indent(reply.text, "  ")]


def _buttons(
    buttons: list[dict[str, Any]], choices: list[dict[str, Any]], owner: str = ""
) -> list[str]:
    """Link buttons with their URL; postback buttons numbered on from ``choices``, which grows.

    ``owner`` names the carousel card a button belongs to: `[1] Add to cart (Blue shirt)`.
    """
    lines = []
    suffix = f" ({owner})" if owner else ""
    for button in buttons:
        label = button.get("label", "")
        if button.get("type") == "link":
            url = (button.get("payload") or {}).get("url", "")
            lines.append(f"   ↗ {label}{suffix}: {url}")
        else:
            choices.append(button)
            lines.append(f"  [{len(choices)}] {label}{suffix}")
    return lines


def format_replies(replies: Replies, bot_name: str) -> tuple[str, list[dict[str, Any]]]:
    """The replies as terminal text, and the postback buttons in the order they are numbered."""
    lines: list[str] = []
    choices: list[dict[str, Any]] = []
    for reply in replies:
        lines.append(f"{bot_name}:")
        lines.extend(_body(reply))
        if not reply.cards:
            lines.extend(_buttons(reply.buttons, choices))
        for card in reply.cards:
            lines.extend(_card(card))
            owner = str(card.get("title", "")) if reply.type == "carousel" else ""
            card_buttons = [b for b in card.get("buttons") or [] if isinstance(b, dict)]
            lines.extend(_buttons(card_buttons, choices, owner))
    if not replies:
        lines.append(f"{bot_name}: (no reply)")
    return "\n".join(lines), choices


async def run_shell(
    bot: Bot,
    settings: Settings | None,
    read_line: Callable[[], str | None],
    write: Callable[[str], None],
    *,
    email: str = "user@example.com",
    name: str = "User",
) -> int:
    """Chat until ``/quit`` or end of input; return how many messages were sent.

    Args:
        bot: the bot to talk to.
        settings: its settings (``None``: emulator defaults).
        read_line: returns the next line typed, or ``None`` at end of input; it may block, it
            runs in a thread.
        write: prints one block of output.
        email: the user's email.
        name: the user's display name.
    """
    sent = 0
    # Time passes as in production; /advance skips ahead (follow-ups, WhatsApp's window).
    clock = bot.clock if isinstance(bot.clock, ManualClock) else ManualClock(running=True)
    window = _debounce(bot)
    async with Harness(bot, settings, clock=clock) as harness:
        chat = await harness.chat(email, name)
        write(f"Chatting with {bot.name!r} as {name} <{email}>. {HELP}")
        choices: list[dict[str, Any]] = []
        while True:
            line = await asyncio.to_thread(read_line)
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            text = line.strip()
            if not text:
                continue
            if text == "/help":
                write(HELP)
                continue
            if text.startswith("/advance"):
                seconds = _step(text[len("/advance") :])
                if seconds is None:
                    write("Usage: /advance 25h (a number and s, m, h or d).")
                    continue
                replies = await chat.advance(seconds)
                write(f"(the clock is now {clock.now():%Y-%m-%d %H:%M} UTC)")
                if replies:
                    output, choices = format_replies(replies, bot.name)
                    write(output)
                continue
            if text.isdigit() and choices:
                index = int(text)
                if not 1 <= index <= len(choices):
                    write(f"There is no button {index}: pick 1 to {len(choices)}.")
                    continue
                label, payload = postback_response(choices[index - 1])
                replies = await chat.send("button_postback_response", label, payload)
            else:
                replies = await chat.say(text)
            if not replies and window > 0:  # gathered (debounce): one line is the whole burst
                replies = await chat.advance(window)
            sent += 1
            output, new_choices = format_replies(replies, bot.name)
            # A reply without buttons keeps nothing tappable: numbers are text again.
            choices = new_choices
            write(output)
    return sent
