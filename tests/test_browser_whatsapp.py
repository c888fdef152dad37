"""`qbot dev --omnichannel` in a real Chromium: skip ahead 25 emulated hours, a reminder
template arrives as WhatsApp shows it, and a tap on its quick reply reaches @bot.postback.

Debian's chromium through Playwright (never a downloaded browser); skipped when it is absent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from qbot import Bot, Context
from qbot.emulator.dev import DevServer, dev_settings
from qbot.omnichannel.templates import QuickReply

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent"),
]


def reminder_bot() -> Bot:
    bot = Bot("reminders")
    tasks: set[asyncio.Task[None]] = set()

    async def remind_later(room_id: str) -> None:
        await bot.dispatcher.clock.sleep(24 * 3600 + 60)  # past WhatsApp's window
        await bot.send_template(
            room_id,
            "followup_check",
            variables=["Harpi"],
            buttons=[
                QuickReply("Sudah", action="solved"),
                QuickReply("Belum", action="unsolved"),
            ],
        )

    @bot.message(text="remind me tomorrow")
    async def remind(ctx: Context) -> None:
        task = asyncio.create_task(remind_later(str(ctx.room.id)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await ctx.reply("I will check on you tomorrow.")

    @bot.postback(action="solved")
    async def solved(ctx: Context) -> None:
        await ctx.reply("Senang mendengarnya!")

    @bot.postback(action="unsolved")
    async def unsolved(ctx: Context) -> None:
        await ctx.reply("Maaf, seorang agen akan membantu.")

    return bot


@pytest_asyncio.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    bot = reminder_bot()
    server = DevServer(
        dev_settings(None, bot.name, storage={"url": "memory://"}),
        bot,
        port=0,
        db=str(tmp_path / "emulator.sqlite3"),
        omnichannel=True,
    )
    url = await server.start()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = await browser.new_context()
            await context.route(
                "**/*",
                lambda route: (
                    route.continue_() if "127.0.0.1" in route.request.url else route.abort()
                ),
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url)
            await expect(page.locator("#conn")).to_have_text("live")
            yield page
            assert errors == []
            await browser.close()
    finally:
        await server.stop()


async def test_skip_ahead_brings_the_reminder_template_and_its_quick_reply_is_a_tap(
    page: Page,
) -> None:
    await page.select_option("#customer-channel", "wa")
    await page.fill("#customer-email", "+62 812-3456-7890")
    await page.fill("#customer-name", "Harpi")
    await page.click("#customer-form button[type=submit]")
    await expect(page.locator("#room-title")).to_contain_text("Harpi (wa)")
    await expect(page.locator("#clock-now")).to_contain_text("emulated")
    await expect(page.locator("#clock-now")).not_to_contain_text("+")

    await page.fill("#text", "remind me tomorrow")
    await page.press("#text", "Enter")
    bot_says = page.locator(".msg.theirs")
    await expect(bot_says.last).to_contain_text("I will check on you tomorrow.")

    await page.click("#skip-1h")
    await expect(page.locator("#clock-now")).to_contain_text("(+1 h)")
    await expect(page.locator(".wa-template")).to_have_count(0)  # not due yet
    await page.click("#skip-25h")
    await expect(page.locator("#clock-now")).to_contain_text("(+26 h)")

    template = page.locator(".wa-template").last
    await expect(template).to_be_visible()
    await expect(template).to_have_attribute("data-template", "followup_check")
    await expect(template).to_contain_text("Halo Harpi, apakah kendala Anda sudah teratasi?")
    await expect(template.locator(".btn.quick-reply")).to_have_text(
        ["Sudah", "Belum", "Bicara dengan agen"]
    )
    await template.locator(".btn.quick-reply", has_text="Sudah").click()
    await expect(page.locator(".msg.mine").last).to_contain_text("Sudah")  # the tap is text
    await expect(bot_says.last).to_contain_text("Senang mendengarnya!")
