"""The baseline: a hand-written aiohttp bot doing the same minimal work as the qbot bench bot.

Parse the JSON body, drop redeliveries, match (exact text, regex, postback action), answer 200 at
once and reply in the background through one pooled session. No logging, no models, no retries.

    python -m bench.bare_bot --port 8001 --base-url http://127.0.0.1:8002

Options add, one at a time, what qbot's contract makes every message pay, still hand-written
around them (no routing, context, runtime or sender): the end-to-end part measures each step of
that ladder against the bare bot, which is where a framework keeping the contract tops out.

- ``--models``: the webhook read into qbot's typed ``Update`` (what a handler's ``ctx`` holds),
  and Qiscus's answer into its ``Comment`` (what ``ctx.reply`` returns).
- ``--log``: qbot's default logging (JSON lines to stderr at info), one ``update.handled`` line
  per message, with its room and message bound as qbot binds them.
- ``--storage URL``: qbot's durable path on that storage: the webhook stored in the inbox (deduped
  there) before the 200, claimed by a claim loop, its reply recorded sent in the outbox once
  Qiscus accepted it, then the item acked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from bench.scenario import APP_ID, BOT_EMAIL, GREETINGS, ORDER, SECRET_KEY, reply_text
from qbot.log import configure_logging
from qbot.models.api import Comment
from qbot.models.webhook import Update
from qbot.storage import InboxItem, JSONText, OutboxItem, Storage, open_storage

SESSION = web.AppKey("session", aiohttp.ClientSession)
DEDUPE_TTL = 600.0


def route(mid: Any, kind: str | None, text: str, payload: Any, name: str) -> str:
    """The reply text for one comment: the same choices as ``bench.qbot_bot``."""
    mid = mid or ""
    if kind == "button_postback_response":
        inner = (payload or {}).get("payload") or {}
        if inner.get("a") == "track":
            return reply_text("track", mid)
        return reply_text("fallback", mid)
    key = " ".join(text.split()).casefold()
    if key in GREETINGS:
        return reply_text("greet", mid, name)
    if key == "menu":
        return reply_text("menu", mid)
    match = ORDER.search(text)
    if match:
        return reply_text("order", mid, number=match.group(1))
    return reply_text("fallback", mid)


@dataclass(frozen=True)
class Extras:
    """Which of qbot's per-message costs the bare bot pays too (see the module docstring)."""

    models: bool = False
    log: bool = False
    storage: str | None = None


@dataclass
class Message:
    """What routing and replying need of one webhook, read from a dict or from the models."""

    room: Any
    mid: Any
    identity: str
    kind: str | None
    text: str
    payload: Any
    name: str
    sender: str

    @classmethod
    def from_body(cls, body: bytes, models: bool) -> Message:
        """Read ``body``; raises ValueError/KeyError/TypeError when it is not a webhook."""
        if models:
            update = Update.model_validate_json(body)
            m = update.message
            return cls(
                update.room.id, m.id, f"{update.room.id}:{m.identity}", m.type, m.text,
                m.payload, update.sender.name, update.sender.email,
            )  # fmt: skip
        data = json.loads(body)["payload"]
        room, message, sender = data["room"], data["message"], data["from"]
        return cls(
            room["id"], message.get("id"), f"{room['id']}:{message.get('id')}",
            message.get("type"), message.get("text") or "", message.get("payload"),
            sender.get("name", ""), sender.get("email"),
        )  # fmt: skip


def create_app(base_url: str, extras: Extras | None = None) -> web.Application:
    extras = extras or Extras()
    seen: OrderedDict[str, float] = OrderedDict()
    tasks: set[asyncio.Task[None]] = set()
    url = base_url.rstrip("/") + "/api/v2/rest/post_comment"
    headers = {"QISCUS-SDK-APP-ID": APP_ID, "QISCUS-SDK-SECRET": SECRET_KEY}
    log = structlog.get_logger("bare")
    owner = f"bare-{uuid.uuid4().hex}"
    storage: Storage | None = open_storage(extras.storage) if extras.storage else None
    claimed: dict[str, Message] = {}  # stored by this process: no need to read them back

    async def reply(session: aiohttp.ClientSession, msg: Message) -> None:
        body = {
            "sender_email": BOT_EMAIL,
            "room_id": msg.room,
            "message": route(msg.mid, msg.kind, msg.text, msg.payload, msg.name),
            "type": "text",
            "unique_temp_id": f"bare-{uuid.uuid4().hex}",
            "disable_link_preview": False,
        }
        async with session.post(url, json=body, headers=headers) as resp:
            answer = json.loads(await resp.read())
        if extras.models:
            Comment.model_validate(answer["results"]["comment"])
        if storage is not None:
            record = OutboxItem(body["unique_temp_id"], str(msg.room), body, status="sent")
            await storage.commit(outbox=[record])

    async def handle(session: aiohttp.ClientSession, msg: Message, item: InboxItem | None) -> None:
        tokens: Mapping[str, contextvars.Token[Any]] = {}
        if extras.log:
            tokens = structlog.contextvars.bind_contextvars(
                room_id=str(msg.room), message_id=msg.identity
            )
        try:
            await reply(session, msg)
            if storage is not None and item is not None:
                await storage.commit(owner=owner, ack=[item])
            if extras.log:
                log.info("update.handled", handler="route")
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    def start(session: aiohttp.ClientSession, msg: Message, item: InboxItem | None) -> None:
        task = asyncio.create_task(handle(session, msg, item))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def claim_loop(session: aiohttp.ClientSession) -> None:
        assert storage is not None
        while True:
            items = (await storage.inbox_claim(owner, lease_ttl=30.0, limit=1000)).items
            if not items:
                await storage.inbox_wait(1.0)
            for item in items:
                msg = claimed.pop(item.id, None)
                if msg is None:
                    msg = Message.from_body(json.dumps(item.payload).encode(), extras.models)
                start(session, msg, item)

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            msg = Message.from_body(raw, extras.models)
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "not a webhook"}, status=400)
        if msg.sender == BOT_EMAIL:
            return web.json_response({"status": "ignored"})
        if storage is not None:
            room = str(msg.room)
            item = await storage.inbox_put(
                room, JSONText(raw.decode()), dedupe_key=msg.identity, dedupe_ttl=DEDUPE_TTL
            )
            if item is None:
                return web.json_response({"status": "duplicate"})
            claimed[item.id] = msg
            return web.json_response({"status": "accepted"})
        now = time.monotonic()
        while seen and next(iter(seen.values())) <= now:
            seen.popitem(last=False)
        if msg.identity in seen:
            return web.json_response({"status": "duplicate"})
        seen[msg.identity] = now + DEDUPE_TTL
        start(request.app[SESSION], msg, None)
        return web.json_response({"status": "accepted"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if extras.log:
            configure_logging("info", "json")
        session = app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        loop_task = None
        if storage is not None:
            await storage.open()
            loop_task = asyncio.create_task(claim_loop(session))
        yield
        if loop_task is not None:
            loop_task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await session.close()
        if storage is not None:
            await storage.close()

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(lifecycle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base-url", required=True, help="where replies are posted (the sink)")
    parser.add_argument("--models", action="store_true", help="read webhooks into qbot's models")
    parser.add_argument("--log", action="store_true", help="one info line per message")
    parser.add_argument("--storage", help="qbot storage URL for the durable path")
    args = parser.parse_args()
    extras = Extras(models=args.models, log=args.log, storage=args.storage)
    web.run_app(
        create_app(args.base_url, extras),
        host="127.0.0.1",
        port=args.port,
        print=lambda _: None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
