"""The chat page in a real Chromium, against `qbot dev` serving the demo bot.

Debian's chromium through Playwright (never a downloaded browser); skipped when it is absent.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, Route, async_playwright, expect

from qbot.emulator.dev import DevServer, dev_settings

CHROMIUM = "/usr/bin/chromium"
# Screenshots of each size the page is tested at (gitignored), for a look after a run.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
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


@contextlib.asynccontextmanager
async def open_page(url: str, width: int = 1280, height: int = 720) -> AsyncIterator[Page]:
    """The chat page in a fresh browser at ``width`` x ``height``, live; no page errors after."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": width, "height": height})
        # Nothing may leave 127.0.0.1: the page must work offline.
        outside: list[str] = []

        async def local_only(route: Route) -> None:
            if route.request.url.startswith("http://127.0.0.1"):
                await route.continue_()
            else:
                outside.append(route.request.url)
                await route.abort()

        await context.route("**/*", local_only)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(url)
        # The page is set up (a first visit also creates a customer and a chat) once it is live.
        await expect(page.locator("#conn")).to_have_text("live")
        yield page
        assert errors == []
        assert outside == []
        await browser.close()


@pytest_asyncio.fixture
async def page(dev_url: str) -> AsyncIterator[Page]:
    async with open_page(dev_url) as page:
        yield page


async def test_first_visit_opens_a_chat_with_the_bot_ready_to_type(page: Page) -> None:
    await expect(page.locator("#conn")).to_have_text("live")
    await expect(page.locator("#user-select")).to_have_value("ana@example.com")
    await expect(page.locator("#text")).to_be_enabled()
    await page.fill("#text", "hello")
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.theirs").last).to_contain_text("Hello Ana!")


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 800), (390, 844)], ids=["desktop", "phone-390"]
)
async def test_a_later_visit_opens_the_first_customers_chat_with_the_bot(
    dev_url: str, width: int, height: int
) -> None:
    async with open_page(dev_url) as first:  # creates Ana and her chat
        await expect(first.locator("#text")).to_be_enabled()
    # A new browser (or the next day): the emulator kept its users, the browser knows none.
    async with open_page(dev_url, width, height) as page:
        await expect(page.locator("#user-select")).to_have_value("ana@example.com")
        await expect(page.locator("#room-title")).not_to_contain_text("Pick")
        await expect(page.locator("#send")).to_be_enabled()
        await page.fill("#text", "hello")
        await page.press("#text", "Enter")
        await expect(page.locator(".msg.theirs").last).to_contain_text("Hello Ana!")
        users = await page.locator("#user-select option").count()
        assert users == 2, "the placeholder and Ana: no second Ana was created"


async def test_a_cards_open_link_is_styled_not_the_browser_default(page: Page) -> None:
    await page.fill("#text", "menu")
    await page.press("#text", "Enter")
    await page.click("button.postback >> text=Today's deals")
    link = page.locator(".card a.card-url").first
    await expect(link).to_have_attribute("href", "https://example.com/deals/batik")
    style = await link.evaluate(
        "a => [getComputedStyle(a).color, getComputedStyle(a).textDecorationLine]"
    )
    assert style == ["rgb(11, 122, 90)", "none"], f"not the accent, or the browser's blue: {style}"


async def test_the_omnichannel_switch_sits_beside_its_label(page: Page) -> None:
    box = await page.locator("#omni-switch").bounding_box()
    label = await page.locator("#omni h2 label").bounding_box()
    assert box is not None and label is not None
    assert box["width"] < 30, f"the checkbox is {box['width']} px wide"
    assert label["height"] < 2 * box["height"] + 8, f"checkbox and label on two lines: {label}"


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
    await expect(page.locator("#room-title")).to_have_text("Family (group, 3)")
    await expect(page.locator(".msg.theirs").last).to_contain_text("Welcome!")


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 800), (390, 844)], ids=["desktop", "phone-390"]
)
async def test_chat_page_fits_the_screen_with_send_in_reach(
    dev_url: str, width: int, height: int, request: pytest.FixtureRequest
) -> None:
    async with open_page(dev_url, width, height) as page:
        await page.fill("#text", "menu")
        await page.press("#text", "Enter")
        await page.click("button.postback >> text=Today's deals")  # a carousel: the widest reply
        await expect(page.locator(".carousel .card")).to_have_count(2)
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.callspec.id
        await page.screenshot(path=ARTIFACTS / f"chat-{name}.png")
        await page.screenshot(path=ARTIFACTS / f"chat-{name}-full.png", full_page=True)

        page_width = await page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= width, f"the page is {page_width} px wide on a {width} px screen"
        send = await page.locator("#send").bounding_box()
        assert send is not None
        assert send["x"] >= 0 and send["x"] + send["width"] <= width, send
        assert send["y"] + send["height"] <= height, f"Send is below the first screen: {send}"
        chat = await page.locator(".chat").bounding_box()
        assert chat is not None
        assert chat["width"] >= min(width, 1280) * 0.4, f"the chat column is {chat['width']} px"
        if width < 640:
            assert chat["width"] >= width - 1, f"a phone shows the chat full width: {chat}"
        text = await page.locator("#text").bounding_box()
        assert text is not None and text["width"] >= 0.5 * min(width, 640), text
        # The carousel scrolls inside its message; it never widens the page.
        cards = page.locator(".carousel .card")
        first = await cards.first.bounding_box()
        assert first is not None and first["x"] + first["width"] <= width, first


async def test_page_falls_back_to_an_emoji_font(page: Page) -> None:
    family = await page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Color Emoji" in family and "Apple Color Emoji" in family, family


async def test_send_error_shows_by_the_composer_and_keeps_the_text(page: Page) -> None:
    async def refuse(route: Route) -> None:
        await route.fulfill(status=409, json={"error": "room is closed"})

    await page.route("**/emulator/api/rooms/*/messages", refuse)
    await page.fill("#text", "where is my order?")
    await page.press("#text", "Enter")
    error = page.locator("#send-error")
    await expect(error).to_have_text("Not sent: room is closed")
    await expect(page.locator("#text")).to_have_value("where is my order?")
    await expect(page.locator("#error")).to_be_hidden()  # not in the sidebar, far away
    box, composer = await error.bounding_box(), await page.locator("#composer").bounding_box()
    assert box is not None and composer is not None
    assert abs(box["y"] + box["height"] - composer["y"]) <= 2, (box, composer)

    await page.unroute("**/emulator/api/rooms/*/messages")
    await page.press("#text", "Enter")
    await expect(error).to_be_hidden()
    await expect(page.locator("#text")).to_have_value("")
    await expect(page.locator(".msg.mine").last).to_contain_text("where is my order?")
