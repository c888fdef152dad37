"""Entities found in a message: numbers, money, phone numbers, emails, dates, times, lists.

```python
>>> [(e.type, e.value) for e in extract("refund order 123, Rp 50rb")]
[('number', 123), ('money', Money(amount=Decimal('50000'), currency='IDR'))]
```
Extractors run in a fixed order (email, phone, money, date and time, number) and a span taken by
one is not read again, so ``Rp 49.000`` is money and not also the number 49000. Money reads the
Indonesian style (``Rp 49.000,50``, ``49rb``, ``1,5 jt``) and the English one (``$12.50``,
``USD 1,200``): a separator followed by exactly three digits groups thousands, otherwise it is
the decimal point. Dates and times: :mod:`qbot.nlu.dates`. Lists with synonyms are declared in
the intents YAML (``entities: {city: {Jakarta: [jkt, dki]}}``) and read by
:class:`EntityList`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qbot.errors import ConfigError
from qbot.nlu.dates import find_dates
from qbot.nlu.text import normalize

__all__ = ["Entity", "EntityList", "Money", "extract", "parse_amount"]


@dataclass(frozen=True, slots=True)
class Entity:
    """One thing found in a text: its ``type``, parsed ``value`` and where it was."""

    type: str
    value: Any
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Money:
    """An amount and its currency (``IDR``, ``USD``, ``EUR``...; ``None`` when unsaid)."""

    amount: Decimal
    currency: str | None


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)62|62|0)[\s-]?8\d{1,3}(?:[\s-]?\d{2,5}){2,3}(?!\w)"  # Indonesia
    r"|(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\w)"  # international
)
_NUM = r"\d+(?:[.,]\d+)*"
_SCALES = {
    "rb": 1_000, "ribu": 1_000, "k": 1_000, "jt": 1_000_000, "juta": 1_000_000,
    "m": 1_000_000, "mio": 1_000_000, "miliar": 1_000_000_000, "milyar": 1_000_000_000,
}  # fmt: skip
_SYMBOLS = {
    "rp": "IDR", "idr": "IDR", "$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR",
    "£": "GBP", "gbp": "GBP", "sgd": "SGD", "s$": "SGD", "myr": "MYR", "rm": "MYR",
}  # fmt: skip
_SCALE = r"(?:rb|ribu|jt|juta|k|miliar|milyar|mio|m)\b"
_CURRENCY = r"(?:rp\.?|idr|usd|eur|gbp|sgd|myr|rm|s\$|\$|€|£)"
_MONEY = re.compile(
    rf"(?P<pre>{_CURRENCY})\s?(?P<n1>{_NUM})(?:\s?(?P<s1>{_SCALE}))?"
    rf"|(?<![\w.,])(?P<n2>{_NUM})\s?(?:(?P<s2>{_SCALE})(?:\s?(?P<post1>{_CURRENCY}))?"
    rf"|(?P<post2>idr|usd|eur|gbp|sgd|myr|rupiah|dollars?)\b)",
    re.IGNORECASE,
)
_WHOLE_NUMBER = re.compile(_NUM)
_NUMBER = re.compile(rf"(?<![\w.,]){_NUM}(?![\w])")


def parse_amount(text: str) -> Decimal:
    """``49.000`` → 49000, ``1,5`` → 1.5, ``1,200.50`` → 1200.50, ``12.50`` → 12.50.

    Raises:
        ValueError: ``text`` is not a number.
    """
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {text!r}")
    groups = re.split(r"[.,]", text)
    seps = re.findall(r"[.,]", text)
    if not seps:
        digits = text
    elif all(len(g) == 3 for g in groups[1:]) and len(set(seps)) == 1:
        digits = "".join(groups)  # 49.000, 1,200,000: thousands
    else:
        last = max(text.rfind("."), text.rfind(","))
        digits = re.sub(r"[.,]", "", text[:last]) + "." + text[last + 1 :]
    try:
        return Decimal(digits)
    except InvalidOperation as e:
        raise ValueError(f"not a number: {text!r}") from e


class EntityList:
    """A named list of values, each with synonyms: ``{"Jakarta": ["jkt", "dki"]}``.

    A value's own name is a synonym of itself; matching is on whole words, case and accents
    ignored, longest synonym first.
    """

    def __init__(self, name: str, values: Mapping[str, Iterable[str]] | Iterable[str]) -> None:
        self.name = name
        pairs: list[tuple[str, str]] = []
        items: Iterable[tuple[str, Iterable[str]]] = (
            values.items() if isinstance(values, Mapping) else ((v, []) for v in values)
        )
        for value, synonyms in items:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"entity {name!r}: values must be non-empty strings")
            if isinstance(synonyms, str) or not all(isinstance(s, str) for s in synonyms or []):
                raise ConfigError(f"entity {name!r}: synonyms of {value!r} must be a list")
            pairs.extend((s, value) for s in [value, *(synonyms or [])])
        if not pairs:
            raise ConfigError(f"entity {name!r} lists no values")
        pairs.sort(key=lambda p: -len(p[0]))
        self._canonical = {normalize(s).strip(): v for s, v in pairs}
        alternatives = "|".join(re.escape(normalize(s).strip()) for s, _ in pairs)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def find(self, text: str) -> list[Entity]:
        """Every value named in ``text`` (positions are those of ``text``)."""
        folded = normalize(text)
        if len(folded) != len(text):  # a ligature unfolded: positions would drift
            folded = text.casefold()
        return [
            Entity(self.name, self._canonical[m.group()], text[m.start() : m.end()], *m.span())
            for m in self._pattern.finditer(folded)
            if m.group() in self._canonical
        ]


def extract(
    text: str, *, now: datetime | None = None, lists: Iterable[EntityList] = ()
) -> list[Entity]:
    """The entities of ``text`` in reading order.

    Args:
        text: the message.
        now: the clock relative dates read against (``besok``, ``tomorrow``); default: now.
        lists: entity lists (from the intents YAML) to look for as well.
    """
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(entity: Entity) -> None:
        if free(entity.start, entity.end):
            found.append(entity)
            taken.append((entity.start, entity.end))

    for m in _EMAIL.finditer(text):
        add(Entity("email", m.group().lower(), m.group(), *m.span()))
    for m in _PHONE.finditer(text):
        add(Entity("phone", _phone(m.group()), m.group(), *m.span()))
    for m in _MONEY.finditer(text):
        money = _money(m)
        if money is not None:
            add(
                Entity(
                    "money", money, m.group().strip(), m.start(), m.start() + len(m.group().strip())
                )
            )
    for kind, value, start, end in find_dates(text, now or datetime.now()):
        entity = Entity(kind, value, text[start:end], start, end)
        if kind == "datetime":  # spans its date and its time, which are entities too
            found.append(entity)
        else:
            add(entity)
    for entity_list in lists:
        for entity in entity_list.find(text):
            add(entity)
    for m in _NUMBER.finditer(text):
        value = parse_amount(m.group())
        add(
            Entity(
                "number",
                int(value) if value == value.to_integral() else value,
                m.group(),
                *m.span(),
            )
        )
    found.sort(key=lambda e: e.start)
    return found


def _phone(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("00"):
        digits = digits[2:]
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    return "+" + digits


def _money(m: re.Match[str]) -> Money | None:
    number = m.group("n1") or m.group("n2")
    scale = (m.group("s1") or m.group("s2") or "").lower()
    symbol = (m.group("pre") or m.group("post1") or m.group("post2") or "").lower().rstrip(".")
    if not symbol and not scale:
        return None
    amount = parse_amount(number) * _SCALES.get(scale, 1)
    if symbol in ("rupiah",):
        currency: str | None = "IDR"
    elif symbol.startswith("dollar"):
        currency = "USD"
    else:
        currency = _SYMBOLS.get(symbol)
    if currency is None and scale in ("rb", "ribu", "jt", "juta", "miliar", "milyar"):
        currency = "IDR"  # 49rb, 1,5 jt: Indonesian amounts are rupiah
    return Money(
        amount.normalize() if amount != amount.to_integral() else Decimal(int(amount)), currency
    )
