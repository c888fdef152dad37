"""Durable follow-ups: ``ctx.schedule`` stores a job, ``@bot.scheduled`` handlers run it later.

```
ctx.schedule(after=..., name="followup", data={...})
    ──▶ storage.schedule_put (one job per room and name: the same name again replaces it)
fire loop (every runtime, on bot.clock)
    ──▶ schedule_take (due jobs, leased to this replica) → inbox_put (deduped by the job id:
        two replicas firing one job give one item) → schedule_fired
room worker
    ──▶ the job's update runs in the room's order with its messages: the job is looked up
        again (cancelled or replaced meanwhile: dropped), its @bot.scheduled handler runs, the
        ack commits, the job record goes (qbot.scheduled_run)
```

A customer's message in the room cancels the room's jobs scheduled with
``cancel_on_reply=True`` when it is processed (before its handler runs): a job that fired
while the message waited in the inbox is behind it, finds itself cancelled and is dropped.

Times are on the bot's clock (:mod:`qbot.clock`): a :class:`~qbot.clock.ManualClock` advanced
past a job's due time fires it (``await bot.run_due()`` waits for it in tests).
"""

from __future__ import annotations

import asyncio
import math
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from qbot._aio import LoopEvent, first_done, loop_event
from qbot.errors import ConfigError, QbotError, StorageError
from qbot.storage import InboxItem, state_key
from qbot.storage.records import dumps
from qbot.storage.schedule import JOB_NAME, Job

if TYPE_CHECKING:
    from qbot.dispatcher import Dispatcher
    from qbot.handlers import Outcome
    from qbot.runtime import Runtime
    from qbot.storage import Storage

__all__ = [
    "DEDUPE_TTL",
    "SCHEDULED",
    "ScheduleError",
    "cancel",
    "cancel_on_reply",
    "fire_due",
    "fire_loop",
    "job_body",
    "reply_marker",
    "run_due",
    "schedule",
    "settle_due",
]

log = structlog.get_logger("qbot.scheduling")

SCHEDULED = "qbot_scheduled"
"""The message type of the update a due job becomes."""
DEDUPE_TTL = 7 * 86400.0
"""Seconds a fired job's inbox dedupe record is kept: a second put of it within is a no-op."""
TAKE_LEASE = 60.0
"""Seconds a replica has to move the jobs it took into the inbox before another may."""
POLL = 1.0
"""Real seconds between looks for jobs another replica added (an own job wakes the loop)."""
BATCH = 100
MAX_DATA = 64 * 1024
"""The most JSON bytes a job's data may take."""

_wakes: weakref.WeakKeyDictionary[Any, LoopEvent] = weakref.WeakKeyDictionary()
"""Per dispatcher, what wakes its fire loop when a job is stored (the loop's own event loop)."""


class ScheduleError(QbotError, ValueError):
    """A ``ctx.schedule`` call that cannot be stored (the message says why)."""


def reply_marker(room_id: str) -> str:
    """The state key that says the room has jobs a customer's reply cancels."""
    return state_key(room_id, "qbot:cancel-on-reply")


def _due(now: float, after: timedelta | float | None, at: datetime | None) -> float:
    if (after is None) == (at is None):
        raise ScheduleError("give exactly one of after= (a timedelta) or at= (a datetime)")
    if at is not None:
        if not isinstance(at, datetime):
            raise ScheduleError(f"at= must be a datetime, got {at!r}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ScheduleError(
                f"at= {at.isoformat()} has no time zone: give an aware datetime, e.g. "
                "datetime(..., tzinfo=ZoneInfo('Asia/Jakarta'))"
            )
        return at.timestamp()
    if isinstance(after, timedelta):
        seconds = after.total_seconds()
    elif isinstance(after, int | float) and not isinstance(after, bool):
        seconds = float(after)
    else:
        raise ScheduleError(f"after= must be a timedelta or seconds, got {after!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ScheduleError(f"after= must be zero or more, got {after!r}")
    return now + seconds


async def schedule(
    dispatcher: Dispatcher,
    room_id: str,
    name: str,
    *,
    after: timedelta | float | None = None,
    at: datetime | None = None,
    data: Any = None,
    cancel_on_reply: bool = False,
    while_handed_off: bool = False,
    origin: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> Job:
    """Store the room's job ``name`` (replacing an earlier one of that name); see Context.

    ``job_id`` (default: random) identifies this scheduling: a handler re-run after a crash
    schedules with the same id, and then the job stored the first time (its due time, or its
    copy already in the inbox) is kept, not replaced.
    """
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise ScheduleError(f"job name {name!r} must be 1 to 100 letters, digits, '_', '.' or '-'")
    if dispatcher.bot.scheduled_handler(name) is None:
        raise ConfigError(
            f"no @bot.scheduled({name!r}) handler: register one before scheduling {name!r}"
        )
    now = dispatcher.clock.time()
    due = _due(now, after, at)
    try:  # refused here, naming the job, not when it fires
        size = len(dumps(data, f"data of job {name!r}").encode())
    except StorageError as e:
        raise ScheduleError(str(e)) from None
    if size > MAX_DATA:
        raise ScheduleError(
            f"data of job {name!r} is {size} bytes of JSON, over {MAX_DATA}: store it in "
            "ctx.state and put its key in data"
        )
    where = dict(origin or {"room": {"id": room_id}})
    where["while_handed_off"] = bool(while_handed_off)
    job_id = job_id or uuid.uuid4().hex
    job = Job(job_id, room_id, name, due, data, where, bool(cancel_on_reply), now)
    storage = dispatcher.storage
    existing = await storage.schedule_get(room_id, name)
    if existing is not None and existing.id == job_id:
        log.info("scheduled.kept", job=name, room_id=room_id, reason="handler ran again")
        return existing
    if cancel_on_reply:  # the marker first: a crash between leaves a marker, not a lost cancel
        await storage.set_state(reply_marker(room_id), True)
    replaced = await storage.schedule_put(job)
    log.info(
        "scheduled.stored",
        job=name,
        room_id=room_id,
        due_in=round(due - now, 3),
        replaced=replaced is not None,
    )
    held = _wakes.get(dispatcher)
    if held is not None and held[0] is asyncio.get_running_loop():
        held[1].set()
    return job


async def cancel(dispatcher: Dispatcher, room_id: str, name: str | None) -> list[str]:
    """Cancel the room's job ``name`` (every job with None); the names cancelled."""
    names = await dispatcher.storage.schedule_cancel(room_id, name)
    if names:
        log.info("scheduled.cancelled", room_id=room_id, jobs=names, by="handler")
    return names


async def cancel_on_reply(storage: Storage, room_id: str) -> list[str]:
    """A customer's message is being processed: cancel the room's ``cancel_on_reply`` jobs."""
    names = await storage.schedule_cancel(room_id, on_reply=True)
    await storage.delete_state(reply_marker(room_id))
    if names:
        log.info("scheduled.cancelled", room_id=room_id, jobs=names, by="reply")
    return names


def job_body(job: Job) -> dict[str, Any]:
    """The webhook-shaped body of the update a due job becomes (sender and room as scheduled)."""
    origin = job.origin if isinstance(job.origin, dict) else {}
    room = dict(origin.get("room") or {})
    room.setdefault("id", job.room_id)
    body: dict[str, Any] = {
        "type": SCHEDULED,
        "payload": {
            "from": origin.get("from") or {"email": "", "name": ""},
            "room": room,
            "message": {
                "type": SCHEDULED,
                "unique_temp_id": f"scheduled-{job.id}",
                "text": "",
                "payload": {
                    "job": job.id,
                    "name": job.name,
                    "due_at": job.due_at,
                    "created_at": job.created_at,
                    "data": job.data,
                },
            },
        },
    }
    for key in ("app_code", "channel"):
        if origin.get(key) is not None:
            body[key] = origin[key]
    return body


async def fire_due(
    dispatcher: Dispatcher, on_put: Callable[[InboxItem], None] | None = None
) -> int:
    """Move the jobs due now into their rooms' inboxes; how many were taken.

    ``on_put`` is called with each new inbox item, before anything else can run.
    """
    storage = dispatcher.storage
    now = dispatcher.clock.time()
    due = await storage.schedule_next()  # a read: most looks find nothing due
    if due is None or due > now:
        return 0
    jobs = await storage.schedule_take(now, lease=TAKE_LEASE, limit=BATCH)
    for job in jobs:
        item = await storage.inbox_put(
            job.room_id,
            job_body(job),
            dedupe_key=f"{job.room_id}:utid:scheduled-{job.id}",
            dedupe_ttl=DEDUPE_TTL,
        )
        if item is not None and on_put is not None:
            on_put(item)
        await storage.schedule_fired(job.room_id, job.name, job.id)
        log.info("scheduled.fired", job=job.name, room_id=job.room_id, duplicate=item is None)
    return len(jobs)


async def fire_loop(runtime: Runtime) -> None:
    """The runtime's background task: fire due jobs, then sleep until the next is due."""
    dispatcher = runtime.dispatcher
    held = _wakes[dispatcher] = loop_event(_wakes.get(dispatcher))  # not one from a past loop
    event = held[1]
    while True:
        event.clear()
        try:
            taken = await fire_due(dispatcher)
            due = None if taken else await dispatcher.storage.schedule_next()
        except Exception as e:  # a storage outage or a bug: keep the loop alive, back off
            await asyncio.sleep(runtime.outages.failed("schedule", e))
            continue
        runtime.outages.recovered("schedule")
        if taken:
            continue
        waits: list[Any] = [event.wait(), asyncio.sleep(POLL)]
        if due is not None:
            left = due - dispatcher.clock.time()
            if left > 0:
                waits.append(dispatcher.clock.sleep(left))
        await first_done(*waits)


def _gathered(runtime: Runtime) -> int:
    """Items held in rooms waiting out a debounce window (qbot.debounce): not work in hand."""
    now = runtime.dispatcher.clock.time()
    return sum(
        runtime.queued(room) for room, until in list(runtime.gathering.items()) if until > now
    )


async def settle_due(dispatcher: Dispatcher) -> bool:
    """The test kit's idle hook (``Harness.advance``): :func:`run_due`; whether work was done.

    A room still busy after 30 s (a handler waiting on something else) is left to the caller.
    """
    runtime = dispatcher._local_runtime()
    busy = runtime.pending > _gathered(runtime)
    try:
        return bool(await run_due(dispatcher)) or busy
    except TimeoutError:
        log.warning("scheduled.settle_timeout", pending=runtime.pending)
        return False


async def run_due(dispatcher: Dispatcher, *, timeout: float = 30.0) -> list[Outcome]:  # noqa: ASYNC109 - a test helper's bound, not a caller's deadline
    """Fire the jobs due on the bot's clock now and wait until their handlers ran.

    The in-process way (tests, the emulator, ``qbot shell``): after
    ``clock.advance(hours=2)``, ``await bot.run_due()`` returns the outcomes of what fired.
    """
    runtime = dispatcher._local_runtime()
    await dispatcher.start()
    await runtime.start()
    waiters: list[asyncio.Future[Outcome]] = []
    async with asyncio.timeout(timeout):
        while True:
            taken = await fire_due(dispatcher, lambda item: waiters.append(runtime.expect(item)))
            if not taken:
                break
        await runtime.claim_now()
        outcomes = [await w for w in waiters]
        # What the background loop fired meanwhile; not bursts still inside their window.
        while runtime.pending > _gathered(runtime):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
    return outcomes
