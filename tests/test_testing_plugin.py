"""qbot.testing: the fixtures bot authors use, and YAML transcripts run as pytest items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from qbot import Bot, Buttons, Card, Carousel, Context
from qbot.testing import Chat, Harness

ROOT = Path(__file__).resolve().parent.parent


def make_bot() -> Bot:
    bot = Bot("plugin-test")

    @bot.message(text="hi")
    async def hi(ctx: Context) -> None:
        await ctx.reply(f"hello {ctx.sender.name}")

    @bot.message(text="ask")
    async def ask(ctx: Context) -> None:
        await ctx.reply(
            Buttons("Sure?")
            .postback("Yes", action="answer", data={"v": "yes"})
            .postback("No", action="answer", data={"v": "no"})
            .link("Docs", "https://example.com/docs")
        )

    @bot.postback(action="answer")
    async def answer(ctx: Context) -> None:
        value = (ctx.postback.data or {}).get("v") if ctx.postback else None
        await ctx.reply(f"you picked {value}")

    @bot.message(text="shop")
    async def shop(ctx: Context) -> None:
        await ctx.reply(
            Carousel(
                [
                    Card(title="Tea", description="hot").postback("Buy", action="answer"),
                    Card(title="Coffee", description="strong", url="https://example.com/c"),
                ]
            )
        )

    @bot.event("add_member")
    async def welcome(ctx: Context) -> None:
        await ctx.reply("welcome")

    return bot


@pytest.fixture
def qbot_bot() -> Bot:
    return make_bot()


async def test_say_returns_the_replies_the_bot_sent(qbot_chat: Chat) -> None:
    replies = await qbot_chat.say("hi")
    assert replies.texts == ["hello User"]
    replies.assert_texts("hello User").assert_types("text")


async def test_tap_posts_back_the_tapped_button(qbot_chat: Chat) -> None:
    (await qbot_chat.say("ask")).assert_buttons("Yes", "No", "Docs")
    (await qbot_chat.tap("No")).assert_texts("you picked no")


async def test_tap_explains_a_missing_or_link_button(qbot_chat: Chat) -> None:
    await qbot_chat.say("ask")
    with pytest.raises(AssertionError, match=r"no button 'Maybe'.*'Yes', 'No', 'Docs'"):
        await qbot_chat.tap("Maybe")
    with pytest.raises(AssertionError, match="'Docs' is a link"):
        await qbot_chat.tap("Docs")


async def test_assertion_messages_list_what_the_bot_said(qbot_chat: Chat) -> None:
    replies = await qbot_chat.say("shop")
    replies.assert_cards("Tea", "Coffee")
    with pytest.raises(AssertionError) as caught:
        replies.assert_texts("something else")
    message = str(caught.value)
    assert "expected texts ['something else']" in message
    assert "carousel" in message
    assert "cards 'Tea', 'Coffee'" in message
    with pytest.raises(AssertionError, match="no reply"):
        (await qbot_chat.say("unknown words")).assert_contains("x")


async def test_factory_gives_more_users_and_group_events(
    qbot_chat_factory: Callable[..., Awaitable[Chat]],
) -> None:
    bo = await qbot_chat_factory("bo@example.com", "Bo", group="Team")
    assert bo.room["type"] == "group"
    (await bo.event("add_member", objects=["cy@example.com"])).assert_texts("welcome")


async def test_the_bots_own_echo_is_delivered_and_ignored(
    qbot_harness: Harness, qbot_chat: Chat
) -> None:
    await qbot_chat.say("hi")
    [exchange] = await qbot_harness.emulator.store.exchanges(qbot_chat.room_id)
    webhooks = [t for t in exchange["traffic"] if t["kind"] == "webhook"]
    assert [w["body"]["type"] for w in webhooks] == ["post_comment_mobile", "post_comment_rest"]
    assert json.loads(webhooks[1]["detail"])["ignored"] == "own_message"


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _project(tmp_path: Path) -> Path:
    (tmp_path / "echo.py").write_text(
        textwrap.dedent(
            """
            from qbot import Bot, Buttons, Context

            bot = Bot("echo")

            @bot.message(text="menu")
            async def menu(ctx: Context) -> None:
                await ctx.reply(Buttons("Pick").postback("A", action="a"))

            @bot.postback(action="a")
            async def a(ctx: Context) -> None:
                await ctx.reply("picked A")

            @bot.fallback
            async def echo(ctx: Context) -> None:
                await ctx.reply(f"echo: {ctx.text}")
            """
        )
    )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nqbot_target = "echo:bot"\nasyncio_mode = "auto"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    return tmp_path


def test_transcripts_run_as_pytest_items_with_clear_failures(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "test_flow.yaml").write_text(
        textwrap.dedent(
            """
            transcripts:
              - name: menu works
                turns:
                  - say: menu
                    expect: [{type: buttons, buttons: [A]}]
                  - tap: A
                    expect: ["picked A"]
              - name: wrong echo
                turns:
                  - say: hello
                    expect: ["echo: goodbye"]
            """
        )
    )
    (project / "test_other.yaml").write_text("just: some data\n")
    result = _pytest(project, "-rA")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed" in out
    assert "transcript 'wrong echo'" in out
    assert "turn 1: say 'hello'" in out
    assert "text is 'echo: hello', expected 'echo: goodbye'" in out
    assert "1. text: 'echo: hello'" in out


def test_fixture_uses_the_configured_target(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "test_bot.py").write_text(
        textwrap.dedent(
            """
            async def test_echo(qbot_chat):
                (await qbot_chat.say("yo")).assert_texts("echo: yo")
            """
        )
    )
    result = _pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_malformed_transcript_names_the_file_and_turn(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "test_bad.yaml").write_text("turns:\n  - shout: hi\n")
    result = _pytest(project)
    assert result.returncode != 0
    assert "test_bad.yaml" in result.stdout
    assert "turn 1 has unknown keys ['shout']" in result.stdout


def test_configured_transcript_directory_collects_every_yaml(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with (project / "pyproject.toml").open("a") as f:
        f.write('qbot_transcripts = ["convos"]\n')
    (project / "convos").mkdir()
    (project / "convos" / "greeting.yaml").write_text(
        "turns:\n  - say: yo\n    expect: ['echo: yo']\n"
    )
    result = _pytest(project, "-rA")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED convos/greeting.yaml::greeting" in result.stdout
