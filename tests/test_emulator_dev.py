"""qbot dev: the emulator and the bot's real webhook server in one process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from qbot import Bot, Context
from qbot.emulator.dev import DevServer, dev_settings
from qbot.intents import load_intents
from qbot.storage import open_storage
from qbot.storage.base import state_key

MEMORY = {"url": "memory://"}  # the bot's state stays out of the working directory
CLI = "import click; from qbot._cli_dev import register; g = click.Group('qbot'); register(g); g()"


def make_bot() -> Bot:
    bot = Bot("devbot")

    @bot.fallback
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo: {ctx.text}")

    return bot


async def _say(session: aiohttp.ClientSession, url: str, text: str) -> int:
    async with session.post(
        f"{url}emulator/api/users", json={"email": "ana@x.io", "username": "Ana"}
    ) as resp:
        assert resp.status == 200
    async with session.post(
        f"{url}emulator/api/rooms", json={"type": "single", "user_email": "ana@x.io"}
    ) as resp:
        room_id: int = (await resp.json())["id"]
    async with session.post(
        f"{url}emulator/api/rooms/{room_id}/messages",
        json={"sender_email": "ana@x.io", "text": text},
    ) as resp:
        assert resp.status == 200
    return room_id


async def _messages(session: aiohttp.ClientSession, url: str, room_id: int, count: int) -> Any:
    # The bot answers in the background: poll until the reply is stored (bounded, not timed).
    for _ in range(500):
        async with session.get(f"{url}emulator/api/rooms/{room_id}/comments") as resp:
            comments = await resp.json()
        if len(comments) >= count:
            return [c["message"] for c in comments]
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} messages, have {comments!r}")


async def test_dev_delivers_signed_webhooks_the_bot_server_accepts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "qiscus: {app_id: real-app, secret_key: real-secret}\n"
        "bot: {email: shop-bot@x.io, name: Shop}\n"
        "webhook: {signature_token: tok-123}\n"
    )
    settings = dev_settings(str(config), "devbot", storage=MEMORY)
    assert settings.bot.email == "shop-bot@x.io"
    server = DevServer(settings, make_bot(), port=0, db=str(tmp_path / "e.db"))
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            room_id = await _say(session, url, "hello")
            assert await _messages(session, url, room_id, 2) == ["hello", "echo: hello"]
            async with session.get(f"{url}emulator/api/exchanges?room_id={room_id}") as resp:
                [exchange] = await resp.json()
        first = exchange["traffic"][0]
        assert first["kind"] == "webhook"
        assert first["status"] == 200  # a bad signature would be a 401 from qbot.server
    finally:
        await server.stop()


async def test_dev_conversations_survive_a_restart_and_reset_clears_them(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "e.db")
    first = DevServer(dev_settings(None, "devbot", storage=MEMORY), make_bot(), port=0, db=db)
    url = await first.start()
    async with aiohttp.ClientSession() as session:
        room_id = await _say(session, url, "remember")
        await _messages(session, url, room_id, 2)
    await first.stop()

    second = DevServer(dev_settings(None, "devbot", storage=MEMORY), make_bot(), port=0, db=db)
    url = await second.start()
    async with aiohttp.ClientSession() as session:
        assert await _messages(session, url, room_id, 2) == ["remember", "echo: remember"]
    await second.stop()

    third = DevServer(
        dev_settings(None, "devbot", storage=MEMORY), make_bot(), port=0, db=db, reset=True
    )
    url = await third.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}emulator/api/state") as resp:
            assert (await resp.json())["users"] == []
        async with session.get(f"{url}emulator/api/rooms/{room_id}/comments") as resp:
            assert resp.status == 404
    await third.stop()


def _qbot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_command_bad_target_is_one_line(tmp_path: Path) -> None:
    result = _qbot(tmp_path, "dev", "nowhere_xyz:bot")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot import module 'nowhere_xyz' (from 'nowhere_xyz:bot')"
    ]


def test_dev_command_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _qbot(tmp_path, "dev", "--port", str(port), "--db", str(tmp_path / "e.db"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (another qbot dev?): "
        "stop it or pass --port N"
    )  # not aiohttp's "error while attempting to bind on address ('127.0.0.1', N): ..."


def test_dev_command_db_in_an_impossible_folder_is_one_line(tmp_path: Path) -> None:
    # It said "cannot listen on 127.0.0.1:PORT: ..." for a --db whose folder cannot be made.
    (tmp_path / "plain-file").write_text("")
    db = tmp_path / "plain-file" / "e.db"
    result = _qbot(tmp_path, "dev", "--port", "0", "--db", str(db))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot open the emulator database '{db}': ")
    assert line.endswith("; pass another --db path")


def counting_bot() -> Bot:
    bot = Bot("counter")

    @bot.fallback
    async def count(ctx: Context) -> None:
        seen = await ctx.state.get("seen", 0) + 1
        await ctx.state.set("seen", seen)
        await ctx.reply(f"message {seen}")

    return bot


async def test_dev_bot_state_lives_beside_the_emulator_and_reset_clears_both(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.db"

    rooms: list[int] = []

    async def run(reset: bool, expected: str, count: int) -> None:
        server = DevServer(
            dev_settings(None, "counter"), counting_bot(), port=0, db=str(db), reset=reset
        )
        url = await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                room_id = await _say(session, url, "hi")
                rooms.append(room_id)
                messages = await _messages(session, url, room_id, count)
                assert messages[-1] == expected, messages
        finally:
            await server.stop()

    await run(reset=False, expected="message 1", count=2)
    assert (tmp_path / "e-bot.sqlite3").exists()
    await run(reset=False, expected="message 2", count=4)  # the bot's state survived a restart
    bot_store = f"sqlite:///{tmp_path / 'e-bot.sqlite3'}"
    async with open_storage(bot_store) as storage:
        assert await storage.inbox_size() == 0
        kept = [await storage.get_state(state_key(str(r), "ana@x.io")) for r in rooms]
    assert all(kept)
    old_room = rooms[0]
    await run(reset=True, expected="message 1", count=2)  # both stores start over
    async with open_storage(bot_store) as storage:
        assert await storage.get_state(state_key(str(old_room), "ana@x.io")) is None


async def test_dev_inspector_reads_a_text_with_the_bots_intents(tmp_path: Path) -> None:
    bot = make_bot()
    bot.intents = load_intents(
        Path(__file__).parent / "data" / "intents_id.yaml", cache_dir=tmp_path / "cache"
    )
    settings = dev_settings(None, "devbot", storage=MEMORY)
    server = DevServer(settings, bot, port=0, db=str(tmp_path / "e.db"))
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = f"{url}emulator/api/intents"
            async with session.get(api, params={"text": "gmn refund Rp 50rb ke jkt"}) as resp:
                found = await resp.json()
            async with session.get(api, params={"text": "x" * 5000}) as resp:
                too_long = (resp.status, await resp.json())
    finally:
        await server.stop()
    assert [m["name"] for m in found["intents"]][:1] == ["refund"]
    assert len(found["intents"]) == 3 and found["threshold"] == 0.5
    assert found["entities"] == [
        {
            "type": "money",
            "text": "Rp 50rb",
            "value": "Money(amount=Decimal('50000'), currency='IDR')",
        },
        {"type": "city", "text": "jkt", "value": "Jakarta"},
    ]
    assert too_long == (400, {"error": "text longer than 4096"})
