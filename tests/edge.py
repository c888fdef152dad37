"""Helpers for the server-edge tests: the real server on port 0, spoken to over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from qbot import Bot, Context
from qbot.config import Settings, load_settings
from qbot.emulator import Emulator
from qbot.server import create_app, start_server


def edge_settings(fake: Emulator, **sections: Any) -> Settings:
    return load_settings(
        None,
        qiscus={
            "app_id": fake.config.app_id,
            "secret_key": fake.config.secret_key,
            "base_url": fake.base_url,
            "max_attempts": 2,
        },
        bot={"email": "bot@example.com", "name": "Bot"},
        **{"storage": {"url": "memory://"}, **sections},
    )


def echo_bot() -> Bot:
    """Replies ``echo: <text>`` to every text; its error handler replies ``sorry``."""
    bot = Bot("edge")

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"echo: {ctx.text[:40]}")

    @bot.error
    async def on_error(ctx: Context) -> None:
        await ctx.reply("sorry")

    return bot


@asynccontextmanager
async def served_bot(fake: Emulator, bot: Bot | None = None, **sections: Any) -> AsyncIterator[int]:
    """Serve ``bot`` (default :func:`echo_bot`) as ``qbot run`` does, on 127.0.0.1 port 0."""
    settings = edge_settings(fake, **sections)
    runner = await start_server(
        create_app(bot or echo_bot(), settings), settings, host="127.0.0.1", port=0
    )
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response: status, lower-cased headers, body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def raw_post(
    port: int,
    body: bytes,
    *,
    pieces: int = 1,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
    pause: float = 0.0,
    path: str = "/webhook",
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to ``path`` in ``pieces`` separate writes (drained, optionally paused)."""
    status, _, answer = await raw_exchange(
        port, body, pieces=pieces, chunked=chunked, headers=headers, pause=pause, path=path
    )
    return status, answer


async def raw_exchange(
    port: int,
    body: bytes,
    *,
    pieces: int = 1,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
    pause: float = 0.0,
    path: str = "/webhook",
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """:func:`raw_post`, answering the response's (lower-cased) headers too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

        async def send() -> None:
            size = max(1, -(-len(body) // pieces))
            for start in range(0, len(body), size):
                part = body[start : start + size]
                if chunked:
                    part = f"{len(part):x}\r\n".encode() + part + b"\r\n"
                writer.write(part)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

        # The server may answer (413) before the body is all sent: read while writing.
        sending = asyncio.create_task(send())
        try:
            status, answer_headers, text = await read_response(reader)
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sending
        return status, answer_headers, json.loads(text) if text else {}
    finally:
        writer.close()
