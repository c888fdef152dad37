"""Office hours: when human agents answer, and what a customer is told outside them.

```python
from datetime import date, datetime
from qbot import OfficeHours

hours = OfficeHours(
    {"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": ["09:00-12:00"]},
    timezone="Asia/Jakarta",
    holidays=[date(2026, 12, 25)],
)
hours.is_open(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))     # 10:00 WIB on a Tuesday: True
hours.opens_at(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))    # Saturday 13:00 WIB: Monday 08:00 WIB
```

A range may end past midnight (``"22:00-02:00"``): it belongs to the day it starts on, so a
holiday closes it whole. Times are wall-clock times in the office's time zone (any IANA name;
``Asia/Jakarta`` by default, which has no daylight saving time); in a zone with DST a range keeps
its wall-clock times on both sides of a change, and a time inside the spring-forward gap counts
as the instant the clocks jumped to.

The bot's hours come from ``office_hours:`` in the config, or from Omnichannel's office-hours
settings with ``office_hours: omnichannel`` (see :class:`OfficeHoursSource`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qbot.errors import ConfigError

if TYPE_CHECKING:
    from qbot.clock import Clock
    from qbot.omnichannel.client import OmnichannelClient
    from qbot.omnichannel.models import OfficeHours as DeskOfficeHours

__all__ = [
    "DEFAULT_TIMEZONE",
    "OfficeHours",
    "OfficeHoursNow",
    "OfficeHoursSettings",
    "OfficeHoursSource",
    "closed_message",
    "describe_opening",
]

log = structlog.get_logger("qbot.office_hours")

DEFAULT_TIMEZONE = "Asia/Jakarta"
Language = Literal["id", "en"]

_DAY_NAMES: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("mon", "monday", "sen", "senin"),
        ("tue", "tuesday", "sel", "selasa"),
        ("wed", "wednesday", "rab", "rabu"),
        ("thu", "thursday", "kam", "kamis"),
        ("fri", "friday", "jum", "jumat", "jum'at"),
        ("sat", "saturday", "sab", "sabtu"),
        ("sun", "sunday", "min", "minggu", "ahad"),
    )
):
    for _name in _names:
        _DAY_NAMES[_name] = _number
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTHS_ID = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni",
    "Juli", "Agustus", "September", "Oktober", "November", "Desember",
)  # fmt: skip
#: Indonesia's zones by UTC offset, for offsets without a zone name (Omnichannel's ``+07:00``).
_INDONESIAN_ZONES = {7 * 3600: "WIB", 8 * 3600: "WITA", 9 * 3600: "WIT"}
_INDONESIAN_OFFSETS = {
    7 * 3600: "Asia/Jakarta",
    8 * 3600: "Asia/Makassar",
    9 * 3600: "Asia/Jayapura",
}

DEFAULT_MESSAGES: dict[str, str] = {
    "id": (
        "Agen kami sedang tidak bertugas. Mereka kembali {opens}; pesan Anda sudah kami teruskan "
        "dan akan dibalas saat itu."
    ),
    "en": (
        "Our agents are offline right now. They are back {opens}; your message has been passed "
        "on and an agent will answer then."
    ),
}
"""What a customer handed off outside office hours is told; ``{opens}`` is the opening time
("Senin 08:00 WIB", "tomorrow 08:00 WIB")."""

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_SEARCH_DAYS = 8  # a week and a day covers every weekly opening; holidays add to it


@dataclass(frozen=True, slots=True)
class Opening:
    """One range of one weekday: ``start`` to ``end`` minutes after that day's midnight.

    ``end`` may pass 1440 (the range runs past midnight into the next day).
    """

    start: int
    end: int


def parse_range(text: str) -> Opening:
    """``"08:00-17:00"`` (``"22:00-02:00"`` runs past midnight; ``"24:00"`` is midnight).

    Raises:
        ValueError: the text is not ``HH:MM-HH:MM``, a time is out of range, or start == end.
    """
    found = _RANGE.match(str(text))
    if found is None:
        raise ValueError(f"{text!r} is not a range like '08:00-17:00'")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    for hour, minute in ((h1, m1), (h2, m2)):
        if minute > 59 or hour > 24 or (hour == 24 and minute):
            raise ValueError(f"{text!r}: {hour:02d}:{minute:02d} is not a time of day")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == 1440:
        raise ValueError(f"{text!r}: a range cannot start at 24:00 (write 00:00)")
    if start == end:
        raise ValueError(f"{text!r} is empty: a range must start and end at different times")
    return Opening(start, end if end > start else end + 1440)


def parse_days(text: str | int) -> list[int]:
    """``"mon"``, ``"senin"``, ``"mon-fri"``, ``1`` (Monday) to ``7`` as weekday numbers (0 = Mon).

    Raises:
        ValueError: an unknown day.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if not 1 <= text <= 7:
            raise ValueError(f"day {text} must be 1 (Monday) to 7 (Sunday)")
        return [text - 1]
    name = str(text).strip().casefold()
    if name.isdigit():
        return parse_days(int(name))
    first, sep, last = name.partition("-")
    if "-" in last:
        raise ValueError(f"{text!r} is not a day range: one '-' between two days, like 'mon-fri'")
    if sep:
        a, b = parse_days(first)[0], parse_days(last)[0]
        return [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    if name not in _DAY_NAMES:
        raise ValueError(f"{text!r} is not a day (mon..sun, senin..minggu, 1..7, or 'mon-fri')")
    return [_DAY_NAMES[name]]


def zone(name: str) -> tzinfo:
    """An IANA zone (``Asia/Jakarta``) or a UTC offset (``+07:00``, ``UTC+7``).

    Raises:
        ValueError: neither.
    """
    text = str(name).strip()
    offset = _OFFSET.match(text)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        if int(minutes or 0) >= 60:
            raise ValueError(f"time zone {name!r}: the minutes of an offset are 00 to 59")
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"time zone {name!r}: an offset is at most 14 hours")
        if sign == "+" and int(delta.total_seconds()) in _INDONESIAN_OFFSETS:
            # Omnichannel gives Indonesia's zones as offsets: the zone reads WIB, not UTC+07:00.
            return ZoneInfo(_INDONESIAN_OFFSETS[int(delta.total_seconds())])
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name like 'Asia/Jakarta', or '+07:00')"
        ) from None


class OfficeHours:
    """A weekly schedule of openings in one time zone, with holidays.

    Args:
        week: day -> ranges, e.g. ``{"mon-fri": ["08:00-17:00"], "sat": ["09:00-12:00"]}``;
            days as in :func:`parse_days`, ranges as in :func:`parse_range`. Days not named are
            closed; a day named twice gets both lists.
        timezone: an IANA name or a UTC offset; ``Asia/Jakarta`` by default.
        holidays: dates (in the office's zone) when nobody works, whatever the weekday.

    Raises:
        ConfigError: a day, range or zone that does not parse, naming it.
    """

    def __init__(
        self,
        week: Mapping[str | int, Sequence[str]],
        *,
        timezone: str | tzinfo = DEFAULT_TIMEZONE,
        holidays: Iterable[date] = (),
    ) -> None:
        days: dict[int, list[Opening]] = {d: [] for d in range(7)}
        try:
            self.tz = timezone if isinstance(timezone, tzinfo) else zone(timezone)
            for day, ranges in week.items():
                if isinstance(ranges, str):
                    ranges = [ranges]
                parsed = [parse_range(r) for r in ranges]
                for number in parse_days(day):
                    days[number].extend(parsed)
        except ValueError as e:
            raise ConfigError(f"office hours: {e}") from None
        self.week = {d: sorted(o, key=lambda o: o.start) for d, o in days.items()}
        self.holidays = frozenset(holidays)

    @classmethod
    def from_settings(cls, settings: OfficeHoursSettings) -> OfficeHours:
        """The schedule ``office_hours:`` in the config describes (``source: config``)."""
        return cls(settings.week(), timezone=settings.timezone, holidays=settings.holidays)

    @classmethod
    def from_omnichannel(
        cls, desk: DeskOfficeHours, *, holidays: Iterable[date] = (), default_tz: str | None = None
    ) -> OfficeHours:
        """The schedule of Omnichannel's office-hours settings (days 1-7, ``HH:MM`` times).

        Raises:
            ConfigError: the desk's settings do not parse (its zone, a day or a time).
        """
        week: dict[str | int, list[str]] = {}
        for hour in desk.office_hours:
            if hour.day is None or not hour.starttime or not hour.endtime:
                continue
            start, end = hour.starttime[:5], hour.endtime[:5]
            week.setdefault(int(hour.day), []).append(
                f"{start}-{'24:00' if end == '23:59' else end}"
            )
        tz = desk.timezone or default_tz or DEFAULT_TIMEZONE
        try:
            return cls(week, timezone=tz, holidays=holidays)
        except ConfigError as e:
            raise ConfigError(f"Omnichannel's office hours: {e}") from None

    def __repr__(self) -> str:
        days = {WEEKDAYS_EN[d][:3]: len(o) for d, o in self.week.items() if o}
        return f"OfficeHours({days}, timezone={self.tz!s}, holidays={len(self.holidays)})"

    # --- questions -------------------------------------------------------------------------------

    def _instant(self, at: datetime | float) -> datetime:
        if isinstance(at, datetime):
            return at.replace(tzinfo=self.tz) if at.tzinfo is None else at
        return datetime.fromtimestamp(float(at), UTC)

    def _local(self, day: date, minutes: int) -> datetime:
        """The instant of ``minutes`` after ``day``'s local midnight (wall clock, DST-aware)."""
        extra, minutes = divmod(minutes, 1440)
        wall = datetime.combine(day + timedelta(days=extra), time(minutes // 60, minutes % 60))
        return wall.replace(tzinfo=self.tz).astimezone(UTC).astimezone(self.tz)

    def _ranges(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        return [
            (self._local(day, o.start), self._local(day, o.end)) for o in self.week[day.weekday()]
        ]

    def is_open(self, at: datetime | float) -> bool:
        """Whether agents work at ``at`` (an aware datetime, a naive one in the office's zone, or
        epoch seconds as ``clock.time()`` gives)."""
        return self.open_range(at) is not None

    def open_range(self, at: datetime | float) -> tuple[datetime, datetime] | None:
        """The opening ``at`` falls in (start, end, in the office's zone), or ``None``: closed."""
        moment = self._instant(at)
        today = moment.astimezone(self.tz).date()
        for day in (today - timedelta(days=1), today):
            for start, end in self._ranges(day):
                if start <= moment < end:
                    return start, end
        return None

    def opens_at(self, after: datetime | float) -> datetime | None:
        """When agents next work, at or after ``after``: ``after`` itself while open (in the
        office's zone); ``None`` when the schedule has no opening at all."""
        moment = self._instant(after)
        if self.is_open(moment):
            return moment.astimezone(self.tz)
        first = moment.astimezone(self.tz).date()
        for offset in range(_SEARCH_DAYS + len(self.holidays)):
            for start, _ in self._ranges(first + timedelta(days=offset)):
                if start > moment:
                    return start
        return None

    def closes_at(self, at: datetime | float) -> datetime | None:
        """When the opening ``at`` falls in ends (ranges that touch count as one); ``None`` when
        closed at ``at``."""
        current = self.open_range(at)
        if current is None:
            return None
        end = current[1]
        while (following := self.open_range(end)) is not None and following[1] > end:
            end = following[1]
        return end


def describe_opening(when: datetime, now: datetime | float, language: Language = "id") -> str:
    """``when`` as a customer reads it: "Senin 08:00 WIB", "tomorrow 08:00 WIB", "today 13:00"
    (relative to ``now`` in ``when``'s zone); a date is added beyond six days."""
    local = when
    today = (
        now.astimezone(local.tzinfo)
        if isinstance(now, datetime)
        else datetime.fromtimestamp(float(now), local.tzinfo)
    ).date()
    days = (local.date() - today).days
    english = language == "en"
    if days == 0:
        day = "today" if english else "hari ini"
    elif days == 1:
        day = "tomorrow" if english else "besok"
    else:
        day = (WEEKDAYS_EN if english else WEEKDAYS_ID)[local.weekday()]
        if days > 6:
            month = (MONTHS_EN if english else MONTHS_ID)[local.month - 1]
            day = f"{day} {local.day} {month}"
    return f"{day} {local:%H:%M} {zone_label(local)}".rstrip()


def zone_label(moment: datetime) -> str:
    """The zone's abbreviation at ``moment`` (``WIB``, ``CET``...); Indonesia's for its offsets."""
    name = moment.tzname() or ""
    offset = moment.utcoffset()
    if (not name or name.startswith(("UTC", "+", "-"))) and offset is not None:
        seconds = int(offset.total_seconds())
        if seconds in _INDONESIAN_ZONES:
            return _INDONESIAN_ZONES[seconds]
        sign = "+" if seconds >= 0 else "-"
        return f"UTC{sign}{abs(seconds) // 3600:02d}:{abs(seconds) % 3600 // 60:02d}"
    return name


def closed_message(
    settings: OfficeHoursSettings | None, opens: datetime | None, now: datetime | float
) -> str:
    """What a customer handed off outside office hours is told (empty: tell nothing)."""
    language: Language = settings.language if settings is not None else "id"
    template = settings.closed_message if settings is not None else None
    if template is None:
        template = DEFAULT_MESSAGES[language]
    if opens is None:
        when = "segera" if language == "id" else "as soon as possible"
    else:
        when = describe_opening(opens, now, language)
    return template.replace("{opens}", when)


def _weekdays() -> list[str | int]:
    return ["mon-fri"]


class OfficeHoursSettings(BaseModel):
    """``office_hours:`` in the config (``office_hours: omnichannel`` reads the desk's instead).

    Attributes:
        source: ``config`` (the keys below; the default once the section is written),
            ``omnichannel`` (the desk's office-hours settings, cached ``cache_ttl`` seconds;
            ``holidays`` still apply), or ``off`` (no office hours: the default without the
            section).
        timezone: an IANA zone name (``Asia/Jakarta``) or a UTC offset (``+07:00``).
        days: the days open with ``hours`` (``[mon, tue]``, ``[mon-fri]``), or a mapping of
            day -> its own ranges (``{mon-fri: ["08:00-17:00"], sat: ["09:00-12:00"]}``).
        hours: the ranges of every day listed in ``days`` (a list), several allowed.
        holidays: dates (``2026-12-25``) when the office is closed all day.
        language: the language of the default closed message: ``id`` or ``en``.
        closed_message: what a customer handed off outside hours is told; ``{opens}`` is
            replaced by the opening ("Senin 08:00 WIB"); ``""`` sends nothing.
        cache_ttl: seconds Omnichannel's settings are kept before they are read again.
    """

    model_config = ConfigDict(extra="forbid")

    source: Literal["config", "omnichannel", "off"] = "config"
    timezone: str = DEFAULT_TIMEZONE
    days: list[str | int] | dict[str | int, list[str]] = Field(default_factory=_weekdays)
    hours: list[str] = Field(default_factory=lambda: ["08:00-17:00"])
    holidays: list[date] = Field(default_factory=list)
    language: Language = "id"
    closed_message: str | None = None
    cache_ttl: float = Field(default=300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().casefold() in ("omnichannel", "off"):
                return {"source": value.strip().casefold()}
            raise ValueError(f"must be a mapping, 'omnichannel' or 'off', got {value!r}")
        if value is None or value is False:  # YAML reads a bare ``off`` as false
            return {"source": "off"}
        if isinstance(value, dict) and value.get("source") is False:
            return {**value, "source": "off"}
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_range(text)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for day, ranges in value.items():
                parse_days(day)
                for text in ranges:
                    parse_range(text)
        else:
            for day in value:
                parse_days(day)
        return value

    @model_validator(mode="after")
    def _opens_some_day(self) -> OfficeHoursSettings:
        if self.source == "config" and not any(self.week().values()):
            raise ValueError(
                "no day has opening hours: give days and hours (or source: off for none)"
            )
        return self

    @classmethod
    def off(cls) -> OfficeHoursSettings:
        """No office hours (the bot is always open): the default without the section."""
        return cls(source="off")

    @property
    def enabled(self) -> bool:
        """Whether the bot has office hours."""
        return self.source != "off"

    def week(self) -> dict[str | int, list[str]]:
        """``days`` and ``hours`` as one mapping of day -> ranges."""
        if isinstance(self.days, dict):
            return dict(self.days)
        return {day: list(self.hours) for day in self.days}


class OfficeHoursSource:
    """Where a bot's office hours come from: the config, or Omnichannel's settings (cached).

    Args:
        settings: ``office_hours:`` from the config.
        omnichannel: a callable giving the bot's Omnichannel client (``source: omnichannel``).
        clock: the bot's clock: the cache's age and "now" are read from it.
    """

    def __init__(
        self,
        settings: OfficeHoursSettings,
        clock: Clock,
        omnichannel: Any = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._omnichannel = omnichannel
        self._hours = OfficeHours.from_settings(settings) if settings.source == "config" else None
        self._fetched_at: float | None = None

    @property
    def hours(self) -> OfficeHours | None:
        """The schedule known now (``None`` before Omnichannel's was first read)."""
        return self._hours

    async def get(self) -> OfficeHours | None:
        """The schedule, reading Omnichannel's when the cached one is older than ``cache_ttl``.

        When Omnichannel cannot be read, the last schedule read stays in use (``None`` before
        any): the failure is logged as ``office_hours.unavailable``, never raised, so a desk
        outage does not stop a handoff.
        """
        if self.settings.source == "config":
            return self._hours
        now = self.clock.time()
        if self._fetched_at is not None and now - self._fetched_at < self.settings.cache_ttl:
            return self._hours
        try:
            client: OmnichannelClient = self._omnichannel()
            desk = await client.office_hours()
            self._hours = OfficeHours.from_omnichannel(
                desk, holidays=self.settings.holidays, default_tz=self.settings.timezone
            )
        except Exception as e:
            log.warning("office_hours.unavailable", error=f"{type(e).__name__}: {e}")
        self._fetched_at = now
        return self._hours


class OfficeHoursNow:
    """``ctx.office_hours``: the bot's office hours as of the bot's clock.

    ``is_open`` is ``True`` when the bot has no office hours (or Omnichannel's were never read).
    """

    def __init__(self, hours: OfficeHours | None, clock: Clock) -> None:
        self.hours = hours
        self.clock = clock

    @property
    def configured(self) -> bool:
        """Whether the bot has a schedule at all."""
        return self.hours is not None

    @property
    def is_open(self) -> bool:
        """Whether agents work now."""
        return self.hours is None or self.hours.is_open(self.clock.time())

    @property
    def opens_at(self) -> datetime | None:
        """When agents next work (now, while open), in the office's zone; ``None`` without a
        schedule or when it has no opening."""
        if self.hours is None:
            return datetime.fromtimestamp(self.clock.time(), UTC)
        return self.hours.opens_at(self.clock.time())

    @property
    def closes_at(self) -> datetime | None:
        """When the current opening ends; ``None`` while closed or without a schedule."""
        return None if self.hours is None else self.hours.closes_at(self.clock.time())

    def __repr__(self) -> str:
        return f"<office hours {'open' if self.is_open else 'closed'}: {self.hours!r}>"
