"""`qbot check-config`: placeholder secrets are not ok; `--target` reports the bot it checked;
`--online` calls Qiscus (the emulator on a real port, or a closed port).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from qbot.cli import main
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

BOT_MODULE = """\
from qbot import Bot, Context

bot = Bot("helpdesk")


@bot.message(text="hi")
async def hi(ctx: Context) -> None:
    await ctx.reply("hello")


@bot.postback(action="buy")
async def buy(ctx: Context) -> None:
    await ctx.reply("bought")
"""


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "helpdesk_check.py").write_text(BOT_MODULE)
    saved = structlog.get_config()  # --online configures logging on CliRunner's stderr
    yield
    structlog.configure(**saved)


def config(secret: str) -> None:
    Path("config.yaml").write_text(
        f"qiscus:\n  app_id: shop\n  secret_key: '{secret}'\nbot:\n  email: bot@shop.id\n"
    )


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check-config", *args])


def test_check_config_refuses_a_placeholder_secret() -> None:
    config("change-me")

    result = check()

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: placeholder secret in qiscus.secret_key: set a real value "
        "(e.g. QBOT_QISCUS__SECRET_KEY)\n"
    )


def test_check_config_accepts_a_real_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config("change-me")
    monkeypatch.setenv("QBOT_QISCUS__SECRET_KEY", "9f3c-real-secret")

    result = check()

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: app 'shop' at https://shop.qiscus.com")


def test_check_config_with_a_target_reports_the_bot() -> None:
    config("9f3c-real-secret")

    plain = check()
    with_target = check("--target", "helpdesk_check:bot")

    assert with_target.exit_code == 0, with_target.output
    first, second = with_target.stdout.splitlines()
    assert first == plain.stdout.strip()
    assert second == (
        "ok: bot 'helpdesk' from helpdesk_check:bot: 1 message, 1 postback handlers, no fallback"
    )


def test_check_config_with_an_unknown_env_section_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config("9f3c-real-secret")
    monkeypatch.setenv("QBOT_SEVER__PORT", "9000")

    result = check()

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: invalid configuration: QBOT_SEVER__PORT sets 'sever', which is not a known "
        "section (did you mean QBOT_SERVER__PORT?)"
    ]


@pytest_asyncio.fixture
async def emulator_url(tmp_path: Path, aiohttp_server: ServerFactory) -> AsyncIterator[str]:
    config = EmulatorConfig(app_id="shop", secret_key="9f3c-real-secret", bot_email="bot@shop.id")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    server = await aiohttp_server(create_emulator_app(emulator, manage=False))
    yield str(server.make_url("")).rstrip("/")
    await emulator.close()


def online_config(
    base_url: str, secret: str = "9f3c-real-secret", email: str = "bot@shop.id"
) -> None:
    Path("config.yaml").write_text(
        f"qiscus:\n  app_id: shop\n  secret_key: {secret}\n  base_url: {base_url}\n"
        f"  max_attempts: 2\n  max_retry_time: 2\nbot:\n  email: {email}\n"
    )


async def check_online() -> Result:
    return await asyncio.to_thread(check, "--online")


async def test_check_config_online_reports_what_qiscus_answered(emulator_url: str) -> None:
    online_config(emulator_url)

    result = await check_online()

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"ok: Qiscus at {emulator_url} accepted app 'shop'; bot 'bot@shop.id' is in 0 rooms"
    )
    assert result.stderr == ""


async def test_check_config_online_wrong_secret_is_one_line(emulator_url: str) -> None:
    online_config(emulator_url, secret="not-the-right-one")

    result = await check_online()

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: Qiscus rejected the secret key (401) for app 'shop'")
    assert len(result.stderr.splitlines()) == 1


async def test_check_config_online_unknown_bot_user_is_one_line(emulator_url: str) -> None:
    online_config(emulator_url, email="ghost@shop.id")

    result = await check_online()

    assert result.exit_code == 1
    assert result.stderr == (
        "error: not found (404) on /api/v2/rest/get_user_rooms: user 'ghost@shop.id' not "
        "found: register it with login_or_register; user_email: is invalid\n"
    )


async def test_check_config_online_unreachable_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    online_config(f"http://127.0.0.1:{port}")

    result = await check_online()

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: could not reach Qiscus at http://127.0.0.1:{port} (/api/v2/rest/get_user_rooms):"
        f" cannot connect to 127.0.0.1:{port}: connection refused; check qiscus.base_url and the "
        "network"
    ]
