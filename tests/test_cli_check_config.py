"""`qbot check-config`: placeholder secrets are not ok; `--target` reports the bot it checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qbot.cli import main

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
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "helpdesk_check.py").write_text(BOT_MODULE)


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
