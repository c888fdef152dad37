"""Part 4, peer: aiogram 3's dispatcher against qbot's core, same handlers, same updates.

Both sides get raw dicts (JSON already decoded) and parse them with their own models, route
through H handlers (half exact-text message filters, half callback/postback filters) and call a
handler that does nothing. No network on either side; logging at each library's quiet default
(aiogram's stdlib logging is unconfigured, so its info lines are dropped; qbot logs at warning).

aiogram's filters here are ``Filter`` subclasses (async, like its built-in ``Command``): aiogram
3.31 runs a plain callable filter, ``F.text == ...`` included, through ``asyncio.to_thread``,
which would make it some 40 times slower and the comparison meaningless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot as AiogramBot
from aiogram import Dispatcher, Router
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bench._inproc import offline, per_second, quiet_logging
from bench.scenario import webhook
from qbot import Bot, Context
from qbot.models.webhook import Update

SIZES = (10, 100, 1_000)


class TextIs(Filter):
    """The message text equals ``text`` (what ``F.text == text`` checks, without a thread)."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def __call__(self, message: Message) -> bool:
        return message.text == self.text


class DataIs(Filter):
    """The callback data equals ``data``."""

    def __init__(self, data: str) -> None:
        self.data = data

    async def __call__(self, query: CallbackQuery) -> bool:
        return query.data == self.data


def _aiogram(n: int) -> tuple[Dispatcher, AiogramBot]:
    router = Router()

    async def on_message(message: Message) -> None:
        return None

    async def on_callback(query: CallbackQuery) -> None:
        return None

    for i in range(n // 2):
        router.message(TextIs(f"command {i}"))(on_message)
        router.callback_query(DataIs(f"action{i}"))(on_callback)
    dp = Dispatcher()
    dp.include_router(router)
    return dp, AiogramBot("123456:bench-token-never-used")


def _qbot(n: int) -> Bot:
    bot = Bot("peer")

    async def handler(ctx: Context) -> None:
        return None

    for i in range(n // 2):
        bot.message(text=f"command {i}")(handler)
        bot.postback(action=f"action{i}")(handler)
    return offline(bot)


def _updates(n: int, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same ``count`` events for both: texts and taps spread over the handlers."""
    telegram, qiscus = [], []
    for j in range(count):
        i = (j * 7919) % (n // 2)
        user = {"id": 100 + j % 50, "is_bot": False, "first_name": "User"}
        chat = {"id": 100 + j % 50, "type": "private"}
        body = webhook(j, 50)
        message = body["payload"]["message"]
        if j % 2 == 0:
            text = f"command {i}"
            telegram.append(
                {"update_id": j, "message": {"message_id": j, "date": 1752212797,
                                             "chat": chat, "from": user, "text": text}}
            )  # fmt: skip
            message.update(type="text", text=text, payload={})
        else:
            action = f"action{i}"
            telegram.append(
                {"update_id": j, "callback_query": {
                    "id": str(j), "from": user, "chat_instance": "bench", "data": action,
                    "message": {"message_id": j, "date": 1752212797, "chat": chat, "text": "?"}}}
            )  # fmt: skip
            payload = {"url": "", "method": "", "payload": {"qbot": 1, "a": action}}
            message.update(type="button_postback_response", text="Tap", payload=payload)
        qiscus.append(body)
    return telegram, qiscus


async def _measure(n: int, count: int) -> dict[str, float]:
    dp, tg_bot = _aiogram(n)
    bot = _qbot(n)
    telegram, qiscus = _updates(n, count)

    async def feed_aiogram(update: dict[str, Any]) -> None:
        await dp.feed_raw_update(tg_bot, update)

    # The core as aiogram's feed_raw_update is one: parse, route, handle (the inbox and dedupe
    # of bot.feed_update have no counterpart there, and these bodies repeat).
    await bot.open()

    async def feed_qbot(body: dict[str, Any]) -> None:
        await bot.dispatcher.process(Update.model_validate(body))

    # Warm up, then alternate and keep each side's best: the machine's noise hits both alike.
    await per_second(telegram[:200], feed_aiogram)
    await per_second(qiscus[:200], feed_qbot)
    best = {"aiogram": 0.0, "qbot": 0.0}
    for _ in range(2):
        best["aiogram"] = max(best["aiogram"], await per_second(telegram, feed_aiogram))
        best["qbot"] = max(best["qbot"], await per_second(qiscus, feed_qbot))
    await tg_bot.session.close()
    return {"handlers": n, "aiogram_per_s": best["aiogram"], "qbot_per_s": best["qbot"]}


def run(count: int = 4_000) -> list[dict[str, float]]:
    quiet_logging()
    logging.getLogger("aiogram").setLevel(logging.WARNING)
    return [asyncio.run(_measure(n, count)) for n in SIZES]


if __name__ == "__main__":
    for row in run():
        print(row)
