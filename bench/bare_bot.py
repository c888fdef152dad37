"""The baseline: a hand-written aiohttp bot doing the same minimal work as the qbot bench bot.

Parse the JSON body, drop redeliveries, match (exact text, regex, postback action), answer 200 at
once and reply in the background through one pooled session. No logging, no models, no retries.

    python -m bench.bare_bot --port 8001 --base-url http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from bench.scenario import APP_ID, BOT_EMAIL, GREETINGS, ORDER, SECRET_KEY, reply_text

SESSION = web.AppKey("session", aiohttp.ClientSession)
DEDUPE_TTL = 600.0


def route(message: dict[str, Any], sender: dict[str, Any]) -> str:
    """The reply text for one comment: the same choices as ``bench.qbot_bot``."""
    mid = message.get("id") or ""
    if message.get("type") == "button_postback_response":
        inner = (message.get("payload") or {}).get("payload") or {}
        if inner.get("a") == "track":
            return reply_text("track", mid)
        return reply_text("fallback", mid)
    text = message.get("text") or ""
    key = " ".join(text.split()).casefold()
    if key in GREETINGS:
        return reply_text("greet", mid, sender.get("name", ""))
    if key == "menu":
        return reply_text("menu", mid)
    match = ORDER.search(text)
    if match:
        return reply_text("order", mid, number=match.group(1))
    return reply_text("fallback", mid)


def create_app(base_url: str) -> web.Application:
    seen: OrderedDict[str, float] = OrderedDict()
    tasks: set[asyncio.Task[None]] = set()
    url = base_url.rstrip("/") + "/api/v2/rest/post_comment"
    headers = {"QISCUS-SDK-APP-ID": APP_ID, "QISCUS-SDK-SECRET": SECRET_KEY}

    async def reply(session: aiohttp.ClientSession, room_id: Any, text: str) -> None:
        body = {
            "sender_email": BOT_EMAIL,
            "room_id": room_id,
            "message": text,
            "type": "text",
            "unique_temp_id": f"bare-{uuid.uuid4().hex}",
            "disable_link_preview": False,
        }
        async with session.post(url, json=body, headers=headers) as resp:
            json.loads(await resp.read())

    async def webhook(request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
            payload = data["payload"]
            room, message, sender = payload["room"], payload["message"], payload["from"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "not a webhook"}, status=400)
        if sender.get("email") == BOT_EMAIL:
            return web.json_response({"status": "ignored"})
        now = time.monotonic()
        while seen and next(iter(seen.values())) <= now:
            seen.popitem(last=False)
        key = f"{room['id']}:{message.get('id')}"
        if key in seen:
            return web.json_response({"status": "duplicate"})
        seen[key] = now + DEDUPE_TTL
        task = asyncio.create_task(reply(request.app[SESSION], room["id"], route(message, sender)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.json_response({"status": "accepted"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        yield
        if tasks:
            await asyncio.wait(tasks)
        await app[SESSION].close()

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(lifecycle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base-url", required=True, help="where replies are posted (the sink)")
    args = parser.parse_args()
    web.run_app(
        create_app(args.base_url),
        host="127.0.0.1",
        port=args.port,
        print=lambda _: None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
