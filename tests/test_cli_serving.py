"""`qbot run` says where it listens; `qbot dev` logs for a person even when piped."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import structlog

from qbot.log import configure_logging

BOT_MODULE = """\
from qbot import Bot, Context

bot = Bot("helpdesk")


@bot.message(text="hi")
async def hi(ctx: Context) -> None:
    await ctx.reply("hello")
"""


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "helpdesk.py").write_text(BOT_MODULE)
    for key in list(os.environ):
        if key.startswith("QBOT_"):
            monkeypatch.delenv(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qbot.cli",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def stop(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    return out.decode(), err.decode()


async def test_run_prints_where_it_listens_and_logs_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.yaml").write_text(
        "qiscus:\n  app_id: shop\n  secret_key: s3cret-and-long\n"
        "bot:\n  email: bot@shop.id\nstorage:\n  url: memory://\n"
    )
    proc = await start(tmp_path, "run", "helpdesk:bot", "--host", "127.0.0.1", "--port", str(port))
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    finally:
        out, err = await stop(proc)

    url = f"http://127.0.0.1:{port}/webhook"
    assert first.decode() == f"qbot: serving helpdesk on {url} (Ctrl+C stops)\n"
    events = [json.loads(line) for line in err.splitlines()]  # stderr stays JSON lines
    listening = [e for e in events if e["event"] == "server.listening"]
    assert [(e["url"], e["bot"]) for e in listening] == [(url, "helpdesk")]
    assert not [e for e in events if e["event"] == "config.placeholder_secret"]
    assert out == ""


async def test_run_warns_about_a_placeholder_secret(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "qiscus:\n  app_id: shop\n  secret_key: change-me\n"
        "bot:\n  email: bot@shop.id\nstorage:\n  url: memory://\n"
    )
    proc = await start(tmp_path, "run", "helpdesk:bot", "--port", str(free_port()))
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), timeout=20)
    finally:
        _, err = await stop(proc)

    warnings = [json.loads(line) for line in err.splitlines() if "placeholder" in line]
    assert [(w["level"], w["key"]) for w in warnings] == [("warning", "qiscus.secret_key")]


async def test_dev_logs_console_lines_when_piped(tmp_path: Path) -> None:
    port = free_port()
    proc = await start(
        tmp_path, "dev", "helpdesk:bot", "--port", str(port), "--db", str(tmp_path / "e.db")
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while not any("qbot dev: chat with" in line for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout=20)
            assert raw, "".join(lines)
            lines.append(raw.decode())
    finally:
        _, rest = await stop(proc)

    logged = [line for line in lines + rest.splitlines() if "server.started" in line]
    assert logged, lines
    assert not logged[0].lstrip().startswith("{")
    assert "\x1b[" not in "".join(lines) + rest  # plain text: no colour codes in a pipe


def test_console_format_to_a_pipe_has_no_colour_codes() -> None:
    out = io.StringIO()
    try:
        configure_logging("info", "console", stream=out)
        structlog.get_logger().warning("loud.event", key="v")
    finally:
        structlog.reset_defaults()
    assert "loud.event" in out.getvalue()
    assert "\x1b[" not in out.getvalue()


async def test_run_does_not_claim_to_serve_when_the_port_is_taken(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "qiscus:\n  app_id: shop\n  secret_key: s3cret-and-long\n"
        "bot:\n  email: bot@shop.id\nstorage:\n  url: memory://\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await start(
            tmp_path, "run", "helpdesk:bot", "--host", "127.0.0.1", "--port", str(port)
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)

    assert proc.returncode == 1
    assert out.decode() == ""
    assert err.decode().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "server.listening" not in err.decode()


async def test_dev_without_a_target_says_what_the_bot_run_beside_it_needs(tmp_path: Path) -> None:
    # It said "chat with the bot at http://.../webhook at http://.../" and nothing of the
    # credentials and URL a `qbot run` beside it must use: the printed ones must work as they are.
    hook, page = free_port(), free_port()
    proc = await start(
        tmp_path,
        "dev",
        "--webhook-url",
        f"http://127.0.0.1:{hook}/webhook",
        "--port",
        str(page),
        "--db",
        str(tmp_path / "e.db"),
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while not any("run your bot with:" in line for line in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), timeout=20)
            assert raw, "".join(lines)
            lines.append(raw.decode())
        assert lines[-2].startswith(
            f"qbot dev: chat at http://127.0.0.1:{page}/; messages go to http://127.0.0.1:{hook}/"
        )
        advice = lines[-1].split("run your bot with: ", 1)[1].split()
        assert advice[-3:] == ["TARGET", "--port", str(hook)]
        env = dict(item.split("=", 1) for item in advice if "=" in item)
        assert env["QBOT_QISCUS__BASE_URL"] == f"http://127.0.0.1:{page}"
        check = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbot.cli",
            "check-config",
            "--online",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )
        out, err = await asyncio.wait_for(check.communicate(), timeout=30)
        assert check.returncode == 0, err.decode()
        assert "accepted app 'qbot-dev'" in out.decode()
    finally:
        await stop(proc)
