"""The emulator's inspector, in Chromium: each user message shows the bot's intents and scores."""

from __future__ import annotations

from playwright.async_api import Page, expect

# The chat page's fixtures and markers (Chromium, skipped without it), reused as they are.
from test_browser import dev_url, page, pytestmark  # noqa: F401


async def test_inspector_shows_top_intents_scores_and_entities(page: Page) -> None:  # noqa: F811
    await page.fill("#text", "when are you open tomorrow, jam 3?")
    await page.press("#text", "Enter")
    line = page.locator(".exchange .intents").first
    await expect(line.locator(".intent").first).to_contain_text("opening_hours")
    await expect(line.locator(".intent")).to_have_count(3)
    await expect(line.locator(".entity").first).to_contain_text("date:")
