"""Running a due job: the room worker's part of :mod:`qbot.scheduling`.

The job's update (message type :data:`~qbot.scheduling.SCHEDULED`) reaches
:meth:`Dispatcher.process <qbot.dispatcher.Dispatcher.process>` like any message of its room.
Here the job is looked up again: cancelled (``ctx.cancel_scheduled``, a customer's reply) or
replaced (scheduled again under its name) since it fired, it is dropped. Otherwise its
``@bot.scheduled`` handler runs with ``ctx.scheduled`` / ``ctx.data``; a job whose name has no
handler (a deployment that dropped it) is logged and dropped; in a handed-off room it is
dropped unless scheduled with ``while_handed_off=True``. Its record is deleted once the
update's commit (state and ack) is done (:func:`finish`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from qbot.context import Context
from qbot.handlers import Outcome, run_handler
from qbot.sending import Sender
from qbot.storage.schedule import JOB_NAME, Job

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher
    from qbot.models.webhook import Update
    from qbot.storage import Handoff

__all__ = ["finish", "run_scheduled"]

log = structlog.get_logger("qbot.scheduling")


async def run_scheduled(
    dispatcher: Dispatcher,
    update: Update,
    origin: str,
    known: dict[str, Any],
    loaded: dict[str, Any],
    handoff: Handoff | None,
) -> tuple[Outcome, Context | None]:
    """Run the job ``update`` carries, if it still stands; the outcome and its context."""
    info: dict[str, Any] = update.message.payload or {}
    room_id = str(update.room.id)
    name, job_id = str(info.get("name")), str(info.get("job"))
    storage = dispatcher.storage
    job = await storage.schedule_get(room_id, name) if JOB_NAME.fullmatch(name) else None
    if job is not None and job.id != job_id:
        parent = job.origin.get("parent") if isinstance(job.origin, dict) else None
        # Replaced by this very job's handler (a run cut before its commit): run it again.
        job = _from_body(room_id, name, job_id, info, job) if parent == job_id else None
    if job is None:
        log.info("scheduled.dropped", job=name, reason="cancelled or replaced")
        return Outcome(ignored="cancelled"), None
    found = dispatcher.bot.scheduled_handler(name)
    if found is None:
        log.error("scheduled.no_handler", job=name, hint=f"add @bot.scheduled({name!r})")
        await storage.schedule_done(room_id, name, job_id)
        return Outcome(ignored="no_handler"), None
    origin_info = job.origin if isinstance(job.origin, dict) else {}
    if handoff is not None and not origin_info.get("while_handed_off"):
        log.info("scheduled.dropped", job=name, reason="handoff", handoff=handoff.reason)
        await storage.schedule_done(room_id, name, job_id)
        return Outcome(ignored="handoff"), None
    signer = dispatcher.signer.bind(room_id, None) if dispatcher.signer is not None else None
    sender = Sender(dispatcher.outbox.delivery(known), origin, signer)
    ctx = Context(dispatcher, update, sender)
    ctx.scheduled = job
    for state in (ctx.state, ctx.room_state):
        if state.key in loaded:
            state.preload(loaded[state.key])
        else:
            await state.load()
    fn, router = found
    ctx.handler_name = f"scheduled:{name}"
    await run_handler(fn, router, ctx)
    log.info("update.handled", handler=ctx.handler_name, replies=sender.sent)
    return Outcome(handler=ctx.handler_name, replies=sender.sent), ctx


def _from_body(room_id: str, name: str, job_id: str, info: dict[str, Any], now: Job) -> Job:
    """The job an update carries (its record was replaced by its own handler's next job)."""
    due, created = info.get("due_at"), info.get("created_at")
    return Job(
        job_id,
        room_id,
        name,
        float(due) if isinstance(due, int | float) else now.due_at,
        info.get("data"),
        now.origin,
        False,
        float(created) if isinstance(created, int | float) else now.created_at,
        True,
    )


async def finish(ctx: Context) -> None:
    """After the commit of a job's update: its record goes (unless replaced meanwhile)."""
    job = ctx.scheduled
    if job is not None:
        await ctx.storage.schedule_done(job.room_id, job.name, job.id)
