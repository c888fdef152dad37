"""The qbot side of the end-to-end benchmark: served with ``qbot run bench.qbot_bot:bot``."""

from __future__ import annotations

from bench.scenario import ORDER, reply_text
from qbot import Bot, Context

bot = Bot("bench")


@bot.message(text=["hi", "hello"])
async def greet(ctx: Context) -> None:
    await ctx.reply(reply_text("greet", ctx.message.id or "", ctx.sender.name))


@bot.message(text="menu")
async def menu(ctx: Context) -> None:
    await ctx.reply(reply_text("menu", ctx.message.id or ""))


@bot.message(regex=ORDER)
async def order(ctx: Context) -> None:
    number = ctx.match.group(1) if ctx.match else ""
    await ctx.reply(reply_text("order", ctx.message.id or "", number=number))


@bot.postback(action="track")
async def track(ctx: Context) -> None:
    await ctx.reply(reply_text("track", ctx.message.id or ""))


@bot.fallback
async def fallback(ctx: Context) -> None:
    await ctx.reply(reply_text("fallback", ctx.message.id or ""))
