"""Dates and times in English and Indonesian, read against a clock you pass in.

Dates: ``today``/``hari ini``, ``tomorrow``/``besok``, ``yesterday``/``kemarin``, ``lusa``,
``in 3 days``/``3 hari lagi``, weekdays (``friday``, ``next monday``, ``senin depan``: the next
one after today), ``12 Januari``, ``January 12``, ``12/01/2027`` (day first). Times: ``3pm``,
``15:30``, ``15.30``, ``jam 3``, ``pukul 10 pagi``, ``jam 7 malam``, ``at 9``. An hour from 1 to 6
said with no ``am``/``pagi`` reads as the afternoon (``besok jam 3`` is 15:00): that is when
people book. A date and a time in one message also give a ``datetime``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

__all__ = ["find_dates"]

Found = tuple[str, object, int, int]

_MONTHS = {
    "january": 1, "jan": 1, "januari": 1, "february": 2, "feb": 2, "februari": 2, "pebruari": 2,
    "march": 3, "mar": 3, "maret": 3, "april": 4, "apr": 4, "may": 5, "mei": 5, "june": 6,
    "jun": 6, "juni": 6, "july": 7, "jul": 7, "juli": 7, "august": 8, "aug": 8, "agustus": 8,
    "agu": 8, "agt": 8, "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10,
    "oktober": 10, "okt": 10, "november": 11, "nov": 11, "nopember": 11, "december": 12,
    "dec": 12, "desember": 12, "des": 12,
}  # fmt: skip
_WEEKDAYS = {
    "monday": 0, "senin": 0, "tuesday": 1, "selasa": 1, "wednesday": 2, "rabu": 2,
    "thursday": 3, "kamis": 3, "friday": 4, "jumat": 4, "saturday": 5, "sabtu": 5,
    "sunday": 6, "minggu": 6, "ahad": 6,
}  # fmt: skip
_RELATIVE = {
    "today": 0, "hari ini": 0, "tonight": 0, "nanti malam": 0, "tomorrow": 1, "besok": 1,
    "besuk": 1, "bsk": 1, "yesterday": -1, "kemarin": -1, "kmrn": -1, "kemaren": -1,
    "lusa": 2, "day after tomorrow": 2,
}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_REL = "|".join(sorted(_RELATIVE, key=len, reverse=True)).replace(" ", r"\s+")

_DATES = re.compile(
    rf"\b(?P<d1>\d{{1,2}})\s+(?P<m1>{_MONTH})\.?(?:\s+(?P<y1>\d{{4}}))?\b"
    rf"|\b(?P<m2>{_MONTH})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y2>\d{{4}}))?\b"
    rf"|\b(?P<d3>\d{{1,2}})/(?P<m3>\d{{1,2}})(?:/(?P<y3>\d{{2,4}}))?\b"
    rf"|\b(?:in\s+(?P<n1>\d+)\s+days?|(?P<n2>\d+)\s+hari\s+lagi)\b"
    rf"|\b(?:(?:next|this|on)\s+)?(?P<wd>{_DAY})(?:\s+(?:depan|ini))?\b"
    rf"|\b(?P<rel>{_REL})\b",
    re.IGNORECASE,
)
_TIMES = re.compile(
    r"\b(?:(?:jam|pukul|pkl|at)\s+)?(?P<h1>\d{1,2})[:.](?P<m1>[0-5]\d)\s*(?P<ap1>am|pm|a\.m\.|p\.m\.)?"
    r"(?:\s+(?P<part1>pagi|siang|sore|malam))?\b"
    r"|\b(?P<h2>\d{1,2})\s*(?P<ap2>am|pm|a\.m\.|p\.m\.)(?!\w)"
    r"|\b(?:jam|pukul|pkl|at)\s+(?P<h3>\d{1,2})(?!\s*[:.]?\d)(?:\s+(?P<part3>pagi|siang|sore|malam))?\b",
    re.IGNORECASE,
)


def find_dates(text: str, now: datetime) -> list[Found]:
    """``(type, value, start, end)`` for each date (``date``) and time (``time``) in ``text``,
    then one ``datetime`` spanning both when the text has one of each."""
    times: list[tuple[time, int, int]] = []
    for m in _TIMES.finditer(text):
        value = _time(m)
        if value is not None:
            times.append((value, m.start(), m.end()))
    dates: list[tuple[date, int, int]] = []
    for m in _DATES.finditer(text):
        if any(m.start() < e and m.end() > s for _, s, e in times):
            continue
        day = _date(m, now.date())
        if day is not None:
            dates.append((day, m.start(), m.end()))
    found: list[Found] = [("time", *t) for t in times] + [("date", *d) for d in dates]
    if len(dates) == 1 and len(times) == 1:
        (d, ds, de), (t, ts, te) = dates[0], times[0]
        found.append(("datetime", datetime.combine(d, t), min(ds, ts), max(de, te)))
    return found


def _date(m: re.Match[str], today: date) -> date | None:
    g = m.groupdict()
    try:
        if g["d1"] or g["d2"]:
            month = _MONTHS[(g["m1"] or g["m2"]).lower()]
            return _upcoming(int(g["d1"] or g["d2"]), month, g["y1"] or g["y2"], today)
        if g["d3"]:
            return _upcoming(int(g["d3"]), int(g["m3"]), g["y3"], today)
    except ValueError:  # 31 February, month 13
        return None
    if g["n1"] or g["n2"]:
        return today + timedelta(days=int(g["n1"] or g["n2"]))
    if g["wd"]:
        ahead = (_WEEKDAYS[g["wd"].lower()] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if g["rel"]:
        return today + timedelta(days=_RELATIVE[" ".join(g["rel"].lower().split())])
    return None


def _upcoming(day: int, month: int, year: str | None, today: date) -> date:
    """The date; without a year, this year's, or next year's once this year's has passed."""
    if year:
        y = int(year)
        return date(y + 2000 if y < 100 else y, month, day)
    this_year = date(today.year, month, day)
    return this_year if this_year >= today else date(today.year + 1, month, day)


def _time(m: re.Match[str]) -> time | None:
    g = m.groupdict()
    hour = int(g["h1"] or g["h2"] or g["h3"])
    minute = int(g["m1"] or 0)
    ampm = (g["ap1"] or g["ap2"] or "").replace(".", "").lower()
    part = (g["part1"] or g["part3"] or "").lower()
    if hour > 23 or (ampm and not 1 <= hour <= 12):
        return None
    if (ampm == "pm" and hour < 12) or (ampm == "am" and hour == 12):
        hour = (hour + 12) % 24
    elif (part in ("sore", "malam") and hour < 12) or (part == "siang" and hour < 6):
        hour += 12
    elif not ampm and not part and 1 <= hour <= 6 and not g["m1"]:
        hour += 12  # "jam 3": people book afternoons
    return time(hour % 24, minute)
