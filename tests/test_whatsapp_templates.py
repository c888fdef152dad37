"""WhatsApp templates: the model's limits, and the client's calls against the emulator (HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from qbot._json import loads
from qbot.client import RetryPolicy
from qbot.emulator import Emulator, EmulatorConfig, EmulatorStore, create_emulator_app
from qbot.emulator.desk import OmnichannelDesk
from qbot.emulator.omnichannel import OMNICHANNEL_KEY
from qbot.errors import MessageBuildError, QiscusAPIError, QiscusNotFound, TemplateLimitError
from qbot.messages.postback import PostbackSigner, unpack_postback
from qbot.omnichannel import OmnichannelClient
from qbot.omnichannel.templates import (
    ApprovedTemplate,
    QuickReply,
    Template,
    TemplateContent,
)

APP = "kovof-123"
SECRET = "omni-secret"
FAST = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)
WA = 2  # the emulator's WhatsApp channel
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def approved(body: str, *, header: str | None = None, buttons: tuple[str, ...] = ()) -> Any:
    return ApprovedTemplate(
        name="t",
        namespace="ns",
        hsm_details=[
            TemplateContent(
                language="id",
                content=body,
                header_content=header,
                buttons=[{"type": "QUICK_REPLY", "text": b} for b in buttons],
            )
        ],
    )


# --- the model ------------------------------------------------------------------------------------


def test_a_header_over_60_characters_is_refused_naming_the_limit_and_the_value() -> None:
    with pytest.raises(TemplateLimitError) as caught:
        Template("t", header="x" * 61)
    assert caught.value.limit == "header length"
    assert (caught.value.value, caught.value.maximum) == (61, 60)
    assert "header length is 61, WhatsApp allows 60" in str(caught.value)
    Template("t", header="x" * 60)  # the limit itself is fine


def test_more_than_15_variables_is_refused() -> None:
    Template("t", variables=[str(i) for i in range(15)])
    with pytest.raises(TemplateLimitError) as caught:
        Template("t", variables=[str(i) for i in range(16)])
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == ("variables", 16, 15)


def test_variables_given_as_one_text_are_refused_not_split_into_letters() -> None:
    # variables="Budi" was read as four variables "B", "u", "d", "i".
    with pytest.raises(MessageBuildError, match="variables must be a list"):
        Template("t", variables="Budi")
    with pytest.raises(MessageBuildError, match="variables must be a list"):
        Template("t", variables=None)  # type: ignore[arg-type]
    assert Template("t", variables=("Budi", 2)).variables == ["Budi", "2"]


def test_more_than_3_quick_replies_is_refused_at_build_and_when_added() -> None:
    three = [QuickReply(f"b{i}", action="a") for i in range(3)]
    template = Template("t", buttons=three)
    with pytest.raises(TemplateLimitError) as caught:
        template.quick_reply("b4", action="a")
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == (
        "quick-reply buttons",
        4,
        3,
    )
    with pytest.raises(TemplateLimitError):
        Template("t", buttons=[*three, QuickReply("b4", action="a")])


def test_a_label_over_25_characters_is_refused() -> None:
    with pytest.raises(TemplateLimitError) as caught:
        Template("t", buttons=[QuickReply("y" * 26, action="a")])
    assert caught.value.limit == "button label length"


def test_the_body_is_checked_with_placeholders_filled_when_the_text_is_known() -> None:
    template = Template("t", variables=["x" * 1000])  # unknown text: only the variables count
    template.check()
    with pytest.raises(TemplateLimitError) as caught:
        template.check(approved("Halo {{1}}, " + "z" * 30))
    assert caught.value.limit == "body length"
    assert caught.value.value == len("Halo , ") + 1000 + 30
    with pytest.raises(TemplateLimitError) as too_long:
        Template("t", variables=["x" * 600, "y" * 500])
    assert too_long.value.value == 1100


def test_the_variables_must_match_the_approved_placeholders() -> None:
    text = approved("Halo {{1}}, pesanan {{2}} tiba {{3}}.")
    Template("t", variables=["a", "b", "c"]).check(text)
    with pytest.raises(TemplateLimitError) as caught:
        Template("t", variables=["a", "b"]).check(text)
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == ("variables", 2, 3)
    assert "has 3 placeholders, given 2 variables" in str(caught.value)


def test_the_approved_language_header_and_buttons_are_checked() -> None:
    text = approved("Hi {{1}}", header="Tagihan {{1}}", buttons=("Ya", "Tidak"))
    Template("t", variables=["a"], header="INV-1", buttons=[QuickReply("ya", action="y")]).check(
        text
    )
    with pytest.raises(MessageBuildError, match="not approved in language 'en'"):
        Template("t", language="en", variables=["a"], header="x").check(text)
    with pytest.raises(MessageBuildError, match="needs header="):
        Template("t", variables=["a"]).check(text)
    with pytest.raises(MessageBuildError, match="approved as 'Ya'"):
        Template("t", variables=["a"], header="x", buttons=[QuickReply("Mau", action="y")]).check(
            text
        )
    with pytest.raises(TemplateLimitError):
        Template(
            "t", variables=["a"], header="x", buttons=[QuickReply(b, action="y") for b in "abc"]
        ).check(text)
    with pytest.raises(TemplateLimitError, match="header length"):
        Template("t", variables=["a"], header="x" * 55).check(text)  # "Tagihan " + 55 > 60


@pytest.mark.parametrize("value", ["", "  ", "two\nlines", "tab\there", "five     spaces", None])
def test_variables_whatsapp_refuses_are_refused(value: Any) -> None:
    with pytest.raises(MessageBuildError, match=r"variable \{\{1\}\}"):
        Template("t", variables=[value])


def test_bad_names_buttons_and_data_are_refused() -> None:
    with pytest.raises(MessageBuildError, match="needs the name"):
        Template(" ")
    with pytest.raises(MessageBuildError, match="language code"):
        Template("t", language="")
    with pytest.raises(MessageBuildError, match="QuickReply"):
        Template("t", buttons=["Ya"])  # type: ignore[list-item]
    with pytest.raises(MessageBuildError, match="needs an action"):
        QuickReply("Ya", action="")
    with pytest.raises(MessageBuildError):
        QuickReply("Ya", action="y", data={"when": object()})


def test_the_wire_is_the_cloud_api_shape_with_signed_quick_reply_payloads() -> None:
    signer = PostbackSigner("s3cret").bind("55", "6281234567")
    template = Template(
        "order_shipped",
        variables=["Budi", "INV-7", "besok"],
        buttons=[QuickReply("Lacak pesanan", action="track", data={"order": "INV-7"})],
        namespace="ns-1",
    )
    wire = template.wire(signer)
    assert wire["namespace"] == "ns-1"
    assert wire["language"] == {"policy": "deterministic", "code": "id"}
    body, button = wire["components"]
    assert body == {
        "type": "body",
        "parameters": [{"type": "text", "text": v} for v in ("Budi", "INV-7", "besok")],
    }
    assert (button["type"], button["sub_type"], button["index"]) == ("button", "quick_reply", "0")
    payload = button["parameters"][0]["payload"]
    back = unpack_postback(payload, signer, room_id="55", user="6281234567")
    assert back is not None and (back.action, back.data) == ("track", {"order": "INV-7"})
    assert "namespace" not in Template("t").wire()


# --- the client against the emulator ----------------------------------------------------------


@pytest_asyncio.fixture
async def emulated(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> AsyncIterator[tuple[Emulator, OmnichannelDesk, OmnichannelClient]]:
    config = EmulatorConfig(app_id=APP, secret_key=SECRET, bot_email="bot@shop.local")
    emulator = Emulator(config, EmulatorStore(tmp_path / "emulator.sqlite3"))
    await emulator.start()
    app = create_emulator_app(emulator, manage=False)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    async with OmnichannelClient(APP, SECRET, base_url=url, retry=FAST) as client:
        yield emulator, app[OMNICHANNEL_KEY], client
    await emulator.close()


async def test_templates_lists_the_approved_ones_with_their_text(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    emulator, _, omni = emulated
    found = {t.name: t for t in await omni.templates()}
    assert "promo_weekend" not in found  # waiting for approval
    shipped = found["order_shipped"]
    assert shipped.category == "UTILITY"
    assert shipped.namespace
    content = shipped.content("id")
    assert content is not None and content.variables == 3
    assert content.quick_replies == ["Lacak pesanan", "Hubungi CS"]
    assert shipped.content("en") is not None
    everything = {t.name for t in await omni.templates(approved=None)}
    assert "promo_weekend" in everything
    assert await omni.templates(channel_id=99) == []
    assert await omni.template("otp_code", channel_id=WA) is not None
    assert await omni.template("nope") is None
    [call, *_] = [c for c in emulator.calls if c.path == "/api/v2/admin/hsm"]
    assert call.query["approved"] == "true"


async def test_send_template_lands_in_the_customers_room_as_whatsapp_shows_it(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    emulator, desk, omni = emulated
    template = Template(
        "order_shipped",
        variables=["Budi", "INV-7", "besok"],
        buttons=[QuickReply("Lacak pesanan", action="track")],
    )
    sent = await omni.send_template(WA, "+62 812-3456-7890", template)
    assert sent.message_id is not None and sent.message_id.startswith("wamid.")
    [record] = desk.whatsapp.sent
    assert (record.to, record.name, record.variables) == (
        "6281234567890",
        "order_shipped",
        [
            "Budi",
            "INV-7",
            "besok",
        ],
    )
    [call] = [c for c in emulator.calls if c.path.startswith("/whatsapp/")]
    assert call.path == f"/whatsapp/v1/{APP}/{WA}/messages"
    assert call.body["to"] == "6281234567890" and call.body["type"] == "template"
    [comment] = await emulator.store.comments(record.room_id, limit=5)
    assert comment["type"] == "custom"
    content = comment["payload"]["content"]
    assert content["header"] == "Pesanan dikirim"
    assert content["body"] == "Halo Budi, pesanan INV-7 sudah dikirim dan diperkirakan tiba besok."
    assert [b["label"] for b in content["buttons"]] == ["Lacak pesanan", "Hubungi CS"]
    assert loads(content["buttons"][0]["payload"])["a"] == "track"
    # The same number again: the same room, not a new one.
    await omni.send_template(WA, "6281234567890", Template("otp_code", variables=["123456"]))
    assert {s.room_id for s in desk.whatsapp.sent} == {record.room_id}


@pytest.mark.parametrize(
    ("template", "status", "words"),
    [
        ({"name": "nope", "language": {"code": "id"}}, 404, "does not exist"),
        ({"name": "promo_weekend", "language": {"code": "id"}}, 400, "not approved"),
        ({"name": "otp_code", "language": {"code": "en"}}, 400, "language 'en'"),
        ({"name": "otp_code", "language": {"code": "id"}}, 400, "takes 1 body parameters, got 0"),
        (
            {"name": "otp_code", "namespace": "other", "language": {"code": "id"}},
            400,
            "namespace",
        ),
    ],
)
async def test_the_emulator_refuses_what_whatsapp_refuses(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
    template: dict[str, Any],
    status: int,
    words: str,
) -> None:
    _, desk, omni = emulated
    with pytest.raises(QiscusAPIError) as caught:
        await omni.send_template(WA, "6281234567890", template)
    assert caught.value.status == status
    assert words in str(caught.value)
    assert desk.whatsapp.sent == []


async def test_an_unknown_channel_is_a_404_and_a_non_number_is_refused_before_sending(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    _, _, omni = emulated
    with pytest.raises(QiscusNotFound):
        await omni.send_template(7, "6281234567890", Template("otp_code", variables=["1"]))
    with pytest.raises(MessageBuildError, match="not a phone number"):
        await omni.send_template(WA, "budi@example.com", Template("otp_code", variables=["1"]))


async def test_templates_added_in_the_emulator_are_listed_and_sendable(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    _, desk, omni = emulated
    desk.whatsapp.add(
        "cart_reminder",
        [{"language": "en", "content": "{{1}}, your cart misses you", "buttons": ["Open cart"]}],
    )
    found = await omni.template("cart_reminder")
    assert found is not None
    template = Template(
        "cart_reminder", "en", ["Ana"], buttons=[QuickReply("Open cart", action="cart")]
    )
    template.check(found)
    await omni.send_template(WA, "4917612345678", template)
    assert desk.whatsapp.sent[-1].name == "cart_reminder"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"to": "62812345678", "type": "text"}, "type must be 'template'"),
        ({"to": "not-a-number", "type": "template", "template": {}}, "phone number in digits"),
        ({"type": "template", "template": {}}, "to is required"),
        ({"to": "62812345678", "type": "template", "template": "x"}, "must be an object"),
        ({"to": "62812345678", "type": "template", "template": {"name": ""}}, "name is required"),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id", "policy": "fallback"}}},
            "deterministic",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id"}, "components": "x"}},
            "components must be a list",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id"},
                          "components": [{"type": "body", "parameters": [{"type": "text",
                                                                          "text": " "}]}]}},
            "non-empty text",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id"},
                          "components": [{"type": "footer"}]}},
            "unknown component type",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "followup_check", "language": {"code": "id"},
                          "components": [
                              {"type": "body", "parameters": [{"type": "text", "text": "a"}]},
                              {"type": "button", "sub_type": "url", "index": "0"}]}},
            "sub_type 'url'",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id"},
                          "components": [
                              {"type": "body", "parameters": [{"type": "text", "text": "1"}]},
                              {"type": "button", "sub_type": "quick_reply", "index": "0",
                               "parameters": [{"type": "payload", "payload": "x"}]}]}},
            "has 0 quick replies",
        ),
        (
            {"to": "62812345678", "type": "template",
             "template": {"name": "otp_code", "language": {"code": "id"},
                          "components": [{"type": "header", "parameters": [
                              {"type": "text", "text": "h"}]},
                              {"type": "body", "parameters": [{"type": "text", "text": "1"}]}]}},
            "no header parameter",
        ),
    ],
)  # fmt: skip
async def test_the_emulated_send_answers_malformed_bodies_with_a_named_400(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient], body: dict[str, Any], words: str
) -> None:
    _, desk, omni = emulated
    with pytest.raises(QiscusAPIError) as caught:
        await omni._call("POST", f"/whatsapp/v1/{APP}/{WA}/messages", json_body=body)
    assert caught.value.status == 400
    assert words in str(caught.value)
    assert desk.whatsapp.sent == []


async def test_the_page_adds_templates_and_refuses_bad_ones(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    import aiohttp

    _, desk, omni = emulated
    url = f"{omni.base_url}/emulator/api/omnichannel/templates"
    async with aiohttp.ClientSession() as http:
        good = {"name": "hi", "body": "Hi {{1}}", "buttons": ["Yes"], "category": "marketing"}
        async with http.post(url, json=good) as r:
            assert r.status == 200
            assert (await r.json())["category"] == "MARKETING"
        for bad, words in [
            ({"body": "x"}, "needs a name"),
            ({"name": "x"}, "language and content"),
            ({"name": "x", "body": "y", "buttons": ["a", "b", "c", "d"]}, "at most 3"),
            ({"name": "x", "body": "y" * 1025}, "limits"),
            ({"name": "x", "body": "y", "approved": "maybe"}, "true or false"),
            ([1], "JSON object"),
        ]:
            async with http.post(url, json=bad) as r:
                assert r.status == 400, bad
                assert words in (await r.json())["error"]
        async with http.post(url, data="{", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        async with http.get(url) as r:
            names = {t["name"] for t in (await r.json())["templates"]}
    assert "hi" in names and "hi" in desk.whatsapp.templates


def test_the_header_value_follows_whatsapps_parameter_rules() -> None:
    with pytest.raises(MessageBuildError, match=r"the header's \{\{1\}\} has a new line"):
        Template("t", header="INV\n7")
    with pytest.raises(MessageBuildError, match=r"header's .* is empty"):
        Template("t", header=" ")
    assert Template("t", header=7).header == "7"  # type: ignore[arg-type]


async def test_the_page_takes_a_phone_number_as_a_whatsapp_customer(
    emulated: tuple[Emulator, OmnichannelDesk, OmnichannelClient],
) -> None:
    import aiohttp

    emulator, _, omni = emulated
    url = f"{omni.base_url}/emulator/api/omnichannel/customers"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"email": "+62 812-3456-7890", "name": "Budi"}) as r:
            assert r.status == 200
            room = await r.json()
        assert room["customer"] == "6281234567890"
        assert await emulator.store.get_user("6281234567890") is not None
        for bad in ("12ab", "+62", "x"):
            async with http.post(url, json={"email": bad}) as r:
                assert r.status == 400, bad
                assert "not an email address or a phone number" in (await r.json())["error"]
    # A template to that number lands in that room, not a new one.
    await omni.send_template(WA, "6281234567890", Template("otp_code", variables=["1"]))
    [comment] = await emulator.store.comments(room["id"], limit=5)
    assert comment["payload"]["content"]["name"] == "otp_code"
