"""Forms fill their fields from the entities of one message and ask only for what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webhooks import RecordingDelivery, sdk_body

from qbot import Bot, Context
from qbot.forms import Field, Form, number, regex
from qbot.intents import load_intents

DATA = Path(__file__).parent / "data"


def refund_bot(done: list[dict[str, Any]], tmp_path: Path) -> tuple[Bot, RecordingDelivery]:
    form = Form(
        "refund",
        [
            Field("order", "Which order?", entity="number", validate=regex(r"^\d{3,10}$", "3+")),
            Field("amount", "How much?", entity="money", validate=number(min=1, integer=False)),
            Field("city", "Which city?", entity="city"),
        ],
        confirm=False,
    )

    @form.on_complete
    async def finished(ctx: Context, data: dict[str, Any]) -> None:
        done.append(data)
        await ctx.reply("filed")

    bot = Bot(
        email="bot@example.com", intents=load_intents(DATA / "intents_id.yaml", cache_dir=tmp_path)
    )
    bot.delivery = out = RecordingDelivery()
    bot.include_router(form)

    @bot.message(regex=r"^refund")
    async def start(ctx: Context) -> None:
        await form.start(ctx)

    return bot, out


async def test_forms_one_message_fills_every_field_it_names(tmp_path: Path) -> None:
    done: list[dict[str, Any]] = []
    bot, out = refund_bot(done, tmp_path)
    await bot.feed_update(sdk_body("refund order 123, Rp 50rb", room_id=1))
    assert out.texts == ["Which city?"]  # order and amount came with the first message
    await bot.feed_update(sdk_body("dikirim ke jkt", room_id=1))
    await bot.aclose()
    assert out.texts == ["Which city?", "filed"]
    assert done == [{"order": "123", "amount": 50000.0, "city": "Jakarta"}]


async def test_forms_an_answer_fills_later_fields_too_and_a_refused_entity_is_asked(
    tmp_path: Path,
) -> None:
    done: list[dict[str, Any]] = []
    bot, out = refund_bot(done, tmp_path)
    await bot.feed_update(sdk_body("refund please", room_id=2))
    await bot.feed_update(sdk_body("it is order 98, I paid $12.50 in bdg", room_id=2))
    # 98 has two digits: the order validator refuses it, so only amount and city were taken.
    await bot.feed_update(sdk_body("4567", room_id=2))
    await bot.aclose()
    assert out.texts == ["Which order?", "3+", "Which order?", "filed"]
    assert done == [{"order": "4567", "amount": 12.5, "city": "Bandung"}]
