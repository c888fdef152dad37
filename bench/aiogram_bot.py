"""The aiogram 3 peer of the end-to-end benchmark: ``bench.qbot_bot``'s handlers on Telegram.

The same choices (greeting, menu, ``order N``, the ``track`` button's tap, a fallback) written
the way aiogram documents them, served by aiogram's own aiohttp webhook handler
(``SimpleRequestHandler``: the 200 at once, the update handled in the background), each reply a
``sendMessage`` to a Bot API server at ``--api`` (the load generator's sink answers like
Telegram's). Logging at aiogram's default (its stdlib loggers unconfigured: warnings only).

    python -m bench.aiogram_bot --port 8001 --api http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse
import logging

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bench.scenario import GREETINGS, ORDER, reply_text

TOKEN = "123456:bench-token-never-used"


class Normalized(Filter):
    """The message text, whitespace collapsed and case folded, is one of ``texts`` (as qbot's
    ``text=`` matches). A ``Filter`` subclass: aiogram 3.31 runs a plain callable filter on a
    thread (``asyncio.to_thread``), which is not how one would write a fast bot."""

    def __init__(self, *texts: str) -> None:
        self.texts = frozenset(texts)

    async def __call__(self, message: Message) -> bool:
        return " ".join((message.text or "").split()).casefold() in self.texts


class Order(Filter):
    """``order N``: passes the number to the handler as ``number``."""

    async def __call__(self, message: Message) -> bool | dict[str, str]:
        match = ORDER.search(message.text or "")
        return {"number": match.group(1)} if match else False


class Tapped(Filter):
    """The callback data is ``data`` (what ``F.data == data`` checks, without a thread)."""

    def __init__(self, data: str) -> None:
        self.data = data

    async def __call__(self, query: CallbackQuery) -> bool:
        return query.data == self.data


def router() -> Router:
    r = Router()

    @r.message(Normalized(*GREETINGS))
    async def greet(message: Message) -> None:
        name = message.from_user.first_name if message.from_user else ""
        await message.answer(reply_text("greet", message.message_id, name))

    @r.message(Normalized("menu"))
    async def menu(message: Message) -> None:
        await message.answer(reply_text("menu", message.message_id))

    @r.message(Order())
    async def order(message: Message, number: str) -> None:
        await message.answer(reply_text("order", message.message_id, number=number))

    @r.callback_query(Tapped("track"))
    async def track(query: CallbackQuery) -> None:
        shown = query.message
        if shown is not None:
            await shown.answer(reply_text("track", shown.message_id))

    @r.message()
    async def fallback(message: Message) -> None:
        await message.answer(reply_text("fallback", message.message_id))

    return r


def app(api: str) -> web.Application:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api))
    bot = Bot(TOKEN, session=session)
    dp = Dispatcher()
    dp.include_router(router())
    application = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot).register(application, path="/webhook")
    setup_application(application, dp, bot=bot)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    application.router.add_get("/healthz", healthz)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api", required=True, help="the Bot API server's base URL (the sink)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(app(args.api), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
