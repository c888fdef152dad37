"""Templates: text and YAML replies, strict variables, the sandbox, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qbot.errors import TemplateError
from qbot.messages import Buttons, Card, OutgoingComment, Text
from qbot.templates import Templates


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    files = {
        "greet.txt": "Hello {{ name }}!\n",
        "status.txt.j2": (
            "{% for item in items %}\n- {{ item }}\n{% endfor %}\nTotal: {{ total }}\n"
        ),
        "plain.j2": "<b>{{ html }}</b> & done",
        "menu.yaml": (
            "type: buttons\n"
            "text: {{ question | tojson }}\n"
            "buttons:\n"
            "{% for option in options %}\n"
            "  - label: {{ option.label | tojson }}\n"
            "    action: pick\n"
            "    data: {id: {{ option.id }}}\n"
            "{% endfor %}\n"
            "  - label: Help\n"
            "    url: https://example.com/help\n"
        ),
        "product.yml": (
            "type: card\n"
            "title: {{ product.name | tojson }}\n"
            "description: Rp {{ product.price }}\n"
            "image_url: https://shop.example/{{ product.id }}.jpg\n"
            "buttons:\n"
            "  - {label: Buy, action: buy, data: {id: {{ product.id }}}}\n"
        ),
        "unsafe.txt": "{{ ''.__class__.__mro__ }}",
        "unsafe_call.txt": "{{ cycler.__init__.__globals__ }}",
        "broken.txt": "Hello {{ name ",
        "not_yaml.yaml": "type: text\ntext: [unclosed\n",
        "scalar.yaml": "just a string\n",
        "bad_spec.yaml": "type: buttons\ntext: Pick\nbuttons:\n  - {label: Docs, url: 'ftp://x'}\n",
        "empty.txt": "{{ '' }}",
        "only_yaml.yaml": "type: text\ntext: hi\n",
        "nested.txt": "Order {{ order.id }}",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    return tmp_path


def _text(message: object) -> str:
    assert isinstance(message, Text)
    return message.text


def test_text_template_renders_to_text(tdir: Path) -> None:
    assert _text(Templates(tdir).render("greet", name="Ani")) == "Hello Ani!"


def test_text_templates_trim_blocks_and_suffix_order(tdir: Path) -> None:
    rendered = Templates(tdir).render("status", items=["a", "b"], total=2)
    assert _text(rendered) == "- a\n- b\nTotal: 2"


def test_chat_text_is_not_html_escaped(tdir: Path) -> None:
    assert _text(Templates(str(tdir)).render("plain", html="<i>x</i>")) == "<b><i>x</i></b> & done"


def test_name_with_suffix_is_accepted(tdir: Path) -> None:
    assert _text(Templates(tdir).render("greet.txt", name="Bo")) == "Hello Bo!"


def test_render_text_returns_a_string(tdir: Path) -> None:
    assert Templates(tdir).render_text("greet", name="Ani") == "Hello Ani!"


def test_trailing_newline_of_a_loop_is_not_sent(tdir: Path) -> None:
    (tdir / "list.txt").write_text("{% for i in items %}\n- {{ i }}\n{% endfor %}\n")
    templates = Templates(tdir)
    assert templates.render_text("list", items=[1, 2]) == "- 1\n- 2\n"
    assert _text(templates.render("list", items=[1, 2])) == "- 1\n- 2"


def test_render_text_refuses_yaml_templates_with_a_hint(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=r"'only_yaml' not found.*YAML template: use render"):
        Templates(tdir).render_text("only_yaml")


def test_yaml_buttons_template(tdir: Path) -> None:
    options = [{"label": "Nasi: goreng #1", "id": 1}, {"label": "Mie", "id": 2}]
    message = Templates(tdir).render("menu", question="Mau makan apa?", options=options)
    expected = (
        Buttons("Mau makan apa?")
        .postback("Nasi: goreng #1", action="pick", data={"id": 1})
        .postback("Mie", action="pick", data={"id": 2})
        .link("Help", "https://example.com/help")
    )
    assert isinstance(message, Buttons)
    assert message.to_outgoing() == expected.to_outgoing()


def test_yaml_card_template(tdir: Path) -> None:
    product = {"name": "Blouse <XL>", "price": "49.000", "id": 7}
    message = Templates(tdir).render("product", product=product)
    expected = Card(
        title="Blouse <XL>",
        description="Rp 49.000",
        image_url="https://shop.example/7.jpg",
    ).postback("Buy", action="buy", data={"id": 7})
    assert isinstance(message, Card)
    [comment] = message.to_outgoing()
    assert isinstance(comment, OutgoingComment)
    assert [comment] == expected.to_outgoing()


def test_undefined_variable_names_template_and_variable(tdir: Path) -> None:
    with pytest.raises(
        TemplateError, match=r"^template 'greet.txt' uses undefined variable 'name'"
    ):
        Templates(tdir).render("greet")


def test_undefined_attribute_names_template(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=r"template 'nested.txt' uses an undefined value"):
        Templates(tdir).render("nested", order={})


@pytest.mark.parametrize("name", ["unsafe", "unsafe_call"])
def test_sandbox_blocks_attribute_escapes(tdir: Path, name: str) -> None:
    with pytest.raises(TemplateError, match=rf"template '{name}.txt' .*unsafe"):
        Templates(tdir).render(name)


def test_missing_template_lists_what_was_tried(tdir: Path) -> None:
    with pytest.raises(
        TemplateError,
        match=r"template 'nope' not found in .* \(looked for nope\.txt, nope\.txt\.j2, "
        r"nope\.j2, nope\.yaml, nope\.yml\)",
    ):
        Templates(tdir).render("nope")


def test_path_traversal_is_not_found(tdir: Path) -> None:
    (tdir.parent / "secret.txt").write_text("s3cret", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"not found"):
        Templates(tdir).render("../secret")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"template directory .*missing.* does not exist"):
        Templates(tmp_path / "missing")


def test_syntax_error_names_template_and_line(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=r"template 'broken.txt' has a syntax error on line 1"):
        Templates(tdir).render("broken", name="x")


def test_invalid_yaml(tdir: Path) -> None:
    with pytest.raises(
        TemplateError, match=r"template 'not_yaml.yaml' did not render to valid YAML"
    ):
        Templates(tdir).render("not_yaml")


def test_yaml_must_be_a_mapping(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=r"'scalar.yaml' must render to a YAML mapping"):
        Templates(tdir).render("scalar")


def test_invalid_message_in_yaml_names_key_path(tdir: Path) -> None:
    with pytest.raises(
        TemplateError,
        match=r"'bad_spec.yaml' describes an invalid message: buttons\[0\]: .*got 'ftp://x'",
    ):
        Templates(tdir).render("bad_spec")


def test_empty_text_is_an_error(tdir: Path) -> None:
    with pytest.raises(TemplateError, match=r"'empty.txt' rendered no usable text"):
        Templates(tdir).render("empty")


def test_edited_template_is_picked_up(tdir: Path) -> None:
    templates = Templates(tdir)
    assert _text(templates.render("greet", name="A")) == "Hello A!"
    path = tdir / "greet.txt"
    path.write_text("Hi {{ name }}", encoding="utf-8")
    stat = path.stat()
    # Make sure the new mtime differs even on coarse-grained filesystems.
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    assert _text(templates.render("greet", name="A")) == "Hi A"


# --- renders are bounded: time, loop steps, sizes -----------------------------------------------


def _templates(tmp_path: Path, **files: str) -> Templates:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return Templates(tmp_path)


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("{{ 7 ** 3000000 }}", r"too large to compute"),
        ("{{ 3 ** 100000 }}", r"too large to compute"),
        ("{{ '{:>{w}}'.format(1, w=1000000000) }}", r"formatted string"),
        ("{{ 'a' * 200000000 }}", r"longer than 262144"),
        ("{{ 200000000 * 'a' }}", r"longer than 262144"),
        ("{{ [1] * 200000000 }}", r"longer than 262144"),
        (
            "{% for i in range(100000) %}{% for j in range(300) %}{% endfor %}{% endfor %}",
            r"looped more than 200000 times",
        ),
        (
            "{% set l = range(1000) | list %}{% for a in l %}{% for b in l %}{% for c in l %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            r"looped more than",
        ),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            r"longer than",
        ),
        ("{{ 'a'.ljust(1000000000) }}", r"padded string"),
        ("{{ 'a' | center(1000000000) }}", r"centred string"),
        ("{{ '%0999999999d' % 1 }}", r"formatted string"),
        ("{{ '{:>999999999}'.format(1) }}", r"formatted string"),
        ("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", r"rendered more than 262144"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", r"recursed too deeply"),
    ],
)
def test_template_bombs_are_refused(tmp_path: Path, source: str, pattern: str) -> None:
    templates = _templates(tmp_path, **{"bomb.txt": source})
    with pytest.raises(TemplateError, match=pattern):
        templates.render("bomb")


def test_bounded_template_still_renders_ordinary_work(tmp_path: Path) -> None:
    source = (
        "{% for i in range(3) %}{{ i ** 2 }} {% endfor %}{{ 'ab' * 3 }} {{ 2 ** 64 }}"
        "{% set ns = namespace(n=0) %}{% for x in items %}{% set ns.n = ns.n + x %}{% endfor %}"
        " {{ ns.n }} {{ 'x' | center(5) }}|{{ '%05d' % 42 }}"
    )
    templates = _templates(tmp_path, **{"ok.txt": source})
    assert templates.render_text("ok", items=list(range(1000))) == (
        "0 1 4 ababab 18446744073709551616 499500   x  |00042"
    )


# --- YAML templates: interpolated values cannot change the structure -----------------------------

BUTTON_YAML = (
    "type: buttons\n"
    "text: {{ text }}\n"
    "buttons:\n"
    "  - label: Refund\n"
    "    action: refund\n"
    "    data: {amount: {{ amount }}, note: {{ note }}}\n"
)


@pytest.mark.parametrize(
    "hostile",
    [
        "hi\nbuttons: [{label: x, action: refund, data: {amount: 99999}}]",
        "x}, action: refund, data: {amount: 99999}}",
        "a: b",
        "# comment",
        "[1, 2]",
        "{'a': 1}",
        "&anchor *alias !!python/object:os.system",
        "true",
        "42",
        "",
        "qbotv0x0q",
    ],
)
def test_yaml_values_are_values_never_yaml(tmp_path: Path, hostile: str) -> None:
    templates = _templates(tmp_path, **{"refund.yaml": BUTTON_YAML})
    message = templates.render("refund", text=hostile or "fallback", amount=5, note=hostile)
    assert isinstance(message, Buttons)
    assert message.text == (hostile or "fallback")
    [button] = message.buttons
    assert button.action == "refund"
    assert button.data == {"amount": 5, "note": hostile}


def test_yaml_values_inside_text_and_tojson_still_work(tmp_path: Path) -> None:
    source = 'type: text\ntext: "Order #{{ id }} is {{ status }}: thanks, {{ name | upper }}"\n'
    templates = _templates(
        tmp_path, **{"t.yaml": source, "j.yaml": "type: text\ntext: {{ s | tojson }}\n"}
    )
    message = templates.render("t", id=42, status="shipped: soon", name="ani")
    assert isinstance(message, Text)
    assert message.text == "Order #42 is shipped: soon: thanks, ANI"
    assert templates.render("j", s="a: b # c").text == "a: b # c"  # type: ignore[attr-defined]
