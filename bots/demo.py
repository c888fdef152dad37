"""A small customer-service bot: the example the README walks through.

Run it against the local emulator with ``make dev``, or against Qiscus with
``qbot run bots.demo:bot --config config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bots.complaint import router as complaint_router
from qbot import AccountLinking, Bot, Buttons, Card, Carousel, Context

HERE = Path(__file__).parent

bot = Bot("demo", intents=HERE / "intents.yaml", templates=HERE.parent / "templates")
bot.include_router(complaint_router)

# A stand-in for the shop's order system.
ORDERS = {
    "123": {"number": "123", "item": "Batik shirt", "status": "on its way", "eta": "tomorrow"},
    "456": {"number": "456", "item": "Rice cooker", "status": "delivered", "eta": None},
}
ASK_ORDER_NUMBER = "Send me your order number, e.g. 'order 123'"


def picture(ctx: Context, name: str) -> str:
    """A card's picture: the copy the local emulator serves (``qbot dev`` works offline), else a
    public one. Pictures must be public http(s) URLs the customer's phone can load."""
    base = ctx.client.base_url
    if urlsplit(base).hostname in ("127.0.0.1", "localhost", "::1"):
        return f"{base}/emulator/static/demo/{name}.svg"
    return f"https://picsum.photos/seed/{name}/400/200"


@bot.message(text=["hi", "hello", "halo", "start"])
async def greet(ctx: Context) -> None:
    await ctx.reply(f"Hello {ctx.sender.name or 'there'}! Type 'menu' to see what I can do.")


@bot.message(text="menu")
async def menu(ctx: Context) -> None:
    await ctx.reply(
        Buttons("How can I help?")
        .postback("Track my order", action="track")
        .postback("Today's deals", action="deals")
        .postback("Link my account", action="link_account")
        .link("Help centre", "https://example.com/help")
        .postback("File a complaint", action="complaint")
    )


@bot.postback(action="track")
async def track(ctx: Context) -> None:
    number = (ctx.postback.data or {}).get("number") if ctx.postback else None
    if number in ORDERS:
        await ctx.reply_template("order_status", order=ORDERS[number])
        return
    await ctx.reply(ASK_ORDER_NUMBER)


@bot.intent("order_status")
async def where_is_my_order(ctx: Context) -> None:
    # "Track my order" typed rather than tapped, "where is my order", "di mana pesanan saya".
    await ctx.reply(ASK_ORDER_NUMBER)


@bot.message(regex=r"^order\s*#?(\d+)$")
async def order_status(ctx: Context) -> None:
    number = ctx.match.group(1) if ctx.match else ""
    order = ORDERS.get(number)
    if order is None:
        await ctx.reply(
            f"I can't find order #{number}. Check the number and try again.", quote=True
        )
        return
    await ctx.reply_template("order_card", order=order, picture=picture(ctx, "parcel"))


@bot.postback(action="deals")
async def deals(ctx: Context) -> None:
    await ctx.reply(
        Carousel(
            [
                Card(
                    title="Batik shirt",
                    description="Rp 149.000 · 20% off",
                    image_url=picture(ctx, "batik"),
                    url="https://example.com/deals/batik",
                ).postback("Add to cart", action="add_to_cart", data={"sku": "batik"}),
                Card(
                    title="Rice cooker",
                    description="Rp 399.000 · free delivery",
                    image_url=picture(ctx, "rice-cooker"),
                    url="https://example.com/deals/rice-cooker",
                ).postback("Add to cart", action="add_to_cart", data={"sku": "rice-cooker"}),
            ]
        )
    )


@bot.postback(action="add_to_cart")
async def add_to_cart(ctx: Context) -> None:
    sku = (ctx.postback.data or {}).get("sku", "?") if ctx.postback else "?"
    await ctx.reply(f"Added {sku} to your cart.")


@bot.postback(action="link_account")
async def link_account(ctx: Context) -> None:
    await ctx.reply(
        AccountLinking(
            text="Log in so I can see your orders.",
            url="https://example.com/login",
            redirect_url="https://example.com/login/done",
            button_text="Log in",
            view_title="Example Shop",
            success_message="Your account is linked.",
        )
    )


@bot.intent("refund")
async def refund(ctx: Context) -> None:
    await ctx.reply(
        "I can help with a refund. Which order is it about? (e.g. 'order 123')", quote=True
    )


@bot.intent("opening_hours")
async def opening_hours(ctx: Context) -> None:
    await ctx.reply("Our customer service is open every day, 08:00-22:00 WIB.")


@bot.intent("talk_to_human")
async def talk_to_human(ctx: Context) -> None:
    await ctx.reply("I'll ask one of our agents to join this chat.")
    # On Omnichannel: bot off, the least busy available agent of "support" assigned.
    await ctx.handoff("customer asked for a human", division="support")


# The survey's answers: a label says what the score means (on WhatsApp, "1. 1 - Very poor").
RATINGS = {1: "Very poor", 2: "Poor", 3: "Okay", 4: "Good", 5: "Excellent"}


@bot.on_resolved
async def satisfaction_survey(ctx: Context) -> None:
    survey = Buttons("Thanks for chatting with us! How satisfied are you, from 1 to 5?")
    for score, meaning in RATINGS.items():
        survey.postback(f"{score} - {meaning}", action="rate", data={"score": score})
    await ctx.reply(survey)


@bot.postback(action="rate")
async def rate(ctx: Context) -> None:
    score = (ctx.postback.data or {}).get("score") if ctx.postback else None
    await ctx.reply(f"Thank you for rating us {score} out of 5!")


@bot.event("add_member")
async def welcome_member(ctx: Context) -> None:
    await ctx.reply("Welcome! Type 'menu' to see what I can do.")


@bot.fallback
async def fallback(ctx: Context) -> None:
    await ctx.reply("Sorry, I didn't get that. Type 'menu' to see what I can do.")


@bot.error
async def on_error(ctx: Context) -> None:
    ctx.log.error("demo.failed", error=repr(ctx.error))
    await ctx.reply("Something went wrong on our side. Please try again in a moment.")
