"""`qbot dev --omnichannel` in a real Chromium: a WhatsApp customer, the agent desk, the survey.

Debian's chromium through Playwright (never a downloaded browser); skipped when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from qbot.emulator.dev import DEV_APP_ID, DevServer, dev_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent"),
]


@pytest_asyncio.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    from bots.demo import bot

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


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_a_whatsapp_customer_is_handed_to_an_agent_then_surveyed(page: Page) -> None:
    await expect(page.locator("#omni-switch")).to_be_checked()  # on with --omnichannel
    await page.select_option("#customer-channel", "wa")
    await page.fill("#customer-email", "6281234@wa.example")
    await page.fill("#customer-name", "Harpi")
    await page.click("#customer-form button[type=submit]")
    await expect(page.locator("#room-title")).to_contain_text("Harpi (wa)")
    bot_says = page.locator(".msg.theirs")

    await say(page, "menu")  # on WhatsApp the menu is numbered text
    await expect(bot_says.last).to_contain_text("1. Track my order")
    await say(page, "1")  # the number works as a tap
    await expect(bot_says.last).to_contain_text("Send me your order number")

    await say(page, "can I talk to a human")
    await expect(bot_says.last).to_contain_text("I'll ask one of our agents")
    desk = page.locator("#desk-rooms")
    await expect(desk).to_contain_text("Harpi · 6281234 · wa · agent: Ayu")  # who, not a room id

    await page.fill("#agent-text", "Hi Harpi, Ayu here. Your parcel left today.")
    await page.click("#agent-form button[type=submit]")
    await expect(bot_says.last).to_contain_text("Ayu here")
    await expect(page.locator("#resolve")).to_be_enabled()
    await page.click("#resolve")
    await expect(desk).to_contain_text("resolved")
    await expect(bot_says.last).to_contain_text("How satisfied are you, from 1 to 5?")
    await expect(page.locator("#resolve")).to_be_disabled()  # the survey goes out once
    # The resolve is an exchange of its own, not filed under the customer's last message.
    resolved = page.locator("#exchanges .exchange").filter(has_text="resolved by Ayu")
    await expect(resolved.locator(".traffic.webhook")).to_have_count(1)
    await expect(resolved.locator(".traffic.api").filter(has_text="/activate")).to_have_count(1)
    await expect(
        resolved.locator(".traffic.api").filter(has_text=f"/{DEV_APP_ID}/bot")
    ).not_to_have_count(0)
    await say(page, "5")
    await expect(bot_says.last).to_contain_text("Thank you for rating us 5 out of 5!")

    api = page.locator("#exchanges .traffic.api")
    await expect(api.filter(has_text=f"/{DEV_APP_ID}/bot").first).to_be_visible()
    await expect(api.filter(has_text="/activate").first).to_be_visible()
    await expect(api.filter(has_text="assign_agent").first).to_be_visible()
