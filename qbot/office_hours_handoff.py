"""A handoff outside office hours: the customer is told when agents are back, and the desk
calls wait for the opening.

``ctx.handoff(...)`` asks :func:`after_hours` first. Inside office hours (or without any) it
answers ``None`` and the handoff goes on as usual. Outside them, the customer gets
``office_hours.closed_message`` ("Agen kami kembali Senin 08:00 WIB ..."), and in an
Omnichannel room the desk calls (the bot off for the room, the agent or division assigned) are
stored as a follow-up job (`qbot.scheduling`) due at the opening: durable across restarts,
run once, in the room's order. The handoff itself starts at once (the bot stops answering)
and its TTL counts from the opening. A handoff that ended before the opening (the customer
was helped another way, ``qbot handoffs end``) drops the queued calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from qbot.office_hours import OfficeHoursSource, closed_message

if TYPE_CHECKING:
    from qbot.config import Settings
    from qbot.context import Context
    from qbot.dispatcher import Dispatcher
    from qbot.routing import Router

__all__ = ["OPENING_JOB", "after_hours", "configure", "install"]

log = structlog.get_logger("qbot.office_hours")

OPENING_JOB = "qbot.handoff_at_opening"
"""The follow-up job that makes a closed-hours handoff's desk calls at the opening."""


async def after_hours(
    ctx: Context, *, division: str | int | None = None, agent_id: int | str | None = None
) -> datetime | None:
    """Outside office hours: tell the customer when agents are back, queue the desk calls.

    Returns:
        The opening the desk calls were queued for (the handoff must not make them now), or
        ``None``: inside office hours, without office hours, not an Omnichannel room, or a
        schedule with no opening at all (the customer is then told "as soon as possible" and
        the calls are made now).
    """
    source = ctx.dispatcher.office_hours
    hours = None if source is None else await source.get()
    if source is None or hours is None:
        return None
    now = ctx.dispatcher.clock.time()
    if hours.is_open(now):
        return None
    opens = hours.opens_at(now)
    text = closed_message(source.settings, opens, now)
    if text:
        await ctx.reply(text)
    room = str(ctx.room.id)
    if opens is None or not await ctx.dispatcher.is_omnichannel(room):
        ctx.log.info("handoff.after_hours", opens_at=None if opens is None else opens.isoformat())
        return None
    data = {"division": division, "agent_id": agent_id}
    await ctx.schedule(OPENING_JOB, at=opens, data=data, while_handed_off=True)
    ctx.log.info("handoff.queued", opens_at=opens.isoformat(), division=division, agent=agent_id)
    return opens


async def _at_opening(ctx: Context) -> None:
    """The queued desk calls of a closed-hours handoff, at the opening."""
    room = str(ctx.room.id)
    if await ctx.storage.handoff_get(room) is None:
        ctx.log.info("handoff.queue_dropped", reason="the handoff ended before the opening")
        return
    data = ctx.data if isinstance(ctx.data, dict) else {}
    division, agent_id = data.get("division"), data.get("agent_id")
    try:
        await ctx.desk_call("activate", active=False)
        if agent_id is not None or division is not None:
            await ctx.desk_call("assign", agent_id=agent_id, division=division)
    except Exception as e:  # refused for good: logged, the handoff stands in qbot
        ctx.log.error("handoff.desk_failed", error=f"{type(e).__name__}: {e}")
    ctx.log.info("handoff.opened", division=division, agent=agent_id)


def install(bot: Router) -> None:
    """Register the opening job's handler on the bot (once; jobs stored by an earlier run of
    the bot still run after a restart)."""
    if bot.scheduled_handler(OPENING_JOB) is None:
        bot.scheduled(OPENING_JOB)(_at_opening)


def configure(dispatcher: Dispatcher, settings: Settings) -> OfficeHoursSource | None:
    """The bot's office hours from ``settings`` (``None``: it has none), the opening job's
    handler installed on its bot either way."""
    install(dispatcher.bot)
    hours = settings.office_hours
    if not hours.enabled:
        return None
    return OfficeHoursSource(hours, dispatcher.clock, lambda: dispatcher.omnichannel)
