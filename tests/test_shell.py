"""qbot shell: chat in the terminal, buttons as numbered choices, cards as text blocks."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from qbot import Bot, Buttons, Card, Carousel, Context
from qbot.shell import run_shell


def make_bot() -> Bot:
    bot = Bot("shelly")

    @bot.message(text="menu")
    async def menu(ctx: Context) -> None:
        await ctx.reply(
            Buttons("Pick one")
            .postback("Tea", action="drink", data={"d": "tea"})
            .link("Docs", "https://example.com/docs")
            .postback("Coffee", action="drink", data={"d": "coffee"})
        )

    @bot.postback(action="drink")
    async def drink(ctx: Context) -> None:
        await ctx.reply(f"one {(ctx.postback.data or {}).get('d') if ctx.postback else '?'}")

    @bot.message(text="shop")
    async def shop(ctx: Context) -> None:
        await ctx.reply(
            Carousel(
                [
                    Card(
                        title="Kettle",
                        description="1.7 l\nsteel",
                        image_url="https://example.com/k.jpg",
                        url="https://example.com/k",
                    )
                ]
            )
        )

    @bot.fallback
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo: {ctx.text}")

    return bot


async def _run(lines: list[str]) -> str:
    feed: Iterator[str] = iter(lines)
    out: list[str] = []
    await run_shell(make_bot(), None, lambda: next(feed, None), out.append)
    return "\n".join(out)


async def test_shell_numbers_postback_buttons_and_taps_by_number() -> None:
    out = await _run(["menu", "2"])
    assert (
        "shelly:\n  Pick one\n  [1] Tea\n   ↗ Docs: https://example.com/docs\n  [2] Coffee" in out
    )
    assert "shelly:\n  one coffee" in out


async def test_shell_shows_cards_as_text_blocks() -> None:
    out = await _run(["shop"])
    assert "  ┌ Kettle\n  │ 1.7 l\n  │ steel\n  │ image: https://example.com/k.jpg" in out


async def test_shell_number_without_buttons_is_plain_text_and_bad_number_is_explained() -> None:
    out = await _run(["7", "menu", "9", "/quit", "never sent"])
    assert "echo: 7" in out
    assert "There is no button 9: pick 1 to 2." in out
    assert "never sent" not in out


# The commands configure logging for the whole process, so they run in a child process.
CLI = "import click; from qbot._cli_dev import register; g = click.Group('qbot'); register(g); g()"


def _qbot(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shell_command_chats_over_stdin(tmp_path: Path) -> None:
    (tmp_path / "echo_shell_bot.py").write_text(
        "from qbot import Bot, Context\n"
        "bot = Bot('echoer')\n"
        "@bot.fallback\n"
        "async def echo(ctx: Context) -> None:\n"
        "    await ctx.reply(f'you said {ctx.text}')\n"
    )
    result = _qbot(tmp_path, "shell", "echo_shell_bot:bot", stdin="hello\n")
    assert result.returncode == 0, result.stderr
    assert "echoer:\n  you said hello" in result.stdout


def test_shell_command_bad_target_is_one_line(tmp_path: Path) -> None:
    result = _qbot(tmp_path, "shell", "no_such_module_xyz:bot")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot import module 'no_such_module_xyz' (from 'no_such_module_xyz:bot')"
    ]


def make_shop_bot() -> Bot:
    bot = Bot("shop")

    @bot.message(text="deals")
    async def deals(ctx: Context) -> None:
        await ctx.reply(
            Carousel(
                [
                    Card(title="Blue shirt", url="https://example.com/b").postback(
                        "Add to cart", action="add", data={"sku": "blue"}
                    ),
                    Card(title="Red shirt", url="https://example.com/r")
                    .postback("Add to cart", action="add", data={"sku": "red"})
                    .link("Size guide", "https://example.com/sizes"),
                ]
            )
        )

    @bot.message(text="kettle")
    async def kettle(ctx: Context) -> None:
        await ctx.reply(
            Card(title="Kettle", description="1.7 l").postback(
                "Buy", action="add", data={"sku": "k"}
            )
        )

    @bot.postback(action="add")
    async def add(ctx: Context) -> None:
        await ctx.reply(f"added {(ctx.postback.data or {}).get('sku') if ctx.postback else '?'}")

    return bot


async def _run_shop(lines: list[str]) -> str:
    feed: Iterator[str] = iter(lines)
    out: list[str] = []
    await run_shell(make_shop_bot(), None, lambda: next(feed, None), out.append)
    return "\n".join(out)


async def test_shell_carousel_buttons_say_which_card_they_belong_to() -> None:
    out = await _run_shop(["deals", "2"])
    assert (
        "shop:\n"
        "  ┌ Blue shirt\n  │ https://example.com/b\n  [1] Add to cart (Blue shirt)\n"
        "  ┌ Red shirt\n  │ https://example.com/r\n  [2] Add to cart (Red shirt)\n"
        "   ↗ Size guide (Red shirt): https://example.com/sizes"
    ) in out
    assert "shop:\n  added red" in out


async def test_shell_prints_a_cards_title_once() -> None:
    out = await _run_shop(["kettle", "1"])
    assert out.count("Kettle") == 1, out
    assert "shop:\n  ┌ Kettle\n  │ 1.7 l\n  [1] Buy" in out
    assert "added k" in out


def test_shell_command_has_line_editing_and_history_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "hist_bot.py").write_text(
        "from qbot import Bot, Context\n"
        "bot = Bot('hist')\n"
        "@bot.fallback\n"
        "async def echo(ctx: Context) -> None:\n"
        "    await ctx.reply(f'echo: {ctx.text}')\n"
    )
    main, child = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-c", CLI, "shell", "hist_bot:bot"],
        cwd=tmp_path,
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "TERM": "xterm", "INPUTRC": os.devnull},
    ) as proc:
        os.close(child)
        seen = _read_until(main, "you> ")
        os.write(main, b"hello there\r")
        seen += _read_until(main, "echo: hello there")
        os.write(main, b"\x1b[A\x01\x1b[Cagain: \r")  # Up, Home, Right: edit the last line
        seen += _read_until(main, "echo: hagain: ello there")
        os.write(main, b"/quit\r")
        proc.wait(timeout=30)
        os.close(main)
    assert proc.returncode == 0, seen
    history = (tmp_path / ".qbot" / "shell_history").read_text().splitlines()
    assert history[-3:] == ["hello there", "hagain: ello there", "/quit"]


def _read_until(fd: int, marker: str, timeout: float = 60.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 4096).decode(errors="replace")
    return seen


async def test_shell_advance_runs_follow_ups_and_a_debounced_line_is_answered() -> None:
    from datetime import timedelta

    bot = Bot("later", debounce=2.0)

    @bot.message()
    async def hello(ctx: Context) -> None:
        await ctx.schedule("followup", after=timedelta(hours=2), data=ctx.text)
        await ctx.reply(f"got {ctx.text}")

    @bot.scheduled("followup")
    async def followup(ctx: Context) -> None:
        await ctx.reply(f"still there? ({ctx.data})")

    feed = iter(["halo", "/advance 1h", "/advance nonsense", "/advance 1h", "/quit"])
    out: list[str] = []
    await run_shell(bot, None, lambda: next(feed, None), out.append)
    text = "\n".join(out)
    assert "got halo" in text  # answered after the debounce window, not left pending
    assert text.count("still there? (halo)") == 1
    assert "Usage: /advance 25h" in text
    first, second = text.index("the clock is now"), text.index("still there?")
    assert first < second
