"""Built-in entities: numbers, money, phones, emails, dates and times, lists with synonyms."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from qbot.errors import ConfigError
from qbot.intents import IntentSet
from qbot.nlu import EntityList, Money, extract, parse_amount

NOW = datetime(2026, 12, 1, 9, 30)  # a Tuesday


def found(text: str, **kw: Any) -> list[tuple[str, Any]]:
    return [(e.type, e.value) for e in extract(text, now=NOW, **kw)]


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("Rp 49.000", "49000", "IDR"),
        ("Rp49.000,50", "49000.5", "IDR"),
        ("harganya 49rb", "49000", "IDR"),
        ("1,5 jt", "1500000", "IDR"),
        ("2 juta rupiah", "2000000", "IDR"),
        ("$12.50", "12.5", "USD"),
        ("USD 1,200.50", "1200.5", "USD"),
        ("50000 IDR", "50000", "IDR"),
        ("€5", "5", "EUR"),
    ],
)
def test_nlu_money_reads_indonesian_and_english_amounts(
    text: str, amount: str, currency: str
) -> None:
    assert found(text) == [("money", Money(Decimal(amount), currency))]


def test_nlu_one_message_gives_each_span_one_entity() -> None:
    assert found("refund order 123, Rp 50rb") == [
        ("number", 123),
        ("money", Money(Decimal(50000), "IDR")),
    ]
    assert found("I have 2 cards and 3.5 kg") == [("number", 2), ("number", Decimal("3.5"))]


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("call 0812-3456-7890", "+6281234567890"),
        ("wa saya 081234567890 ya", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("London +44 20 7946 0958", "+442079460958"),
        ("US 001 415 555 2671", "+14155552671"),
    ],
)
def test_nlu_phone_numbers_in_e164(text: str, phone: str) -> None:
    assert found(text) == [("phone", phone)]


def test_nlu_email_is_lower_cased() -> None:
    assert found("mail me at Ana.B@Example.co.id please") == [("email", "ana.b@example.co.id")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("besok jam 3", [date(2026, 12, 2), datetime(2026, 12, 2, 15, 0), time(15, 0)]),
        ("tomorrow 3pm", [date(2026, 12, 2), datetime(2026, 12, 2, 15, 0), time(15, 0)]),
        ("12 Januari", [date(2027, 1, 12)]),  # passed this year: next year's
        ("December 24", [date(2026, 12, 24)]),
        ("kemarin", [date(2026, 11, 30)]),
        ("lusa pukul 10 pagi", [date(2026, 12, 3), datetime(2026, 12, 3, 10, 0), time(10, 0)]),
        ("jam 7 malam", [time(19, 0)]),
        ("at 14:30", [time(14, 30)]),
        ("next friday", [date(2026, 12, 4)]),
        ("senin depan", [date(2026, 12, 7)]),
        ("3 hari lagi", [date(2026, 12, 4)]),
        ("in 10 days", [date(2026, 12, 11)]),
        ("25/12/2026", [date(2026, 12, 25)]),
    ],
)
def test_nlu_dates_and_times_read_against_the_clock_given(text: str, expected: list[Any]) -> None:
    assert [v for _, v in found(text)] == expected


def test_nlu_impossible_dates_are_not_entities() -> None:
    assert found("31 February") == [("number", 31)]


def test_nlu_entity_lists_match_synonyms_as_whole_words() -> None:
    city = EntityList("city", {"Jakarta": ["jkt", "dki"], "Bandung": ["bdg"]})
    assert found("kirim ke JKT atau Bandung", lists=[city]) == [
        ("city", "Jakarta"),
        ("city", "Bandung"),
    ]
    assert found("jktx", lists=[city]) == []
    plain = EntityList("size", ["small", "large"])
    assert found("a large one", lists=[plain]) == [("size", "large")]


def test_nlu_intent_set_reads_its_entity_lists() -> None:
    intents = IntentSet({"a": {"keywords": ["x"]}}, entities={"city": {"Surabaya": ["sby"]}})
    assert [(e.type, e.value) for e in intents.entities("ke sby")] == [("city", "Surabaya")]


@pytest.mark.parametrize(
    ("entities", "fragment"),
    [
        ({"city": {}}, "lists no values"),
        ({"city": {"Jakarta": "jkt"}}, "must be a list"),
        ({"city": [""]}, "non-empty strings"),
        (["city"], "must be a mapping"),
    ],
)
def test_nlu_bad_entity_lists_name_the_problem(entities: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        IntentSet({"a": {"keywords": ["x"]}}, entities=entities)


def test_nlu_parse_amount_groups_and_decimals() -> None:
    assert parse_amount("49.000") == 49000
    assert parse_amount("1,5") == Decimal("1.5")
    assert parse_amount("1.234.567,89") == Decimal("1234567.89")
    with pytest.raises(ValueError, match="not a number"):
        parse_amount("1..2")
