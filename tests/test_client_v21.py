"""API v2.1: same methods, different base URL, paths and field names."""

from __future__ import annotations

import json

from qbot.client import QiscusClient
from qbot.emulator import Emulator

BOT = "bot@example.com"
CARD = {"text": "deal", "title": "Shirt", "image_url": "https://img/1.jpg", "buttons": []}


def test_default_base_urls_follow_the_version() -> None:
    assert QiscusClient("my-app", "s").base_url == "https://my-app.qiscus.com"
    assert QiscusClient("my-app", "s", api_version="2.1").base_url == "https://api.qiscus.com"


async def test_v21_posts_user_id_with_extras_to_v21_path(fake_qiscus: Emulator) -> None:
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, api_version="2.1"
    ) as client:
        comment = await client.post_comment(BOT, 7, "hi", extras={"source": "bot"})

    call = fake_qiscus.calls_to("post_comment")[0]
    assert call.path == "/api/v2.1/rest/post_comment"
    assert call.headers["QISCUS-SDK-APP-ID"] == "fake-app"
    assert call.body["user_id"] == BOT
    assert "sender_email" not in call.body
    assert call.body["extras"] == {"source": "bot"}
    assert comment.extras == {"source": "bot"}


async def test_v21_card_sends_image_and_v2_sends_image_url(fake_qiscus: Emulator) -> None:
    base = fake_qiscus.base_url
    async with (
        QiscusClient("fake-app", "fake-secret", base_url=base, api_version="2.1") as v21,
        QiscusClient("fake-app", "fake-secret", base_url=base) as v2,
    ):
        await v21.post_comment(BOT, 1, "deal", type="card", payload=CARD)
        v2_card = {**CARD, "image": CARD["image_url"]}
        del v2_card["image_url"]
        await v2.post_comment(BOT, 1, "deal", type="card", payload=v2_card)
        await v21.post_comment(BOT, 1, "deals", type="carousel", payload={"cards": [CARD]})

    sent = [json.loads(c.body["payload"]) for c in fake_qiscus.calls_to("post_comment")]
    assert sent[0]["image"] == "https://img/1.jpg"
    assert "image_url" not in sent[0]
    assert sent[1]["image_url"] == "https://img/1.jpg"
    assert "image" not in sent[1]
    assert sent[2]["cards"][0]["image"] == "https://img/1.jpg"


async def test_v21_requires_the_app_id_header(fake_qiscus: Emulator) -> None:
    async with QiscusClient(
        "fake-app", "fake-secret", base_url=fake_qiscus.base_url, api_version="2.1"
    ) as client:
        rooms = await client.get_user_rooms(BOT)

    assert rooms.meta.total_room == 0
    assert fake_qiscus.calls[0].path == "/api/v2.1/rest/get_user_rooms"
