"""No secret ever reaches a log line: a bot with every kind of secret, at debug, real requests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from edge import raw_post
from webhooks import postback_body, sdk_body

from qbot.emulator import serve_emulator
from qbot.log import mask_url
from tests.emulated import FAKE, fake_store

QISCUS_SECRET = "qs-Secret-9f8e7d6c"
SIGNATURE_TOKEN = "sig-Token-1a2b3c4d"
POSTBACK_SECRET = "pb-Secret-5e6f7a8b"
REDIS_PASSWORD = "redis-Pass-0c1d2e3f"
SECRETS = (QISCUS_SECRET, SIGNATURE_TOKEN, POSTBACK_SECRET, REDIS_PASSWORD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[int]:
    """A private redis-server on a free port that requires ``REDIS_PASSWORD``."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--requirepass",
            REDIS_PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            proc.poll()
            if proc.returncode is not None:
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


BOT_MODULE = f"""
from qbot import Bot, Buttons, Context

bot = Bot("secrets")


@bot.message(text="menu")
async def menu(ctx: Context) -> None:
    await ctx.reply(Buttons("Pick").postback("Refund", action="refund", data={{"n": 1}}))


@bot.postback(action="refund")
async def refund(ctx: Context) -> None:
    await ctx.reply("refunded")


@bot.message(text="boom")
async def boom(ctx: Context) -> None:
    key = {QISCUS_SECRET!r}  # a local a traceback renderer could show
    raise RuntimeError("kaboom " + key[:2])


@bot.message()
async def echo(ctx: Context) -> None:
    await ctx.reply("echo " + ctx.text)
"""


async def wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    """Until ``qbot run`` listens (imports alone take seconds on a loaded machine)."""
    for _ in range(1200):
        if proc.returncode is not None:
            pytest.fail(f"qbot run exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    pytest.fail("qbot run did not listen within 60 s")


async def wait_idle(port: int) -> None:
    """Until the server has nothing in hand (so SIGTERM finds nothing to drain)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
            if health["pending"] == 0 and health["inbox"] == 0:
                return
            await asyncio.sleep(0.05)
    pytest.fail(f"the server still has work in hand: {health}")


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    digest = hmac.new(SIGNATURE_TOKEN.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"QISCUS-SDK-SIGNATURE": digest}


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_server_logs_no_secret_at_debug(
    redis_with_password: int, tmp_path: Path, fmt: str
) -> None:
    (tmp_path / "secretbot.py").write_text(BOT_MODULE)
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_with_password}/0?prefix=edge-secrets:"
    port = free_port()
    async with serve_emulator(
        dataclasses.replace(FAKE, secret_key=QISCUS_SECRET), fake_store()
    ) as fake:
        config = tmp_path / "config.yaml"
        config.write_text(
            json.dumps(
                {
                    "qiscus": {
                        "app_id": fake.config.app_id,
                        "secret_key": QISCUS_SECRET,
                        "base_url": fake.base_url,
                        "max_attempts": 2,
                    },
                    "bot": {"email": "bot@example.com"},
                    "webhook": {"signature_token": SIGNATURE_TOKEN},
                    "postback": {"secret": POSTBACK_SECRET},
                    "storage": {"url": url},
                    "log": {"level": "debug", "format": fmt},
                    "server": {"shutdown_timeout": 3},
                }
            )
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbot.cli",
            "run",
            "secretbot:bot",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tmp_path)},
        )
        # Read the output as it comes: a full pipe would block the server's event loop.
        assert proc.stdout is not None and proc.stderr is not None
        outputs = [asyncio.create_task(proc.stdout.read()), asyncio.create_task(proc.stderr.read())]
        try:
            await wait_listening(port, proc)
            for text in ("hello", "menu", "boom"):
                raw, headers = signed(sdk_body(text, room_id=51))
                assert (await raw_post(port, raw, headers=headers))[0] == 200
            await fake.wait_for(lambda: len(fake.posted_comments()) == 2, timeout=10)
            button = fake.posted_comments()[1]["payload"]["buttons"][0]
            raw, headers = signed(postback_body(button, room_id=51))
            assert (await raw_post(port, raw, headers=headers))[0] == 200
            await fake.wait_for(lambda: len(fake.posted_comments()) == 3, timeout=10)
            # Refused: a wrong signature, a forged postback; then Qiscus refuses our key.
            wrong = {"QISCUS-SDK-SIGNATURE": "0" * 64}
            assert (await raw_post(port, signed(sdk_body("x"))[0], headers=wrong))[0] == 401
            forged = {"payload": {"qbot": 1, "a": "refund", "s": "AAAA"}}
            raw, headers = signed(postback_body(forged, room_id=51))
            assert (await raw_post(port, raw, headers=headers))[0] == 200
            fake.fail_next("post_comment", status=401, times=5)
            raw, headers = signed(sdk_body("unauthorised", room_id=51))
            assert (await raw_post(port, raw, headers=headers))[0] == 200
            await fake.wait_for(lambda: len(fake.calls_to("post_comment")) >= 4, timeout=10)
            await wait_idle(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            out, err = [await task for task in outputs]
        assert proc.returncode == 0, (out + err).decode()[-3000:]
    output = (out + err).decode()
    for event in (
        "runtime.started",
        "server.started",
        "update.handled",
        "webhook.rejected",
        "postback.rejected",
        "kaboom",
        "Traceback",
    ):
        assert event in output, event
    assert mask_url(url) in output  # the storage URL is shown, its password masked
    for secret in SECRETS:
        assert secret not in output, secret


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("redis://user:p%40ss@h/1?prefix=x:") == "redis://user:***@h/1?prefix=x:"
    assert mask_url("sqlite:///.qbot/qbot.db") == "sqlite:///.qbot/qbot.db"
    assert mask_url("redis://h:6379") == "redis://h:6379"
