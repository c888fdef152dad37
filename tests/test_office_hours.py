"""Office hours: the schedule (zones, DST, midnight, holidays), the config, the filter and ctx."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from qbot import Bot, Context, OfficeHours, filters
from qbot.clock import ManualClock
from qbot.config import Settings, load_settings
from qbot.emulator.harness import Harness
from qbot.errors import ConfigError
from qbot.office_hours import OfficeHoursSettings, closed_message, describe_opening

WIB = OfficeHours({"mon-fri": ["08:00-12:00", "13:00-17:00"]}, holidays=[date(2026, 12, 25)])


def jakarta(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A wall-clock time in Jakarta (UTC+7 all year) as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


def test_a_weekday_is_open_in_its_ranges_and_closed_between_them() -> None:
    tuesday = (2026, 12, 1)
    assert not WIB.is_open(jakarta(*tuesday, 7, 59))
    assert WIB.is_open(jakarta(*tuesday, 8, 0))  # the start is inside
    assert WIB.is_open(jakarta(*tuesday, 11, 59))
    assert not WIB.is_open(jakarta(*tuesday, 12, 0))  # the end is outside: lunch
    assert WIB.opens_at(jakarta(*tuesday, 12, 30)) == jakarta(*tuesday, 13, 0)
    assert WIB.closes_at(jakarta(*tuesday, 9, 0)) == jakarta(*tuesday, 12, 0)
    assert WIB.closes_at(jakarta(*tuesday, 12, 30)) is None
    # While open, opens_at is the moment asked about; epoch seconds work as clock.time() gives.
    assert WIB.opens_at(jakarta(*tuesday, 9, 0).timestamp()) == jakarta(*tuesday, 9, 0)
    assert WIB.is_open(datetime(2026, 12, 1, 9, 0))  # a naive time is in the office's zone


def test_the_weekend_opens_on_monday_and_the_customer_reads_it_so() -> None:
    saturday = jakarta(2026, 12, 5, 10, 0)
    assert not WIB.is_open(saturday)
    monday = WIB.opens_at(saturday)
    assert monday == jakarta(2026, 12, 7, 8, 0)
    assert monday is not None and monday.utcoffset() == timedelta(hours=7)
    assert describe_opening(monday, saturday, "en") == "Monday 08:00 WIB"
    assert describe_opening(monday, saturday, "id") == "Senin 08:00 WIB"
    friday_night = jakarta(2026, 12, 4, 20, 0)
    assert describe_opening(monday, friday_night, "en") == "Monday 08:00 WIB"
    sunday = jakarta(2026, 12, 6, 20, 0)
    assert describe_opening(monday, sunday, "en") == "tomorrow 08:00 WIB"
    assert describe_opening(monday, sunday, "id") == "besok 08:00 WIB"
    assert describe_opening(monday, jakarta(2026, 12, 7, 7, 0), "id") == "hari ini 08:00 WIB"
    english = OfficeHoursSettings(language="en")
    assert closed_message(english, monday, saturday).startswith(
        "Our agents are offline right now. They are back Monday 08:00 WIB"
    )
    custom = OfficeHoursSettings(closed_message="Buka lagi {opens} ya kak")
    assert closed_message(custom, monday, saturday) == "Buka lagi Senin 08:00 WIB ya kak"
    assert closed_message(OfficeHoursSettings(closed_message=""), monday, saturday) == ""


def test_a_holiday_is_closed_all_day_and_the_next_opening_skips_it() -> None:
    christmas = jakarta(2026, 12, 25, 10, 0)  # a Friday
    assert not WIB.is_open(christmas)
    assert WIB.opens_at(jakarta(2026, 12, 24, 18, 0)) == jakarta(2026, 12, 28, 8, 0)
    # Far openings carry the date: a week of holidays.
    week_off = OfficeHours(
        {"mon-fri": ["08:00-17:00"]}, holidays=[date(2026, 12, d) for d in range(21, 26)]
    )
    opens = week_off.opens_at(jakarta(2026, 12, 18, 18, 0))
    assert opens == jakarta(2026, 12, 28, 8, 0)
    assert describe_opening(opens, jakarta(2026, 12, 18, 18, 0), "en") == (
        "Monday 28 December 08:00 WIB"
    )
    assert describe_opening(opens, jakarta(2026, 12, 18, 18, 0), "id") == (
        "Senin 28 Desember 08:00 WIB"
    )


def test_jakarta_has_no_dst_the_opening_is_at_utc_one_all_year() -> None:
    for month in range(1, 13):
        opens = WIB.opens_at(datetime(2027, month, 1, 18, 0, tzinfo=UTC))
        assert opens is not None
        assert opens.utcoffset() == timedelta(hours=7)
        assert opens.astimezone(UTC).hour == 1


def test_a_zone_with_dst_keeps_wall_clock_times_across_the_change() -> None:
    amsterdam = OfficeHours(
        {"mon-fri": ["08:00-17:00"], "sun": ["01:00-04:00"]}, timezone="Europe/Amsterdam"
    )
    # Friday before the change (CET, UTC+1) and Monday after it (CEST, UTC+2): 08:00 both.
    friday = amsterdam.opens_at(datetime(2026, 3, 27, 0, 0, tzinfo=UTC))
    monday = amsterdam.opens_at(datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert friday == datetime(2026, 3, 27, 7, 0, tzinfo=UTC)
    assert monday == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert friday is not None and monday is not None
    assert (friday.strftime("%H:%M %Z"), monday.strftime("%H:%M %Z")) == ("08:00 CET", "08:00 CEST")
    assert describe_opening(monday, datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "en") == (
        "tomorrow 08:00 CEST"
    )
    # The Sunday of the change: 01:00-04:00 wall clock is two hours long (02:00-03:00 never
    # happens): open at 00:30 UTC (01:30 CET) and 01:30 UTC (03:30 CEST), closed at 02:00 UTC.
    assert amsterdam.is_open(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert amsterdam.is_open(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    assert not amsterdam.is_open(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    # In autumn the same range is four hours long (02:00-03:00 happens twice).
    assert amsterdam.is_open(datetime(2026, 10, 25, 2, 30, tzinfo=UTC))
    assert not amsterdam.is_open(datetime(2026, 10, 25, 3, 0, tzinfo=UTC))


def test_a_range_over_midnight_belongs_to_the_day_it_starts() -> None:
    night = OfficeHours(
        {"fri": ["22:00-02:00"], "sat": ["20:00-24:00"]}, holidays=[date(2026, 12, 11)]
    )
    assert night.is_open(jakarta(2026, 12, 4, 23, 0))  # Friday 23:00
    assert night.is_open(jakarta(2026, 12, 5, 1, 59))  # Saturday 01:59: Friday's range
    assert not night.is_open(jakarta(2026, 12, 5, 2, 0))
    assert night.opens_at(jakarta(2026, 12, 5, 2, 0)) == jakarta(2026, 12, 5, 20, 0)
    assert night.closes_at(jakarta(2026, 12, 5, 21, 0)) == jakarta(2026, 12, 6, 0, 0)
    # Friday the 11th is a holiday: its night is closed past midnight too.
    assert not night.is_open(jakarta(2026, 12, 12, 1, 0))
    # Ranges that touch count as one opening when asked when it closes.
    joined = OfficeHours({"mon": ["20:00-24:00"], "tue": ["00:00-03:00"]})
    assert joined.closes_at(jakarta(2026, 11, 30, 21, 0)) == jakarta(2026, 12, 1, 3, 0)


def test_a_schedule_with_no_opening_never_opens() -> None:
    closed = OfficeHours({})
    assert not closed.is_open(jakarta(2026, 12, 1, 10, 0))
    assert closed.opens_at(jakarta(2026, 12, 1, 10, 0)) is None
    assert "segera" in closed_message(None, None, 0.0)


def test_the_config_reads_days_hours_zone_and_holidays() -> None:
    settings = _settings(
        {
            "timezone": "Asia/Makassar",
            "days": ["senin-jumat", "sat"],
            "hours": ["08:00-12:00", "13:00-17:00"],
            "holidays": ["2026-12-25"],
        }
    )
    hours = OfficeHours.from_settings(settings.office_hours)
    assert hours.is_open(datetime(2026, 12, 5, 9, 0))  # Saturday, in Makassar's zone
    assert not hours.is_open(datetime(2026, 12, 25, 9, 0))
    opens = hours.opens_at(datetime(2026, 12, 6, 9, 0))
    assert opens is not None
    assert describe_opening(opens, datetime(2026, 12, 6, 9, 0, tzinfo=opens.tzinfo)) == (
        "besok 08:00 WITA"
    )
    per_day = _settings({"days": {"mon-fri": ["09:00-18:00"], "sat": ["09:00-13:00"]}})
    week = OfficeHours.from_settings(per_day.office_hours)
    assert week.is_open(datetime(2026, 12, 5, 12, 0))
    assert not week.is_open(datetime(2026, 12, 5, 13, 0))
    shorthand = _settings("omnichannel")
    assert shorthand.office_hours.source == "omnichannel"
    assert not _settings(None).office_hours.enabled
    assert not _settings("off").office_hours.enabled
    assert not _settings(False).office_hours.enabled  # YAML's bare off
    assert not _settings({"source": False}).office_hours.enabled


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"timezone": "Asia/Jakartaa"}, "office_hours.timezone"),
        ({"hours": ["8-17"]}, "office_hours.hours"),
        ({"hours": ["08:00-25:00"]}, "office_hours.hours"),
        ({"hours": ["08:00-08:00"]}, "office_hours.hours"),
        ({"days": ["funday"]}, "office_hours.days"),
        ({"days": ["mon-sun-tue"]}, "office_hours.days"),  # was read as every day
        ({"timezone": "+07:60"}, "office_hours.timezone"),  # was read as +08:00
        ({"days": {"mon": ["09:00"]}}, "office_hours.days"),
        ({"holidays": ["next tuesday"]}, "office_hours.holidays"),
        ({"language": "fr"}, "office_hours.language"),
        ({"opening": "08:00"}, "office_hours.opening"),
        ({"cache_ttl": 0}, "office_hours.cache_ttl"),
        ("sometimes", "office_hours"),
        ({"days": {}}, "office_hours"),
        ({"hours": []}, "office_hours"),
    ],
)
def test_bad_office_hours_config_is_a_config_error_naming_the_field(
    value: object, field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"\b{field}\b") as caught:
        _settings(value)
    assert "Traceback" not in str(caught.value)


def test_the_class_names_what_does_not_parse() -> None:
    with pytest.raises(ConfigError, match="'someday' is not a day"):
        OfficeHours({"someday": ["08:00-17:00"]})
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        OfficeHours({}, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="'8am-5pm' is not a range"):
        OfficeHours({"mon": ["8am-5pm"]})


def _settings(office_hours: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": "a", "secret_key": "s"},
        bot={"email": "bot@example.com"},
        office_hours=office_hours,
    )


# --- in a bot: the filter, ctx.office_hours, Omnichannel's settings ------------------------------


def hours_bot(clock: ManualClock) -> Bot:
    bot = Bot(email="bot@example.com", clock=clock)

    @bot.message(filters.OfficeHours(), text="hours")
    async def open_now(ctx: Context) -> None:
        closes = ctx.office_hours.closes_at
        await ctx.reply(f"open until {closes:%a %H:%M}" if closes else "open")

    @bot.message(~filters.OfficeHours(), text="hours")
    async def closed_now(ctx: Context) -> None:
        assert not ctx.office_hours.is_open
        opens = ctx.office_hours.opens_at
        await ctx.reply(f"closed, opens {opens:%a %H:%M %Z}" if opens else "closed for good")

    return bot


def harness_settings(office_hours: object) -> Settings:
    return load_settings(
        None,
        qiscus={"app_id": "qbot-test", "secret_key": "qbot-test-secret"},
        bot={"email": "bot@example.com"},
        office_hours=office_hours,
    )


async def test_the_filter_and_ctx_follow_the_bots_clock() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 4, 16, 0).timestamp())  # Friday 16:00 WIB
    config = {"days": ["mon-fri"], "hours": ["08:00-17:00"]}
    async with Harness(hours_bot(clock), harness_settings(config)) as harness:
        chat = await harness.chat()
        (await chat.say("hours")).assert_texts("open until Fri 17:00")
        clock.advance(hours=1)  # 17:00: closed for the weekend
        (await chat.say("hours")).assert_texts("closed, opens Mon 08:00 WIB")
        clock.advance(days=2, hours=15)  # Monday 08:00
        (await chat.say("hours")).assert_texts("open until Mon 17:00")


async def test_without_office_hours_the_bot_is_always_open() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 5, 3, 0).timestamp())  # Saturday night
    async with Harness(hours_bot(clock)) as harness:
        chat = await harness.chat()
        (await chat.say("hours")).assert_texts("open")


async def test_omnichannel_office_hours_are_read_from_the_desk_and_cached() -> None:
    # The emulated desk works 08:00-17:00 (+07:00), Monday to Friday.
    clock = ManualClock(start=jakarta(2026, 12, 4, 16, 0).timestamp())
    settings = harness_settings({"source": "omnichannel", "cache_ttl": 600, "holidays": []})
    async with Harness(hours_bot(clock), settings) as harness:
        chat = await harness.chat(omnichannel=True)
        (await chat.say("hours")).assert_texts("open until Fri 17:00")
        clock.advance(minutes=5)
        (await chat.say("hours")).assert_texts("open until Fri 17:00")
        reads = [c for c in harness.emulator.calls if c.path == "/api/v1/admin/office_hours"]
        assert len(reads) == 1  # the second message used the cache
        clock.advance(hours=1)  # past the cache's 10 minutes and past 17:00
        (await chat.say("hours")).assert_texts("closed, opens Mon 08:00 WIB")
        reads = [c for c in harness.emulator.calls if c.path == "/api/v1/admin/office_hours"]
        assert len(reads) == 2


async def test_when_the_desk_cannot_say_the_bot_counts_as_open() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 5, 3, 0).timestamp())  # Saturday: closed
    settings = harness_settings("omnichannel")
    async with Harness(hours_bot(clock), settings) as harness:
        harness.emulator.fail_next("/api/v1/admin/office_hours", status=500)
        chat = await harness.chat(omnichannel=True)
        (await chat.say("hours")).assert_texts("open")
        clock.advance(minutes=10)  # the cache expired: read again, now it answers
        (await chat.say("hours")).assert_texts("closed, opens Mon 08:00 WIB")


# --- a handoff outside office hours ---------------------------------------------------------------


def handoff_bot(clock: ManualClock) -> Bot:
    bot = Bot(email="bot@example.com", clock=clock)

    @bot.message(text="human")
    async def human(ctx: Context) -> None:
        await ctx.reply("Connecting you to our team.")
        await ctx.handoff("asked for a human", division="support")

    @bot.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"bot: {ctx.text}")

    return bot


async def test_a_handoff_outside_hours_tells_when_and_reaches_the_desk_at_the_opening() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 4, 18, 0).timestamp())  # Friday 18:00 WIB
    config = {"days": ["mon-fri"], "hours": ["08:00-17:00"], "language": "en"}
    bot = handoff_bot(clock)
    async with Harness(bot, harness_settings(config)) as harness:
        chat = await harness.chat(omnichannel=True, channel="wa")
        replies = await chat.say("human")
        replies.assert_texts(
            "Connecting you to our team.",
            "Our agents are offline right now. They are back Monday 08:00 WIB; your message "
            "has been passed on and an agent will answer then.",
        )
        # The desk is not called until the opening: the room stays with the bot there...
        service = await chat.service()
        assert service["is_handled_by_bot"] and not service["agent_ids"]
        activations = [c for c in harness.emulator.calls if c.path.endswith("/activate")]
        assert activations == []
        # ... while qbot's handoff holds: the bot does not answer meanwhile.
        (await chat.say("halo?")).assert_none()
        clock.advance(days=2, hours=13, minutes=59)  # Monday 07:59: not yet
        assert await bot.run_due() == []
        clock.advance(minutes=1)  # Monday 08:00
        outcomes = await bot.run_due()
        assert [o.handler for o in outcomes] == ["scheduled:qbot.handoff_at_opening"]
        await chat.assert_handed_off(agent="Ayu")
        assert await bot.run_due() == []  # once
        handoff = await bot.storage.handoff_get(str(chat.room_id))
        assert handoff is not None


async def test_inside_hours_a_handoff_calls_the_desk_at_once_and_says_nothing_more() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 4, 10, 0).timestamp())  # Friday 10:00 WIB
    async with Harness(handoff_bot(clock), harness_settings({})) as harness:
        chat = await harness.chat(omnichannel=True, channel="wa")
        (await chat.say("human")).assert_texts("Connecting you to our team.")
        await chat.assert_handed_off(agent="Ayu")


async def test_a_handoff_that_ended_before_the_opening_drops_the_queued_calls() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 5, 10, 0).timestamp())  # Saturday
    bot = handoff_bot(clock)
    settings = harness_settings({"closed_message": "Buka lagi {opens}."})
    async with Harness(bot, settings) as harness:
        chat = await harness.chat(omnichannel=True, channel="wa")
        (await chat.say("human")).assert_texts(
            "Connecting you to our team.", "Buka lagi Senin 08:00 WIB."
        )
        await bot.storage.handoff_end(str(chat.room_id))  # e.g. qbot handoffs end ROOM
        clock.advance(days=2)
        await bot.run_due()
        await chat.assert_with_bot()
        assert [c for c in harness.emulator.calls if c.path.endswith("/activate")] == []


async def test_in_a_chat_sdk_room_the_customer_is_told_and_the_handoff_starts() -> None:
    clock = ManualClock(start=jakarta(2026, 12, 5, 10, 0).timestamp())  # Saturday
    settings = harness_settings({"closed_message": "Buka lagi {opens}."})
    async with Harness(handoff_bot(clock), settings) as harness:
        chat = await harness.chat()
        (await chat.say("human")).assert_texts(
            "Connecting you to our team.", "Buka lagi Senin 08:00 WIB."
        )
        (await chat.say("halo?")).assert_none()
