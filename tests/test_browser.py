"""The chat page in a real Chromium, against `qbot dev` serving the demo bot.

Debian's chromium through Playwright (never a downloaded browser); skipped when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from qbot.emulator.dev import DevServer, dev_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (make browser installs it)"
    ),
]


@pytest_asyncio.fixture
async def dev_url(tmp_path: Path) -> AsyncIterator[str]:
    from bots.demo import bot

    server = DevServer(
        dev_settings(None, bot.name, storage={"url": "memory://"}),
        bot,
        port=0,
        db=str(tmp_path / "emulator.sqlite3"),
    )
    url = await server.start()
    yield url
    await server.stop()


@pytest_asyncio.fixture
async def page(dev_url: str) -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context()
        # Cards link pictures on the internet; the test stays on 127.0.0.1.
        await context.route(
            "**/*",
            lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort(),
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(dev_url)
        # The page is set up (a first visit also creates a customer and a chat) once it is live.
        await expect(page.locator("#conn")).to_have_text("live")
        yield page
        assert errors == []
        await browser.close()


async def test_first_visit_opens_a_chat_with_the_bot_ready_to_type(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_text("live")
    await expect(page.locator("#user-select")).to_have_value("ana@example.com")
    await expect(page.locator("#text")).to_be_enabled()
    await page.fill("#text", "hello")
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.theirs").last).to_contain_text("Hello Ana!")


async def test_chat_with_the_demo_bot_in_chromium(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_text("live")
    await page.fill("#user-email", "ana@example.com")
    await page.fill("#user-name", "Ana")
    await page.click("#user-form button[type=submit]")
    await page.click("#chat-with-bot")
    await expect(page.locator("#member-form")).to_be_hidden()  # only groups take members

    await page.fill("#text", "hi")
    await page.press("#text", "Enter")
    bot_says = page.locator(".msg.theirs")
    await expect(bot_says.last).to_contain_text("Hello Ana! Type 'menu' to see what I can do.")

    await page.fill("#text", "menu")
    await page.press("#text", "Enter")
    await expect(page.locator("button.postback", has_text="Today's deals")).to_be_visible()
    help_link = page.locator("a.btn.link", has_text="Help centre")
    await expect(help_link).to_have_attribute("href", "https://example.com/help")
    await expect(help_link).to_have_attribute("target", "_blank")

    await page.click("button.postback >> text=Today's deals")
    cards = page.locator(".carousel .card-title")
    await expect(cards).to_have_text(["Batik shirt", "Rice cooker"])
    await page.locator(".carousel button.postback").first.click()
    await expect(bot_says.last).to_contain_text("Added batik to your cart.")
    # The tap itself shows as the user's message, with the button's label.
    await expect(page.locator(".msg.mine", has_text="Add to cart")).to_have_count(1)

    inspector = page.locator("#exchanges")
    await expect(inspector.locator(".traffic.webhook").first).to_contain_text("post_comment_mobile")
    await expect(inspector.locator(".traffic.api").first).to_contain_text(
        "/api/v2/rest/post_comment"
    )


async def test_chat_text_is_never_rendered_as_html(page: Page) -> None:
    await page.fill("#user-email", "eve@example.com")
    await page.click("#user-form button[type=submit]")
    await page.click("#chat-with-bot")
    await page.fill("#text", "<img src=x id=pwned> see https://example.com/a")
    await page.press("#text", "Enter")
    mine = page.locator(".msg.mine").last
    await expect(mine).to_contain_text("<img src=x id=pwned>")
    await expect(page.locator("#pwned")).to_have_count(0)
    await expect(mine.locator("a")).to_have_attribute("href", "https://example.com/a")
    # The demo bot's fallback answers; the page keeps working.
    await expect(page.locator(".msg.theirs").last).to_contain_text("Sorry, I didn't get that")


async def test_group_member_added_on_the_page_gets_the_bots_welcome(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_text("live")  # the first-visit chat is set up
    for email in ("bo@example.com", "cy@example.com"):
        await page.fill("#user-email", email)
        await page.click("#user-form button[type=submit]")
        await expect(page.locator("#user-select")).to_have_value(email)
    await page.fill("#group-name", "Family")
    await page.click("#group-form button[type=submit]")
    await expect(page.locator(".system").first).to_have_text("cy created room 'Family'")
    await page.fill("#member-email", "bo@example.com")
    await page.click("#member-form button[type=submit]")
    await expect(page.locator(".system").last).to_have_text("cy added bo")
    await expect(page.locator(".msg.theirs").last).to_contain_text("Welcome!")
